"""The demo: ``audit`` on the embedded default pair, then the paper's controlled comparison
(``config`` names the models and settings once; ``rms`` trains and caches the demo RMs;
``comparison`` builds the comparison section; ``pipeline`` runs it all into one folder)."""

"""The demo: every stage of the suite on the two embedded models (``config`` names them once;
``stages`` runs one stage each; ``pipeline`` runs them in order into one folder)."""

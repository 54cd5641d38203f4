"""The report of a run: ``content`` is what it says (``report.json``), ``html`` renders it into one
self-contained ``report.html`` (inline CSS, figures as data URIs, nothing loaded from anywhere)."""

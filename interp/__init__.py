"""Model primitives: loading (``models``), formatting, scoring, activation sites, patching, the
value lens and RM training. Nothing here imports ``analyses``."""

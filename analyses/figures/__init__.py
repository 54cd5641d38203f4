"""Figures (PNG + SVG, Matplotlib Agg): ``common`` helpers, ``stats`` (the paper's analogues),
``probes`` (layer curves, comparisons, embeddings) and ``patching`` (layerwise bias, position
heatmap, durability)."""

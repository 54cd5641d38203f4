"""Analyses above the model primitives: inputs, statistics, figures, one run per CLI command, the
demo. Nothing in ``interp``, ``activations`` or ``probes`` imports this package."""

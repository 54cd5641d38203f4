"""Linear probes on cached activations: fitting, word-grouped validation with bootstrap CIs and
controls, saved directions, and cross-model comparison."""

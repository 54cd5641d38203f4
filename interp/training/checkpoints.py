"""Training checkpoints: what one holds, saving it as an HF folder, and loading a base as an RM.

``checkpoint-00000`` is before any update; each folder is loadable by
``load_model(ModelSpec(path, kind="rm"))`` and holds ``valuebias_checkpoint.json`` (step,
held-out accuracy, training record).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from interp.errors import UserError
from interp.models.fingerprint import fingerprint
from interp.models.loading import LoadedModel, ModelSpec, load_model
from interp.training.lora import lora_merged
from interp.training.rewards import PairwiseEval

CHECKPOINT_META = "valuebias_checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    """A point in training: ``step`` updates done (0 = before training); ``path`` if saved."""

    step: int
    epoch: float
    path: Path | None
    eval: PairwiseEval
    train_loss: float
    train_accuracy: float
    seconds: float


def load_base_as_rm(
    name: str, seed: int, device: str | None = None, **load
) -> tuple[LoadedModel, str]:
    """Load ``name`` as a float32 RM. A checkpoint without a score head gets a head seeded with
    ``seed``; returns the model and how its head was initialised. ``load``: further
    ``ModelSpec`` keywords. Training needs a linear score head (refused otherwise)."""
    try:
        loaded = load_model(ModelSpec(name, kind="rm", dtype="float32", device=device, **load))
        how = "checkpoint"
    except UserError as err:
        if "no trained reward head" not in str(err):
            raise
        spec = ModelSpec(
            name, kind="rm", dtype="float32", device=device, random_head_seed=seed, **load
        )
        loaded, how = load_model(spec), f"random normal(0, d^-1/2), seed {seed}"
    if loaded.reward_layout is not None and not loaded.reward_layout.linear:
        raise UserError(
            f"{name}: train-rm trains a linear score head; this checkpoint reads its reward "
            f"through its own head module ({loaded.reward_layout.name})"
        )
    return loaded, how


def save_checkpoint(loaded: LoadedModel, folder: Path, meta: dict) -> Path:
    """Save the model (LoRA merged) and tokenizer as an HF folder plus ``valuebias_checkpoint.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    with lora_merged(loaded.model):
        loaded.model.save_pretrained(str(folder))
    loaded.tokenizer.save_pretrained(str(folder))
    (folder / CHECKPOINT_META).write_text(json.dumps(meta, indent=1, default=str))
    return folder


def checkpoint_view(loaded: LoadedModel, step: int) -> LoadedModel:
    """The model being trained, as a ``LoadedModel`` named ``<name>@step<step>`` (eval mode)."""
    loaded.model.eval()
    return dataclasses.replace(
        loaded,
        name=f"{loaded.name}@step{step}",
        fingerprint=fingerprint(loaded.model, loaded.tokenizer, "rm"),
    )

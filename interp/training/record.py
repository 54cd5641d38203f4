"""The training record: what ``train_record.json`` says about a run before and after its steps.

``training_record`` (base model provenance, head initialisation, config, data record, encoding
and split facts, parameter counts, loss and optimiser, schedule) is built before the first step;
``checkpoint_row`` is one checkpoint's line (step, epoch, path, held-out accuracy/loss/margin,
training loss/accuracy over the window since the previous checkpoint, seconds).
"""

from __future__ import annotations

from interp.training.checkpoints import Checkpoint
from interp.training.config import TrainConfig


def training_record(prep, config: TrainConfig, data_record: dict | None, schedule) -> dict:
    """The training record (``train_record.json``) before any step."""
    encoded = prep.encoded
    steps_per_epoch, total_steps, warmup = schedule
    return {
        "base": prep.loaded.provenance(),
        "head_init": prep.head_init,
        "config": config.to_record(),
        "data": data_record or {},
        "encoding": {
            "template_mode": encoded.template_mode,
            "n_pairs_given": prep.n_given,
            "n_pairs_used": len(encoded),
            "n_truncated": encoded.n_truncated,
            "n_dropped_identical_after_truncation": encoded.n_dropped_identical,
            "ids_sha256": encoded.digest(),
            "truncation": "context keeps its last max_length//2 tokens (and BOS); responses are "
            "cut at the end; the closing ids are always kept",
        },
        "split": {
            "n_train": len(prep.train_idx),
            "n_eval": len(prep.eval_idx),
            "seed": config.seed,
        },
        "trainable_parameters": int(sum(p.numel() for p in prep.params)),
        "total_parameters": int(sum(p.numel() for p in prep.loaded.model.parameters())),
        "loss": "Bradley-Terry: mean -logsigmoid(r_chosen - r_rejected)",
        "optimiser": f"AdamW(lr={config.lr}, weight_decay={config.weight_decay}), "
        f"linear warm-up over {warmup} steps then constant, grad-norm clip {config.max_grad_norm}",
        "frozen_trunk_cache": prep.trunk is not None,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }


def checkpoint_row(c: Checkpoint) -> dict:
    return {
        "step": c.step,
        "epoch": round(c.epoch, 4),
        "path": str(c.path) if c.path else None,
        "heldout_accuracy": c.eval.accuracy,
        "heldout_loss": c.eval.loss,
        "heldout_margin": c.eval.margin,
        "n_heldout": c.eval.n_pairs,
        "train_loss": c.train_loss,
        "train_accuracy": c.train_accuracy,
        "seconds": round(c.seconds, 2),
    }

"""Resuming a training run after a kill: the state saved between optimiser steps, and restoring it.

A resume state is everything the rest of the run depends on, so a resumed run takes the same
steps as an uninterrupted one with the same seed:

- ``resume-NNNNN.safetensors`` (float32 tensors, no pickle): the trainable parameters by name,
  AdamW's per-parameter state (``exp_avg``, ``exp_avg_sq``, ``step``) and the torch CPU
  generator state;
- ``resume.json``: the step, the epoch and the batch within it, the batch-order generator's
  state at the start of that epoch (``numpy`` PCG64), the learning-rate scheduler's state, the
  training-loss window since the last checkpoint, the checkpoints recorded so far with their
  held-out results and hook outputs, and what a resume must match (the config and the digest of
  the encoded pairs).

The tensor file is written first and ``resume.json`` (which names it) last, each atomically, so a
kill at any moment leaves the previous complete state or the new one. Training removes both when
it finishes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from interp.atomic import atomic_path, atomic_write_text
from interp.errors import UserError
from interp.training.checkpoints import Checkpoint
from interp.training.rewards import PairwiseEval

STATE_JSON = "resume.json"


@dataclass
class ResumeState:
    """Where training stands after ``step`` updates (see the module docstring)."""

    step: int
    epoch: int
    batch: int
    epoch_rng: dict
    scheduler: dict
    param_groups: list
    window_losses: list[float]
    window_correct: list[float]
    checkpoints: list[dict]
    extras: dict
    must_match: dict
    tensors_file: str


def checkpoint_record(c: Checkpoint) -> dict:
    return {**asdict(c), "path": str(c.path) if c.path else None}


def checkpoint_from(record: dict) -> Checkpoint:
    fields = dict(record)
    fields["eval"] = PairwiseEval(**fields["eval"])
    fields["path"] = Path(fields["path"]) if fields["path"] else None
    return Checkpoint(**fields)


def save_state(
    folder: Path,
    state: ResumeState,
    params: dict[str, torch.Tensor],
    optimiser: torch.optim.Optimizer,
) -> None:
    """Write ``state`` with the trainable ``params`` (name -> tensor) and the optimiser's state."""
    tensors = {
        f"param/{name}": p.detach().to("cpu").contiguous().clone() for name, p in params.items()
    }
    opt = optimiser.state_dict()
    for index, per_param in opt["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"opt/{index}/{key}"] = value.detach().to("cpu").contiguous().clone()
    tensors["rng/torch"] = torch.get_rng_state()
    state.param_groups = opt["param_groups"]
    state.tensors_file = f"resume-{state.step:05d}.safetensors"
    with atomic_path(folder / state.tensors_file) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_text(folder / STATE_JSON, json.dumps(asdict(state), default=str))
    for old in folder.glob("resume-*.safetensors"):
        if old.name != state.tensors_file:
            old.unlink(missing_ok=True)


def load_state(folder: Path) -> tuple[ResumeState, dict[str, torch.Tensor]] | None:
    """The saved state and its tensors, or None when there is none; ``UserError`` if damaged."""
    path = folder / STATE_JSON
    if not path.is_file():
        return None
    try:
        state = ResumeState(**json.loads(path.read_text()))
        tensors = load_file(str(folder / state.tensors_file))
    except (OSError, ValueError, TypeError, SafetensorError) as err:
        raise UserError(
            f"{folder}: the saved training state cannot be read ({err}); rerun with --overwrite "
            "to start again"
        ) from None
    return state, tensors


def restore(
    state: ResumeState,
    tensors: dict[str, torch.Tensor],
    params: dict[str, torch.nn.Parameter],
    optimiser: torch.optim.Optimizer,
    scheduler,
) -> None:
    """Put the saved parameters, optimiser and scheduler state and RNG back in place."""
    missing = [n for n in params if f"param/{n}" not in tensors]
    if missing:
        raise UserError(
            f"the saved training state lacks parameter(s) {missing[:3]}; rerun with --overwrite"
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(tensors[f"param/{name}"].to(p.device, p.dtype))
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt/"):
            _, index, field = key.split("/", 2)
            per_param.setdefault(int(index), {})[field] = value
    optimiser.load_state_dict({"state": per_param, "param_groups": state.param_groups})
    scheduler.load_state_dict(state.scheduler)
    torch.set_rng_state(tensors["rng/torch"])


def clear_state(folder: Path) -> None:
    """Remove the resume state of a finished run."""
    (folder / STATE_JSON).unlink(missing_ok=True)
    for old in folder.glob("resume-*.safetensors"):
        old.unlink(missing_ok=True)

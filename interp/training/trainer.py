"""Bradley-Terry reward-model training with checkpoints (the paper's controlled experiment).

A base model (embedded name, HF id or folder) is loaded as ``AutoModelForSequenceClassification``
with one label; a checkpoint without a trained score head gets a seeded random head. Each
preference pair is formatted with the shared formatting route (``interp.formatting.
exchange_format``; single-turn pairs format exactly as the scorer does) and the model is trained
with the Bradley-Terry loss ``-logsigmoid(r_chosen - r_rejected)``, the reward read at each
sequence's last real token (right padding, explicit lengths).

Training methods (``TrainConfig.method``):

- ``lora``: low-rank adapters on the attention projections (``q_proj k_proj v_proj o_proj``) plus
  the score head. A small LoRA is implemented here (``LoRALinear``), so ``peft`` is not needed;
  adapters are merged into the weights when a checkpoint is saved, so checkpoints are plain
  HF folders.
- ``full``: every parameter.
- ``last-k``: the last ``train_last`` decoder blocks, the final norm and the score head.
- ``blocks``: only the decoder blocks ``train_blocks`` (e.g. ``(10, 11)``); the embeddings, every
  other block, the final norm and the score head (seeded random when the base has none) stay as
  they are, so the RM differs from its base exactly in those blocks.

Checkpoints (``checkpoint-00000`` = before any update, then every ``checkpoint_every`` steps and
at the end) are HF folders loadable by ``load_model(ModelSpec(path, kind="rm"))``; each holds
``valuebias_checkpoint.json`` (step, held-out accuracy, training record). Everything is seeded:
the head, the adapters, the train/held-out split and the batch order.

Units: rewards are the RM's raw scalar; losses are nats per pair; accuracy is the fraction of
held-out pairs with ``r_chosen > r_rejected`` (ties count one half).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.progress import NoProgress, Progress
from interp.training.checkpoints import (
    Checkpoint,
    checkpoint_view,
    load_base_as_rm,
    save_checkpoint,
)
from interp.training.config import TrainConfig
from interp.training.lora import attach_lora
from interp.training.pairs import EncodedPairs, PreferencePair, encode_pairs, split_indices
from interp.training.rewards import (
    FrozenTrunk,
    PairRewards,
    bradley_terry_loss,
    evaluate_pairs,
    pair_reward_fn,
)


@dataclass(frozen=True)
class TrainResult:
    """What training produced: checkpoints in order, the record written to ``train_record.json``."""

    out_dir: Path
    checkpoints: tuple[Checkpoint, ...]
    record: dict
    extra: dict = field(default_factory=dict)

    @property
    def final(self) -> Checkpoint:
        return self.checkpoints[-1]


def _trainable(loaded: LoadedModel, config: TrainConfig) -> list[nn.Parameter]:
    model = loaded.model
    head = loaded.reward_layout.head(model)
    for p in model.parameters():
        p.requires_grad_(config.method == "full")
    if config.method == "full":
        return [p for p in model.parameters()]
    if config.method == "blocks":
        for index in _blocks(loaded, config):
            for p in loaded.layers[index].parameters():
                p.requires_grad_(True)
        return [p for p in model.parameters() if p.requires_grad]
    for p in head.parameters():
        p.requires_grad_(True)
    if config.method == "lora":
        wrappers = attach_lora(
            loaded.backbone, config.lora_rank, config.lora_alpha, config.lora_targets, config.seed
        )
        for w in wrappers:
            w.lora_a.requires_grad_(True)
            w.lora_b.requires_grad_(True)
    else:
        k = min(config.train_last, loaded.n_layers)
        for layer in loaded.layers[loaded.n_layers - k :]:
            for p in layer.parameters():
                p.requires_grad_(True)
        norm = getattr(loaded.backbone, "norm", None)
        if norm is not None:
            for p in norm.parameters():
                p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _blocks(loaded: LoadedModel, config: TrainConfig) -> list[int]:
    """The blocks a ``blocks`` run trains (refusing indices the model does not have)."""
    bad = [i for i in config.train_blocks if i >= loaded.n_layers]
    if bad:
        raise UserError(f"--train-blocks {bad}: {loaded.name} has blocks 0..{loaded.n_layers - 1}")
    return sorted(set(config.train_blocks))


def _frozen_below(loaded: LoadedModel, config: TrainConfig) -> int:
    """How many bottom blocks never change (their output can be cached once)."""
    if config.method == "last-k":
        return max(0, loaded.n_layers - config.train_last)
    if config.method == "blocks":
        return _blocks(loaded, config)[0]
    return 0


CheckpointHook = Callable[[Checkpoint, LoadedModel], dict | None]


@dataclass
class _Prepared:
    """Everything a training loop needs, built once from the base model and the pairs."""

    loaded: LoadedModel
    head_init: str
    n_given: int
    encoded: EncodedPairs
    train_idx: np.ndarray
    eval_idx: np.ndarray
    params: list[nn.Parameter]
    trunk: FrozenTrunk | None
    reward_fn: PairRewards


def _prepare(
    base: str, pairs: Sequence[PreferencePair], config: TrainConfig, progress: Progress
) -> _Prepared:
    """Load the base as an RM, encode and split the pairs, pick the trainable parameters."""
    torch.manual_seed(config.seed)
    loaded, head_init = load_base_as_rm(base, config.seed, config.device)
    pairs = list(pairs)
    if config.max_pairs is not None:
        order = np.random.default_rng(config.seed).permutation(len(pairs))[: config.max_pairs]
        pairs = [pairs[i] for i in sorted(order)]
    encoded = encode_pairs(loaded, pairs, config.max_length)
    if len(encoded) < 2:
        raise UserError(f"only {len(encoded)} usable preference pair(s); need at least 2")
    train_idx, eval_idx = split_indices(len(encoded), config.eval_fraction, config.seed)
    params = _trainable(loaded, config)
    trunk = None
    frozen = _frozen_below(loaded, config)
    if frozen > 0:
        trunk = FrozenTrunk(
            loaded,
            list(encoded.chosen) + list(encoded.rejected),
            frozen,
            config.eval_batch_size,
            progress,
        )
    reward_fn = pair_reward_fn(loaded, encoded, trunk)
    return _Prepared(
        loaded, head_init, len(pairs), encoded, train_idx, eval_idx, params, trunk, reward_fn
    )


def _record(prep: _Prepared, config: TrainConfig, data_record: dict | None, schedule) -> dict:
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


def _checkpoint_row(c: Checkpoint) -> dict:
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


class _Loop:
    """One training run: the optimiser and schedule, the step loop and the checkpoints."""

    def __init__(
        self,
        prep: _Prepared,
        config: TrainConfig,
        out_dir: Path,
        record: dict,
        schedule: tuple[int, int, int],
        on_checkpoint: CheckpointHook | None,
    ) -> None:
        self.prep, self.config, self.out_dir, self.record = prep, config, out_dir, record
        self.steps_per_epoch, self.total_steps, warmup = schedule
        self.optimiser = torch.optim.AdamW(
            prep.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimiser, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0
        )
        self.checkpoint_steps = {0, self.total_steps}
        if config.checkpoint_every:
            self.checkpoint_steps |= set(
                range(config.checkpoint_every, self.total_steps, config.checkpoint_every)
            )
        self.on_checkpoint = on_checkpoint
        self.checkpoints: list[Checkpoint] = []
        self.extras: dict = {}
        self.window_losses: list[float] = []
        self.window_correct: list[float] = []
        self.t0 = time.perf_counter()

    def _saves(self, step: int) -> bool:
        mode = self.config.save_checkpoints
        ends = step in (0, self.total_steps)
        return (
            mode == "all"
            or (mode == "ends" and ends)
            or (mode == "final" and step == self.total_steps)
        )

    def checkpoint(self, step: int) -> None:
        prep, config = self.prep, self.config
        result = evaluate_pairs(
            prep.loaded, prep.encoded, prep.eval_idx, config.eval_batch_size, prep.reward_fn
        )
        path = self.out_dir / f"checkpoint-{step:05d}" if self._saves(step) else None
        window = self.window_losses, self.window_correct
        ckpt = Checkpoint(
            step=step,
            epoch=step / self.steps_per_epoch,
            path=path,
            eval=result,
            train_loss=float(np.mean(window[0])) if window[0] else math.nan,
            train_accuracy=float(np.mean(window[1])) if window[1] else math.nan,
            seconds=time.perf_counter() - self.t0,
        )
        self.window_losses.clear()
        self.window_correct.clear()
        if path is not None:
            meta = {
                "step": step,
                "epoch": ckpt.epoch,
                "heldout_accuracy": result.accuracy,
                "heldout_loss": result.loss,
                "n_heldout": result.n_pairs,
                "training": {k: self.record[k] for k in ("base", "head_init", "config", "data")},
            }
            save_checkpoint(prep.loaded, path, meta)
        if self.on_checkpoint is not None:
            extra = self.on_checkpoint(ckpt, checkpoint_view(prep.loaded, step))
            if extra:
                self.extras[step] = extra
        self.checkpoints.append(ckpt)

    def step(self, idx: np.ndarray) -> None:
        """One optimiser update on the training pairs ``idx``."""
        prep = self.prep
        prep.loaded.model.train()
        r_c, r_r = prep.reward_fn(idx)
        loss = bradley_terry_loss(r_c, r_r)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prep.params, self.config.max_grad_norm)
        self.optimiser.step()
        self.scheduler.step()
        self.window_losses.append(float(loss.detach()))
        self.window_correct.append(float((r_c > r_r).float().mean()))

    def run(self, progress: Progress) -> None:
        config = self.config
        rng = np.random.default_rng(config.seed + 1)
        name = self.prep.loaded.name
        progress.start(self.total_steps + 1, f"training RM from {name} ({config.method})")
        self.checkpoint(0)
        progress.advance()
        step = 0
        for _ in range(config.epochs):
            order = rng.permutation(self.prep.train_idx)
            for start in range(0, len(order), config.batch_size):
                self.step(order[start : start + config.batch_size])
                step += 1
                if step in self.checkpoint_steps:
                    self.checkpoint(step)
                progress.advance()
        progress.close()
        self.prep.loaded.model.eval()


def train_reward_model(
    base: str,
    pairs: Sequence[PreferencePair],
    config: TrainConfig,
    out_dir: Path,
    data_record: dict | None = None,
    on_checkpoint: CheckpointHook | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train an RM from ``base`` on ``pairs``; write checkpoints and ``train_record.json``.

    ``on_checkpoint(checkpoint, model_view)`` runs at every checkpoint with the model in eval mode
    (e.g. lexicon scoring for durability curves); a dict it returns is stored in the record under
    ``checkpoint_extras``. Returns a ``TrainResult``.
    """
    config.check()
    progress = progress or NoProgress()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prep = _prepare(base, pairs, config, progress)
    steps_per_epoch = math.ceil(len(prep.train_idx) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(0, min(config.warmup_steps, total_steps - 1))
    schedule = (steps_per_epoch, total_steps, warmup)
    record = _record(prep, config, data_record, schedule)
    loop = _Loop(prep, config, out_dir, record, schedule, on_checkpoint)
    loop.run(progress)
    record["checkpoints"] = [_checkpoint_row(c) for c in loop.checkpoints]
    record["seconds"] = round(time.perf_counter() - loop.t0, 2)
    if loop.extras:
        record["checkpoint_extras"] = loop.extras
    (out_dir / "train_record.json").write_text(json.dumps(record, indent=1, default=str))
    return TrainResult(out_dir, tuple(loop.checkpoints), record, loop.extras)

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

Resume (``interp.training.resume``): at every checkpoint and at most every
``state_every_s`` seconds between, the whole training state is saved in ``out_dir``; a run
started again on the same ``out_dir`` with the same config and pairs continues from the last
saved state and ends with the same weights as an uninterrupted run.

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

from interp.atomic import write_json
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
from interp.training.record import checkpoint_row, training_record
from interp.training.resume import (
    ResumeState,
    checkpoint_from,
    checkpoint_record,
    clear_state,
    load_state,
    restore,
    save_state,
)
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
    loaded, head_init = load_base_as_rm(base, config.seed, config.device, **config.load_kwargs())
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
        self.named = {n: p for n, p in prep.loaded.model.named_parameters() if p.requires_grad}
        self.last_state = time.perf_counter()

    def must_match(self) -> dict:
        """What a resumed run must share with the interrupted one."""
        config = {
            k: v for k, v in self.config.to_record().items() if k not in ("device", "state_every_s")
        }
        return {
            "config": config,
            "ids_sha256": self.prep.encoded.digest(),
            "train_idx": [int(i) for i in self.prep.train_idx],
            "base_fingerprint": self.record["base"]["fingerprint"],
        }

    def save_state(self, step: int, epoch: int, batch: int, epoch_rng: dict) -> None:
        state = ResumeState(
            step=step, epoch=epoch, batch=batch, epoch_rng=epoch_rng,
            scheduler=self.scheduler.state_dict(), param_groups=[],
            window_losses=list(self.window_losses), window_correct=list(self.window_correct),
            checkpoints=[checkpoint_record(c) for c in self.checkpoints],
            extras={str(k): v for k, v in self.extras.items()}, must_match=self.must_match(),
            tensors_file="",
        )  # fmt: skip
        save_state(self.out_dir, state, self.named, self.optimiser)
        self.last_state = time.perf_counter()

    def resume_from(self, state: ResumeState, tensors: dict) -> None:
        if state.must_match != json.loads(json.dumps(self.must_match())):
            raise UserError(
                f"{self.out_dir} holds an unfinished training run with other settings or data; "
                "rerun with the original settings to resume, or pass --overwrite to start again"
            )
        restore(state, tensors, self.named, self.optimiser, self.scheduler)
        self.window_losses, self.window_correct = state.window_losses, state.window_correct
        self.checkpoints = [checkpoint_from(r) for r in state.checkpoints]
        self.extras = {int(k): v for k, v in state.extras.items()}

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

    def run(self, progress: Progress, state: ResumeState | None = None) -> None:
        """All epochs; from ``state`` (a resumed run) or from the start."""
        config = self.config
        rng = np.random.default_rng(config.seed + 1)
        name = self.prep.loaded.name
        progress.start(self.total_steps + 1, f"training RM from {name} ({config.method})")
        if state is None:
            self.checkpoint(0)
            self.save_state(0, 0, 0, rng.bit_generator.state)
            first = (0, 0)
            step = 0
        else:
            rng.bit_generator.state = state.epoch_rng
            first = (state.epoch, state.batch)
            step = state.step
            progress.advance(step)
        progress.advance()
        for epoch in range(first[0], config.epochs):
            epoch_rng = rng.bit_generator.state
            order = rng.permutation(self.prep.train_idx)
            starts = range(0, len(order), config.batch_size)
            for batch, start in enumerate(starts):
                if (epoch, batch) < first:
                    continue
                self.step(order[start : start + config.batch_size])
                step += 1
                at_checkpoint = step in self.checkpoint_steps
                if at_checkpoint:
                    self.checkpoint(step)
                due = time.perf_counter() - self.last_state >= config.state_every_s
                if (at_checkpoint or due) and step < self.total_steps:
                    self.save_state(step, epoch, batch + 1, epoch_rng)
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
    record = training_record(prep, config, data_record, schedule)
    loop = _Loop(prep, config, out_dir, record, schedule, on_checkpoint)
    saved = load_state(out_dir)
    if saved is not None:
        loop.resume_from(*saved)
        progress.note(f"resuming the training in {out_dir} after step {saved[0].step}")
        record["resumed_after_step"] = saved[0].step
    loop.run(progress, saved[0] if saved is not None else None)
    record["checkpoints"] = [checkpoint_row(c) for c in loop.checkpoints]
    record["seconds"] = round(time.perf_counter() - loop.t0, 2)
    if loop.extras:
        record["checkpoint_extras"] = loop.extras
    write_json(record, out_dir / "train_record.json")
    clear_state(out_dir)
    return TrainResult(out_dir, tuple(loop.checkpoints), record, loop.extras)

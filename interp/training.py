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

Checkpoints (``checkpoint-00000`` = before any update, then every ``checkpoint_every`` steps and
at the end) are HF folders loadable by ``load_model(ModelSpec(path, kind="rm"))``; each holds
``valuebias_checkpoint.json`` (step, held-out accuracy, training record). Everything is seeded:
the head, the adapters, the train/held-out split and the batch order.

Units: rewards are the RM's raw scalar; losses are nats per pair; accuracy is the fraction of
held-out pairs with ``r_chosen > r_rejected`` (ties count one half).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from interp.batching import right_pad
from interp.errors import UserError
from interp.formatting import exchange_format, response_ids
from interp.loading import LoadedModel, ModelSpec, fingerprint, load_model
from interp.progress import NoProgress, Progress
from interp.spans import forward_span

METHODS = ("lora", "full", "last-k")
SAVE_MODES = ("all", "ends", "final", "none")
CHECKPOINT_META = "valuebias_checkpoint.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: a context (``(role, text)`` turns ending with a user turn) and two replies."""

    context: tuple[tuple[str, str], ...]
    chosen: str
    rejected: str


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters. Defaults are CPU-sized (see the module docstring for the paper's).

    The paper used LoRA r=32, alpha=64 on the attention projections, lr 1e-5, effective batch 16,
    2 epochs on a GPU. The defaults here (LoRA r=8, alpha=16, lr 1e-4, batch 8, 1 epoch,
    192 tokens) fit a few hundred pairs in minutes on two CPU cores; a larger learning rate makes
    up for the far fewer steps.
    """

    method: str = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    train_last: int = 4
    epochs: int = 1
    lr: float = 1e-4
    batch_size: int = 8
    max_length: int = 192
    eval_fraction: float = 0.2
    checkpoint_every: int = 0
    save_checkpoints: str = "all"
    seed: int = 0
    weight_decay: float = 0.0
    warmup_steps: int = 2
    max_grad_norm: float = 1.0
    eval_batch_size: int = 16
    max_pairs: int | None = None
    device: str | None = None

    def check(self) -> None:
        """Raise ``UserError`` for impossible settings."""
        if self.method not in METHODS:
            raise UserError(f"unknown training method {self.method!r}; use {', '.join(METHODS)}")
        if self.save_checkpoints not in SAVE_MODES:
            raise UserError(f"--save must be one of {', '.join(SAVE_MODES)}")
        positive = {
            "epochs": self.epochs,
            "batch size": self.batch_size,
            "max length": self.max_length,
            "LoRA rank": self.lora_rank,
            "eval batch size": self.eval_batch_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"{name} must be at least 1 (got {value})")
        if self.method == "last-k" and self.train_last < 1:
            raise UserError("--train-last K needs K >= 1")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise UserError("--eval-fraction must be in [0, 1)")
        if self.lr <= 0:
            raise UserError("--lr must be positive")
        if self.checkpoint_every < 0:
            raise UserError("--checkpoint-every must be >= 0 (0: only before and after training)")
        if self.max_length < 16:
            raise UserError("--max-length must be at least 16 tokens")

    def to_record(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------ LoRA
class LoRALinear(nn.Module):
    """``base(x) + (alpha / rank) * B(A(x))`` with ``A`` [rank, in] random and ``B`` [out, rank] zero.

    The frozen base layer is kept as is; ``merged_weight()`` returns ``W + scale * B @ A``.
    """

    def __init__(
        self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        a = torch.empty(rank, base.in_features, dtype=base.weight.dtype)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)
        self.lora_a = nn.Parameter(a.to(base.weight.device))
        self.lora_b = nn.Parameter(
            torch.zeros(base.out_features, rank, dtype=base.weight.dtype, device=base.weight.device)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale

    def merged_weight(self) -> torch.Tensor:
        return self.base.weight + (self.lora_b @ self.lora_a) * self.scale

    def merged_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the merged weights (a copy; the adapter is unchanged)."""
        out = nn.Linear(
            self.base.in_features,
            self.base.out_features,
            bias=self.base.bias is not None,
            device=self.base.weight.device,
            dtype=self.base.weight.dtype,
        )
        with torch.no_grad():
            out.weight.copy_(self.merged_weight())
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out


def attach_lora(
    backbone: nn.Module, rank: int, alpha: float, targets: Sequence[str], seed: int
) -> list[LoRALinear]:
    """Wrap every ``nn.Linear`` named in ``targets`` inside ``backbone`` with a ``LoRALinear``."""
    generator = torch.Generator().manual_seed(seed)
    found: list[tuple[nn.Module, str, nn.Linear]] = []
    for _, module in backbone.named_modules():
        for name, child in module.named_children():
            if name in targets and isinstance(child, nn.Linear):
                found.append((module, name, child))
    if not found:
        raise UserError(f"LoRA: no linear layer named {', '.join(targets)} in the model")
    wrappers = []
    for parent, name, child in found:
        wrapper = LoRALinear(child, rank, alpha, generator)
        setattr(parent, name, wrapper)
        wrappers.append(wrapper)
    return wrappers


@contextlib.contextmanager
def lora_merged(model: nn.Module) -> Iterator[None]:
    """Temporarily replace every ``LoRALinear`` by a plain merged ``nn.Linear`` (for saving)."""
    swapped: list[tuple[nn.Module, str, LoRALinear]] = []
    for _, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                swapped.append((module, name, child))
    try:
        for parent, name, wrapper in swapped:
            setattr(parent, name, wrapper.merged_linear())
        yield
    finally:
        for parent, name, wrapper in swapped:
            setattr(parent, name, wrapper)


# ------------------------------------------------------------------------------- encoding
@dataclass(frozen=True)
class EncodedPairs:
    """Token ids of kept pairs (``chosen[i]``, ``rejected[i]``) and what happened to the rest."""

    chosen: tuple[tuple[int, ...], ...]
    rejected: tuple[tuple[int, ...], ...]
    source_index: tuple[int, ...]
    n_truncated: int
    n_dropped_identical: int
    template_mode: str

    def __len__(self) -> int:
        return len(self.chosen)

    def digest(self) -> str:
        """sha256 of every kept pair's token ids (what the model was trained and tested on)."""
        h = hashlib.sha256()
        for c, r in zip(self.chosen, self.rejected):
            h.update(json.dumps([c, r]).encode())
        return h.hexdigest()


def _truncate(
    prefix: Sequence[int], response: Sequence[int], suffix: Sequence[int], max_length: int, bos
) -> tuple[list[int], bool]:
    """Keep at most half the budget for the context (its end; BOS kept), then the response's
    start, then the full closing ids (the reward is read at the end of the assistant turn)."""
    prefix, response, suffix = list(prefix), list(response), list(suffix)
    if len(prefix) + len(response) + len(suffix) <= max_length:
        return prefix + response + suffix, False
    keep_prefix = max_length // 2
    if len(prefix) > keep_prefix:
        lead = [prefix[0]] if bos is not None and prefix and prefix[0] == bos else []
        prefix = lead + prefix[len(prefix) - (keep_prefix - len(lead)) :]
    room = max_length - len(prefix) - len(suffix)
    return prefix + response[: max(room, 0)] + suffix, True


def encode_pairs(
    loaded: LoadedModel, pairs: Sequence[PreferencePair], max_length: int
) -> EncodedPairs:
    """Format and tokenise every pair with the shared route; truncate to ``max_length`` tokens.

    A pair whose chosen and rejected ids are identical after truncation is dropped (counted).
    """
    chosen, rejected, index = [], [], []
    n_trunc = n_same = 0
    mode = ""
    bos = loaded.tokenizer.bos_token_id
    for i, pair in enumerate(pairs):
        try:
            fmt = exchange_format(loaded, list(pair.context))
        except ValueError as err:
            raise UserError(f"preference pair {i}: {err}") from None
        mode = fmt.mode
        ids = []
        cut = False
        for text in (pair.chosen, pair.rejected):
            resp = response_ids(loaded, fmt, text) if text else []
            seq, was_cut = _truncate(fmt.prefix_ids, resp, fmt.suffix_ids, max_length, bos)
            ids.append(tuple(seq))
            cut = cut or was_cut
        n_trunc += int(cut)
        if ids[0] == ids[1]:
            n_same += 1
            continue
        chosen.append(ids[0])
        rejected.append(ids[1])
        index.append(i)
    return EncodedPairs(tuple(chosen), tuple(rejected), tuple(index), n_trunc, n_same, mode)


def split_indices(n: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into (train, held-out); at least one of each if n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    n_eval = int(round(eval_fraction * n))
    if eval_fraction > 0 and n >= 2:
        n_eval = min(max(n_eval, 1), n - 1)
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])


# ------------------------------------------------------------------------------- rewards
def rewards(loaded: LoadedModel, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Rewards ``[len(sequences)]`` (float32, on the model's device, differentiable).

    Sequences are right-padded; each reward is the head applied to the final-normed hidden state
    at the sequence's last real token (the same reading as ``interp.scoring``).
    """
    batch = right_pad(sequences, loaded.tokenizer.pad_token_id).to(loaded.device)
    hidden = loaded.backbone(**batch.model_inputs()).last_hidden_state
    last = hidden[torch.arange(batch.size, device=loaded.device), batch.lengths - 1]
    return loaded.reward_layout.head(loaded.model)(last).float()[:, 0]


class FrozenTrunk:
    """Cached ``resid_pre`` of block ``start`` for every sequence, for ``last-k`` training.

    Blocks below ``start`` are frozen, so their output never changes during training: it is
    computed once (batched, right-padded, no gradients) and each training or evaluation step runs
    only blocks ``start ..``, the final norm and the head. Tensors are ``[length, d_model]``.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        sequences: Sequence[Sequence[int]],
        start: int,
        batch_size: int,
        progress: Progress,
    ) -> None:
        self.loaded = loaded
        self.start = start
        self.hidden: list[torch.Tensor] = []
        pad = loaded.tokenizer.pad_token_id
        progress.start(len(sequences), f"frozen blocks 0-{start - 1}: caching their output")
        with torch.no_grad():
            for s in range(0, len(sequences), batch_size):
                batch = right_pad(sequences[s : s + batch_size], pad).to(loaded.device)
                out = forward_span(loaded.backbone, 0, start, **batch.model_inputs())
                for row, length in enumerate(batch.lengths.tolist()):
                    self.hidden.append(out[row, :length].clone())
                progress.advance(batch.size)
        progress.close()

    def rewards(self, indices: Sequence[int]) -> torch.Tensor:
        """Rewards ``[len(indices)]`` of the cached sequences (differentiable in the top blocks)."""
        loaded = self.loaded
        parts = [self.hidden[i] for i in indices]
        lengths = torch.tensor([len(p) for p in parts], device=loaded.device)
        width = int(lengths.max())
        hidden = parts[0].new_zeros((len(parts), width, parts[0].shape[-1]))
        mask = torch.zeros((len(parts), width), dtype=torch.long, device=loaded.device)
        for row, p in enumerate(parts):
            hidden[row, : len(p)] = p
            mask[row, : len(p)] = 1
        final = forward_span(
            loaded.backbone, self.start, loaded.n_layers, hidden=hidden, attention_mask=mask
        )
        last = final[torch.arange(len(parts), device=loaded.device), lengths - 1]
        head = loaded.reward_layout.head(loaded.model)
        return head(loaded.backbone.norm(last)).float()[:, 0]


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of ``-logsigmoid(r_chosen - r_rejected)`` (nats per pair)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


@dataclass(frozen=True)
class PairwiseEval:
    """Held-out result: ``accuracy`` (ties 1/2), mean BT ``loss``, mean ``margin`` = r_c - r_r."""

    accuracy: float
    loss: float
    margin: float
    n_pairs: int


PairRewards = Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]]


def pair_reward_fn(
    loaded: LoadedModel, encoded: EncodedPairs, trunk: FrozenTrunk | None = None
) -> PairRewards:
    """``f(pair indices) -> (r_chosen, r_rejected)``: one forward pass over both sides.

    With a ``FrozenTrunk`` (built over ``encoded.chosen + encoded.rejected``) only the top
    blocks run.
    """
    n = len(encoded)

    def f(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = [int(i) for i in indices]
        if trunk is not None:
            r = trunk.rewards(indices + [n + i for i in indices])
        else:
            seqs = [encoded.chosen[i] for i in indices] + [encoded.rejected[i] for i in indices]
            r = rewards(loaded, seqs)
        return r[: len(indices)], r[len(indices) :]

    return f


@torch.no_grad()
def evaluate_pairs(
    loaded: LoadedModel,
    encoded: EncodedPairs,
    indices: Sequence[int],
    batch_size: int = 16,
    reward_fn: PairRewards | None = None,
) -> PairwiseEval:
    """Pairwise accuracy, loss and margin of the model on the pairs ``indices`` of ``encoded``."""
    indices = list(indices)
    if not indices:
        return PairwiseEval(math.nan, math.nan, math.nan, 0)
    reward_fn = reward_fn or pair_reward_fn(loaded, encoded)
    was_training = loaded.model.training
    loaded.model.eval()
    margins = []
    for start in range(0, len(indices), batch_size):
        r_c, r_r = reward_fn(indices[start : start + batch_size])
        margins.append((r_c - r_r).cpu())
    loaded.model.train(was_training)
    m = torch.cat(margins).double()
    acc = float(((m > 0).double() + 0.5 * (m == 0).double()).mean())
    loss = float(-F.logsigmoid(m).mean())
    return PairwiseEval(acc, loss, float(m.mean()), len(indices))


# ------------------------------------------------------------------------------- training
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


def load_base_as_rm(name: str, seed: int, device: str | None = None) -> tuple[LoadedModel, str]:
    """Load ``name`` as a float32 RM. A checkpoint without a score head gets a head seeded with
    ``seed``; returns the model and how its head was initialised."""
    try:
        return load_model(ModelSpec(name, kind="rm", dtype="float32", device=device)), "checkpoint"
    except UserError as err:
        if "no trained reward head" not in str(err):
            raise
    spec = ModelSpec(name, kind="rm", dtype="float32", device=device, random_head_seed=seed)
    return load_model(spec), f"random normal(0, d^-1/2), seed {seed}"


def _trainable(loaded: LoadedModel, config: TrainConfig) -> list[nn.Parameter]:
    model = loaded.model
    head = loaded.reward_layout.head(model)
    for p in model.parameters():
        p.requires_grad_(config.method == "full")
    if config.method == "full":
        return [p for p in model.parameters()]
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


CheckpointHook = Callable[[Checkpoint, LoadedModel], dict | None]


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
    if config.method == "last-k" and loaded.n_layers - config.train_last > 0:
        trunk = FrozenTrunk(
            loaded,
            list(encoded.chosen) + list(encoded.rejected),
            loaded.n_layers - config.train_last,
            config.eval_batch_size,
            progress,
        )
    reward_fn = pair_reward_fn(loaded, encoded, trunk)
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = max(0, min(config.warmup_steps, total_steps - 1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / (warmup + 1)) if warmup else 1.0
    )
    record = {
        "base": loaded.provenance(),
        "head_init": head_init,
        "config": config.to_record(),
        "data": data_record or {},
        "encoding": {
            "template_mode": encoded.template_mode,
            "n_pairs_given": len(pairs),
            "n_pairs_used": len(encoded),
            "n_truncated": encoded.n_truncated,
            "n_dropped_identical_after_truncation": encoded.n_dropped_identical,
            "ids_sha256": encoded.digest(),
            "truncation": "context keeps its last max_length//2 tokens (and BOS); responses are "
            "cut at the end; the closing ids are always kept",
        },
        "split": {"n_train": len(train_idx), "n_eval": len(eval_idx), "seed": config.seed},
        "trainable_parameters": int(sum(p.numel() for p in params)),
        "total_parameters": int(sum(p.numel() for p in loaded.model.parameters())),
        "loss": "Bradley-Terry: mean -logsigmoid(r_chosen - r_rejected)",
        "optimiser": f"AdamW(lr={config.lr}, weight_decay={config.weight_decay}), "
        f"linear warm-up over {warmup} steps then constant, grad-norm clip {config.max_grad_norm}",
        "frozen_trunk_cache": trunk is not None,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }
    checkpoint_steps = {0, total_steps}
    if config.checkpoint_every:
        checkpoint_steps |= set(
            range(config.checkpoint_every, total_steps, config.checkpoint_every)
        )
    rng = np.random.default_rng(config.seed + 1)
    checkpoints: list[Checkpoint] = []
    extras: dict = {}
    window_losses: list[float] = []
    window_correct: list[float] = []
    t0 = time.perf_counter()

    def make_checkpoint(step: int) -> None:
        result = evaluate_pairs(loaded, encoded, eval_idx, config.eval_batch_size, reward_fn)
        ends = step in (0, total_steps)
        mode = config.save_checkpoints
        save = (
            mode == "all" or (mode == "ends" and ends) or (mode == "final" and step == total_steps)
        )
        path = out_dir / f"checkpoint-{step:05d}" if save else None
        ckpt = Checkpoint(
            step=step,
            epoch=step / steps_per_epoch,
            path=path,
            eval=result,
            train_loss=float(np.mean(window_losses)) if window_losses else math.nan,
            train_accuracy=float(np.mean(window_correct)) if window_correct else math.nan,
            seconds=time.perf_counter() - t0,
        )
        window_losses.clear()
        window_correct.clear()
        if path is not None:
            meta = {
                "step": step,
                "epoch": ckpt.epoch,
                "heldout_accuracy": result.accuracy,
                "heldout_loss": result.loss,
                "n_heldout": result.n_pairs,
                "training": {k: record[k] for k in ("base", "head_init", "config", "data")},
            }
            save_checkpoint(loaded, path, meta)
        if on_checkpoint is not None:
            extra = on_checkpoint(ckpt, checkpoint_view(loaded, step))
            if extra:
                extras[step] = extra
        checkpoints.append(ckpt)

    progress.start(total_steps + 1, f"training RM from {loaded.name} ({config.method})")
    make_checkpoint(0)
    progress.advance()
    step = 0
    for _ in range(config.epochs):
        order = rng.permutation(train_idx)
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            loaded.model.train()
            r_c, r_r = reward_fn(idx)
            loss = bradley_terry_loss(r_c, r_r)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimiser.step()
            scheduler.step()
            step += 1
            window_losses.append(float(loss.detach()))
            window_correct.append(float((r_c > r_r).float().mean()))
            if step in checkpoint_steps:
                make_checkpoint(step)
            progress.advance()
    progress.close()
    loaded.model.eval()
    record["checkpoints"] = [
        {
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
        for c in checkpoints
    ]
    record["seconds"] = round(time.perf_counter() - t0, 2)
    if extras:
        record["checkpoint_extras"] = extras
    (out_dir / "train_record.json").write_text(json.dumps(record, indent=1, default=str))
    return TrainResult(out_dir, tuple(checkpoints), record, extras)

"""Training settings: one validated config (method, LoRA, optimiser, batching, checkpoints, seed).

The paper used LoRA r=32, alpha=64 on the attention projections, lr 1e-5, effective batch 16,
2 epochs on a GPU. The defaults here (LoRA r=8, alpha=16, lr 1e-4, batch 8, 1 epoch, 192 tokens)
fit a few hundred pairs in minutes on two CPU cores; a larger learning rate makes up for the far
fewer steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from interp.errors import UserError

METHODS = ("lora", "full", "last-k", "blocks")
SAVE_MODES = ("all", "ends", "final", "none")
CHECKPOINT_META = "valuebias_checkpoint.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


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
    train_blocks: tuple[int, ...] = ()
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
    state_every_s: float = 300.0
    trust_remote_code: bool = False
    device_map: str | None = None
    max_memory: tuple[tuple[str, str], ...] | None = None

    def load_kwargs(self) -> dict:
        """``ModelSpec`` keywords for loading the base (custom code, placement)."""
        return {
            "trust_remote_code": self.trust_remote_code,
            "device_map": self.device_map,
            "max_memory": self.max_memory,
        }

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
        if self.method == "blocks" and (not self.train_blocks or min(self.train_blocks) < 0):
            raise UserError("--train-blocks needs one or more block indices (0 = the first)")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise UserError("--eval-fraction must be in [0, 1)")
        if self.lr <= 0:
            raise UserError("--lr must be positive")
        if self.checkpoint_every < 0:
            raise UserError("--checkpoint-every must be >= 0 (0: only before and after training)")
        if self.max_length < 16:
            raise UserError("--max-length must be at least 16 tokens")
        if not self.lora_alpha > 0:
            raise UserError(f"--lora-alpha must be positive (got {self.lora_alpha:g})")
        if self.max_pairs is not None and self.max_pairs < 2:
            raise UserError("--max-pairs must be at least 2")
        if self.state_every_s < 0:
            raise UserError("--state-every must be >= 0 seconds")

    def to_record(self) -> dict:
        return dataclasses.asdict(self)

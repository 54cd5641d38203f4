"""A small LoRA: low-rank adapters on chosen linear layers, merged into plain weights for saving.

``peft`` is not needed; ``lora_merged`` swaps every adapter for a plain ``nn.Linear`` holding
``W + (alpha / rank) B A`` so checkpoints are ordinary Hugging Face folders.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from interp.errors import UserError


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

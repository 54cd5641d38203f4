"""Run a reward model's own head code on hidden states we supply (non-linear heads).

A checkpoint with its own model code (ArmoRM's gating network, QRM's quantile head, URM's
uncertainty head) computes its reward in its ``forward`` from the backbone's final hidden states
and the input ids (ArmoRM reads a prompt position for its gating and the last token for its
objectives). ``HeadModule.reward(hidden, input_ids)`` runs exactly that code with the backbone
swapped, for the duration of the call, for a stand-in that returns ``hidden``: whatever the head
does, it does to the hidden states we give it (the prefix-cached sweep's, a patched run's, or a
value-lens depth's normed residual).

``hidden`` is ``[B, T, d_model]`` final-*normed* hidden states for the whole sequence ``input_ids``
``[B, T]`` (no padding: the head reads the last position as the last real token). Rewards come
back as float32 ``[B]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


class _GivenHidden(nn.Module):
    """Stands in for the backbone: returns the hidden states it was given, whatever it is asked."""

    def __init__(self, hidden: torch.Tensor) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, *args, **kwargs):
        from transformers.modeling_outputs import BaseModelOutputWithPast

        return BaseModelOutputWithPast(last_hidden_state=self.hidden)


@contextlib.contextmanager
def backbone_returning(model: nn.Module, hidden: torch.Tensor) -> Iterator[None]:
    """Within the block, ``model``'s backbone (``base_model_prefix`` child) returns ``hidden``."""
    prefix = model.base_model_prefix
    original = getattr(model, prefix)
    setattr(model, prefix, _GivenHidden(hidden))
    try:
        yield
    finally:
        setattr(model, prefix, original)


class HeadModule:
    """The model's own head: ``reward(hidden [B, T, d], input_ids [B, T]) -> float32 [B]``."""

    def __init__(self, model: nn.Module, read: Callable[[Any], torch.Tensor]) -> None:
        self.model = model
        self.read = read
        prefix = model.base_model_prefix
        head_params = [p for n, p in model.named_parameters() if not n.startswith(prefix + ".")]
        self.device = head_params[0].device if head_params else next(model.parameters()).device

    @torch.no_grad()
    def reward(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = hidden.to(self.device)
        ids = input_ids.to(self.device)
        with backbone_returning(self.model, hidden):
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids))
        return self.read(out).float()

    def reward_chunked(
        self, hidden: Callable[[int, int], torch.Tensor], ids: torch.Tensor, rows: int
    ) -> torch.Tensor:
        """Rewards of ``ids`` ``[B, T]`` in row chunks of ``rows``; ``hidden(start, stop)`` builds
        each chunk's ``[stop - start, T, d]`` hidden states (so a batch never holds them all)."""
        out = [
            self.reward(hidden(s, min(s + rows, ids.shape[0])), ids[s : s + rows]).cpu()
            for s in range(0, ids.shape[0], rows)
        ]
        return torch.cat(out) if out else torch.empty(0)

"""Run a span of decoder blocks: the primitive under patching, the value lens and last-K training.

``forward_span(backbone, start, stop, ...)`` runs blocks ``start .. stop-1`` only: the blocks
outside the span are swapped for a pass-through module for the duration of the call, and the
model's own forward still builds the attention masks and rotary embeddings, so a span started
from cached activations (``hidden`` = ``resid_pre`` of block ``start``) computes exactly what the
full model computes there. It returns the residual stream after block ``stop-1`` (before the
final norm), ``[batch, seq, d_model]`` in the model's dtype. ``cache_from``/``cache_kv`` move
per-layer keys and values in and out of a transformers ``DynamicCache``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class Passthrough(nn.Module):
    """Stands in for a decoder block outside the span: returns its hidden states unchanged."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return hidden_states


@contextlib.contextmanager
def only_blocks(backbone: nn.Module, start: int, stop: int) -> Iterator[None]:
    """Within the block, ``backbone.layers[i]`` for ``i`` outside ``[start, stop)`` pass through."""
    layers = backbone.layers
    saved = {}
    try:
        for i in range(len(layers)):
            if not start <= i < stop:
                saved[i] = layers[i]
                layers[i] = Passthrough()
        yield
    finally:
        for i, module in saved.items():
            layers[i] = module


def forward_span(
    backbone: nn.Module,
    start: int,
    stop: int,
    *,
    input_ids: torch.Tensor | None = None,
    hidden: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    cache=None,
    past_length: int = 0,
) -> torch.Tensor:
    """Residual stream after block ``stop-1`` (pre final norm), ``[B, T, d_model]``.

    Give ``input_ids`` when ``start == 0``, else ``hidden`` = ``resid_pre`` of block ``start``.
    ``cache`` (a ``DynamicCache`` whose every layer holds ``past_length`` positions, or an empty
    one) is used and extended by the blocks in the span. Position ids are
    ``past_length + arange(T)``.
    """
    if (input_ids is None) == (hidden is None):
        raise ValueError("give exactly one of input_ids and hidden")
    if start > 0 and hidden is None:
        raise ValueError("a span that starts after block 0 needs the hidden states entering it")
    x = input_ids if input_ids is not None else hidden
    length = x.shape[1]
    position_ids = (torch.arange(length, device=x.device) + past_length)[None]
    captured: list[torch.Tensor] = []
    handle = backbone.norm.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    try:
        with only_blocks(backbone, start, stop):
            backbone(
                input_ids=input_ids,
                inputs_embeds=hidden,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=cache is not None,
            )
    finally:
        handle.remove()
    return captured[0]


def cache_from(kv: list[tuple[torch.Tensor, torch.Tensor]], rows: int | None = None):
    """A ``DynamicCache`` holding ``kv`` (per layer ``(keys, values)`` ``[1 or B, h, P, hd]``),
    broadcast to ``rows`` rows without copying when ``rows`` is given."""
    from transformers import DynamicCache

    if rows is not None:
        kv = [(k.expand(rows, *k.shape[1:]), v.expand(rows, *v.shape[1:])) for k, v in kv]
    return DynamicCache(ddp_cache_data=kv)


def cache_kv(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer ``(keys, values)`` of a ``DynamicCache`` (layers never run hold ``None``)."""
    out = []
    for layer in cache.layers:
        if getattr(layer, "is_initialized", True) and getattr(layer, "keys", None) is not None:
            out.append((layer.keys, layer.values))
        else:
            out.append((None, None))
    return out

"""Run a span of decoder blocks, reading or replacing activations at named sites.

Sites of block ``l`` (canonical names ``blocks.{l}.hook_{site}``, as in TransformerLens):

- ``resid_pre``: the residual stream entering block ``l`` (for ``l = 0``: the embeddings, after
  Gemma's embedding scale).
- ``resid_post``: the residual stream leaving block ``l`` (= ``resid_pre`` of block ``l + 1``;
  for the last block, the input of the final norm).
- ``attn_out``: what the attention sub-block adds to the residual stream (Llama: ``self_attn``'s
  output after ``o_proj``; Gemma: after ``post_attention_layernorm``).
- ``mlp_out``: what the MLP sub-block adds (Llama: ``mlp``'s output; Gemma: after
  ``post_feedforward_layernorm``).

So ``resid_post = resid_pre + attn_out + mlp_out`` in every block. The site map and its
self-check live in ``interp.sites`` (``hook_points``, ``check_sites``); ``site_hooks`` here reads
and writes through ``interp.sites.edit_sites``. All tensors are ``[batch, seq, d_model]`` in the
model's dtype.

``forward_span(backbone, start, stop, ...)`` runs blocks ``start .. stop-1`` only: the blocks
outside the span are swapped for a pass-through module for the duration of the call, and the
model's own forward still builds the attention masks and rotary embeddings, so a span started
from cached activations (``hidden`` = ``resid_pre`` of block ``start``) computes exactly what the
full model computes there. It returns the residual stream after block ``stop-1`` (before the
final norm).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from interp.loading import LoadedModel
from interp.sites import SITE_KINDS, Site, edit_sites

SITES = SITE_KINDS


def hook_name(site: str, layer: int) -> str:
    """Canonical site name: ``blocks.{layer}.hook_{site}``."""
    return f"blocks.{layer}.hook_{site}"


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


@dataclass
class Replacement:
    """Values to write at a site: ``values`` [B, T, d]; ``mask`` [B, T] bool (True = replace)."""

    values: torch.Tensor
    mask: torch.Tensor

    def apply(self, current: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask[..., None], self.values.to(current.dtype), current)


@contextlib.contextmanager
def site_hooks(
    loaded: LoadedModel,
    capture: dict[tuple[str, int], list[torch.Tensor]] | None = None,
    replace: dict[tuple[str, int], Replacement] | None = None,
) -> Iterator[None]:
    """Append site values to ``capture[(site, layer)]`` and/or overwrite sites with
    ``replace[(site, layer)]`` in every forward pass inside the block (replacement first; the
    captured value is what flows on). Built on ``interp.sites.edit_sites``, so the site map is
    the one every other command uses."""
    capture = capture or {}
    replace = replace or {}

    def edit_for(key):
        def edit(current: torch.Tensor) -> torch.Tensor:
            value = replace[key].apply(current) if key in replace else current
            if key in capture:
                capture[key].append(value.detach())
            return value

        return edit

    edits = {
        Site(layer, site): edit_for((site, layer)) for site, layer in set(capture) | set(replace)
    }
    with edit_sites(loaded, edits):
        yield


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

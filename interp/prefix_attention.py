"""Attention over a shared prefix without copying it per candidate.

When thousands of candidates share one prefix (the exhaustive vocabulary sweep), the usual route
(broadcast the prefix key/value cache to the batch, concatenate the suffix keys, repeat heads for
grouped-query attention) copies ``batch x prefix`` keys and values in every layer. Here the
prefix keys/values stay ``[1, kv_heads, P, head_dim]`` and each layer computes

    softmax([q Kp^T, q Ks^T] * scale + mask) @ [Vp; Vs]

with the prefix product done as one GEMM over all candidates' queries. The suffix part is causal
among the suffix tokens; prefix keys are all visible, except beyond a layer's sliding window.

It plugs into transformers as a registered attention implementation (``ATTN_NAME``) that is only
switched on inside ``shared_prefix_attention``; the backbone runs the suffix with explicit
``position_ids`` (P, P+1, ...) and no cache.

When the broadcast prefix is small (``batch x P`` keys within ``SMALL_COPY_BYTES``, the usual
case when caching activations: a few hundred items of a few tokens each) and no soft-capping is
needed, copying the prefix keys/values into one fused ``scaled_dot_product_attention`` call with
the same mask is faster on a CPU than the separate GEMMs; both compute the same attention.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

ATTN_NAME = "valuebias_shared_prefix"
SMALL_COPY_BYTES = 64 * 2**20
_state = threading.local()


def _visible(
    rows: int, s: int, p: int, window: int | None, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks ``[rows, P]`` and ``[rows, S]`` (row r is suffix query r % S)."""
    i = torch.arange(rows, device=device) % s
    prefix_pos = torch.arange(p, device=device)
    suffix_pos = torch.arange(s, device=device)
    see_suffix = suffix_pos[None, :] <= i[:, None]
    see_prefix = torch.ones(rows, p, dtype=torch.bool, device=device)
    if window is not None:
        see_prefix = (p + i[:, None]) - prefix_pos[None, :] < window
        see_suffix &= (i[:, None] - suffix_pos[None, :]) < window
    return see_prefix, see_suffix


def shared_prefix_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    sliding_window: int | None = None,
    softcap: float | None = None,
    **_: object,
) -> tuple[torch.Tensor, None]:
    """query ``[B, H, S, d]``, key/value ``[B, Hkv, S, d]`` (suffix only) -> ``[B, S, H, d]``."""
    k_prefix, v_prefix = _state.kv[module.layer_idx]  # [1, Hkv, P, d]
    b, h, s, d = query.shape
    hkv = key.shape[1]
    groups = h // hkv
    p = k_prefix.shape[2]
    copy_bytes = 2 * b * hkv * p * d * k_prefix.element_size()
    if softcap is None and copy_bytes <= SMALL_COPY_BYTES:
        return _fused(query, key, value, k_prefix, v_prefix, scaling, sliding_window)
    rows = groups * s
    scale = scaling if scaling is not None else d**-0.5
    q = query.reshape(b, hkv, rows, d)
    # prefix scores as one GEMM per kv head over every candidate's queries: [Hkv, B*rows, P]
    q_by_head = q.transpose(0, 1).reshape(hkv, b * rows, d)
    scores_prefix = torch.matmul(q_by_head, k_prefix[0].transpose(-1, -2))
    scores_prefix = scores_prefix.reshape(hkv, b, rows, p).transpose(0, 1)
    scores_suffix = torch.matmul(q, key.transpose(-1, -2))  # [B, Hkv, rows, S]
    scores = torch.cat([scores_prefix, scores_suffix], dim=-1).float() * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    see_prefix, see_suffix = _visible(rows, s, p, sliding_window, query.device)
    scores = scores.masked_fill(~torch.cat([see_prefix, see_suffix], dim=-1), float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(query.dtype)
    probs_prefix = probs[..., :p].transpose(0, 1).reshape(hkv, b * rows, p)
    out = torch.matmul(probs_prefix, v_prefix[0]).reshape(hkv, b, rows, d).transpose(0, 1)
    out = out + torch.matmul(probs[..., p:], value)
    out = out.reshape(b, h, s, d).transpose(1, 2).contiguous()
    return out, None


def _fused(query, key, value, k_prefix, v_prefix, scaling, window) -> tuple[torch.Tensor, None]:
    """The same attention with the prefix copied per row, in one fused SDPA call."""
    b, h, s, d = query.shape
    p = k_prefix.shape[2]
    keys = torch.cat([k_prefix.expand(b, -1, -1, -1), key], dim=2)
    values = torch.cat([v_prefix.expand(b, -1, -1, -1), value], dim=2)
    see_prefix, see_suffix = _visible(s, s, p, window, query.device)
    mask = torch.cat([see_prefix, see_suffix], dim=-1)  # [S, P + S]
    out = torch.nn.functional.scaled_dot_product_attention(
        query, keys, values, attn_mask=mask, scale=scaling if scaling is not None else d**-0.5,
        enable_gqa=key.shape[1] != h,
    )  # fmt: skip
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, shared_prefix_attention_forward)


@contextmanager
def shared_prefix_attention(
    model: nn.Module, prefix_kv: Sequence[tuple[torch.Tensor, torch.Tensor]]
) -> Iterator[None]:
    """Within the block, ``model``'s attention reads ``prefix_kv[layer]`` as a shared prefix."""
    _register()
    config = model.config
    previous = config._attn_implementation
    _state.kv = prefix_kv
    config._attn_implementation = ATTN_NAME
    try:
        yield
    finally:
        config._attn_implementation = previous
        _state.kv = None

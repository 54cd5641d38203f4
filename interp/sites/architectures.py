"""Where each site lives on each decoder-block architecture: one table per block layout.

A ``BlockLayout`` names the module (relative to a decoder block) and the side (input or output)
that holds each site kind, and how to recognise the layout on a block. Two layouts cover the
suite's models (nnterp keeps a rename table per architecture in the same spirit):

- ``llama`` (Llama, Mistral, Qwen and similar): ``attn_out`` is the attention module's output
  (after ``o_proj``; element 0 of its tuple), ``mlp_out`` the MLP's output.
- ``sandwich`` (Gemma 2/3): norms after attention and MLP, so ``attn_out`` is the output of
  ``post_attention_layernorm`` and ``mlp_out`` that of ``post_feedforward_layernorm`` (the
  tensors actually added to the residual stream).

Beware of the names: in Llama ``post_attention_layernorm`` is the *pre-MLP* norm, in Gemma 3 it is
the norm of the attention output. ``resid_pre``/``resid_post`` are the block's input and output in
every layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.sites.names import Site

Side = Literal["input", "output"]


@dataclass(frozen=True)
class HookPoint:
    """A site's tensor: ``side`` (``input`` or ``output``) of the module at ``path``.

    ``path`` is relative to the model root (``loaded.model``); ``index`` picks an element of a
    tuple output (the attention module returns ``(output, weights)``).
    """

    path: str
    side: Side
    index: int | None = None


@dataclass(frozen=True)
class BlockLayout:
    """One decoder-block layout: ``points[kind] = (child path or "" for the block, side, index)``."""

    name: str
    description: str
    matches: Callable[[nn.Module], bool]
    points: dict[str, tuple[str, Side, int | None]]


_BLOCK_IO = {"resid_pre": ("", "input", None), "resid_post": ("", "output", None)}

BLOCK_LAYOUTS: tuple[BlockLayout, ...] = (
    BlockLayout(
        name="sandwich",
        description="Gemma-style blocks with post-attention and post-feed-forward norms",
        matches=lambda b: (
            hasattr(b, "post_feedforward_layernorm") and hasattr(b, "pre_feedforward_layernorm")
        ),
        points={
            **_BLOCK_IO,
            "attn_out": ("post_attention_layernorm", "output", None),
            "mlp_out": ("post_feedforward_layernorm", "output", None),
        },
    ),
    BlockLayout(
        name="llama",
        description="Llama-style blocks with self_attn and mlp",
        matches=lambda b: hasattr(b, "self_attn") and hasattr(b, "mlp"),
        points={
            **_BLOCK_IO,
            "attn_out": ("self_attn", "output", 0),
            "mlp_out": ("mlp", "output", None),
        },
    ),
)


def block_layout(loaded: LoadedModel) -> BlockLayout:
    """The first layout that matches the model's decoder blocks; a clear error otherwise."""
    block = loaded.layers[0]
    for layout in BLOCK_LAYOUTS:
        if layout.matches(block):
            return layout
    known = "; ".join(f"{lay.name} ({lay.description})" for lay in BLOCK_LAYOUTS)
    raise UserError(
        f"{loaded.name}: unsupported decoder block {type(block).__name__}; known: {known}"
    )


def block_style(loaded: LoadedModel) -> str:
    """The name of the model's block layout (``llama`` or ``sandwich``)."""
    return block_layout(loaded).name


def _layer_paths(loaded: LoadedModel) -> list[str]:
    names = {id(module): name for name, module in loaded.model.named_modules()}
    return [names[id(block)] for block in loaded.layers]


def hook_points(loaded: LoadedModel, sites: Sequence[Site]) -> dict[Site, HookPoint]:
    """Where each site's tensor is read or written on this model."""
    layout = block_layout(loaded)
    paths = _layer_paths(loaded)
    out = {}
    for site in sites:
        if not 0 <= site.layer < loaded.n_layers:
            raise UserError(f"site {site}: {loaded.name} has {loaded.n_layers} layers")
        child, side, index = layout.points[site.kind]
        block = paths[site.layer]
        out[site] = HookPoint(f"{block}.{child}" if child else block, side, index)
    return out


def module_at(root: nn.Module, path: str) -> nn.Module:
    """The submodule of ``root`` at a dotted ``path`` (``""``: ``root`` itself)."""
    return root.get_submodule(path) if path else root

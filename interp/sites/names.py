"""Activation sites: canonical names and parsing (``--sites``, ``--layers``).

Canonical names follow TransformerLens: ``blocks.{l}.hook_resid_pre``, ``blocks.{l}.hook_attn_out``,
``blocks.{l}.hook_mlp_out``, ``blocks.{l}.hook_resid_post``. Every site is a ``[batch, seq,
d_model]`` tensor in the residual-stream basis:

- ``resid_pre(l)``: the input of decoder block ``l`` (for ``l = 0``: the (scaled) token embeddings).
- ``attn_out(l)``: what the attention sub-block adds to the residual stream.
- ``mlp_out(l)``: what the MLP sub-block adds.
- ``resid_post(l)``: the output of block ``l`` (before the final norm for the last block).

So ``resid_post(l) == resid_pre(l + 1)`` and ``resid_post(l) == resid_pre(l) + attn_out(l) +
mlp_out(l)``. Where each site lives on a given architecture is ``interp.sites.architectures``.
``parse_layers`` is the one parser of layer lists in the suite.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from interp.errors import UserError

SITE_KINDS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_out", "resid_post")
"""Site kinds in the order a block computes them."""

_NAME = re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|attn_out|mlp_out|resid_post)$")


@dataclass(frozen=True)
class Site:
    """One activation site: ``kind`` (one of ``SITE_KINDS``) at decoder block ``layer``."""

    layer: int
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in SITE_KINDS:
            raise ValueError(f"unknown site kind {self.kind!r} (use {', '.join(SITE_KINDS)})")

    @property
    def name(self) -> str:
        """The canonical TransformerLens-style name, e.g. ``blocks.3.hook_resid_post``."""
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def order(self) -> tuple[int, int]:
        """Execution order: by layer, then resid_pre < attn_out < mlp_out < resid_post."""
        return (self.layer, SITE_KINDS.index(self.kind))

    @classmethod
    def parse(cls, name: str) -> Site:
        match = _NAME.match(name.strip())
        if not match:
            raise UserError(
                f"bad site name {name!r}: expected blocks.<layer>.hook_<kind> with kind one of "
                f"{', '.join(SITE_KINDS)}"
            )
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return self.name


def parse_site_kinds(text: str) -> tuple[str, ...]:
    """``"resid_post,attn_out"`` (``hook_`` prefix optional) -> kinds in execution order."""
    kinds = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind = part.removeprefix("hook_")
        if kind not in SITE_KINDS:
            raise UserError(f"--sites: unknown site {part!r} (use {', '.join(SITE_KINDS)})")
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise UserError("--sites: no sites given")
    return tuple(sorted(kinds, key=SITE_KINDS.index))


def parse_layers(text: str, n_layers: int) -> tuple[int, ...]:
    """``all`` | ``0,5,10`` | ``0:30:2`` (Python slice: stop exclusive) | negatives | mixtures.

    Returns sorted unique layer indices in ``[0, n_layers)``.
    """
    text = text.strip().lower()
    if text in ("all", ""):
        return tuple(range(n_layers))
    layers: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if ":" in part:
                pieces = [int(x) if x.strip() else None for x in part.split(":")]
                if len(pieces) > 3:
                    raise ValueError
                chosen = range(n_layers)[slice(*pieces)]
                if len(chosen) == 0:
                    raise UserError(f"--layers {part!r} selects no layer of {n_layers}")
                layers.update(chosen)
            else:
                index = int(part)
                if not -n_layers <= index < n_layers:
                    raise UserError(
                        f"--layers {part}: the model has {n_layers} layers (0..{n_layers - 1})"
                    )
                layers.add(index % n_layers)
        except ValueError:
            raise UserError(
                f"--layers {part!r}: expected all, a list like 0,5,10 or a range like 0:30:2"
            ) from None
    if not layers:
        raise UserError("--layers: no layers given")
    return tuple(sorted(layers))


def make_sites(kinds: Sequence[str], layers: Sequence[int]) -> tuple[Site, ...]:
    """Every (kind, layer) combination, in execution order."""
    return tuple(sorted((Site(layer, kind) for layer in layers for kind in kinds), key=_order))


def parse_sites(sites_text: str, layers_text: str, n_layers: int) -> tuple[Site, ...]:
    """Sites from ``--sites`` (kinds, or canonical names) and ``--layers``, in execution order."""
    names = [p.strip() for p in sites_text.split(",") if p.strip().startswith("blocks.")]
    kinds_text = ",".join(p for p in sites_text.split(",") if not p.strip().startswith("blocks."))
    sites = set()
    if kinds_text.strip():
        sites.update(make_sites(parse_site_kinds(kinds_text), parse_layers(layers_text, n_layers)))
    for name in names:
        site = Site.parse(name)
        if site.layer >= n_layers:
            raise UserError(f"site {name}: the model has {n_layers} layers")
        sites.add(site)
    if not sites:
        raise UserError("--sites: no sites given")
    return tuple(sorted(sites, key=_order))


def _order(site: Site) -> tuple[int, int]:
    return site.order


def describe_sites(names: Sequence[str]) -> str:
    """Compact ``kind@layers`` text, e.g. ``resid_post@0-29, attn_out@0,5``."""
    by_kind: dict[str, list[int]] = {}
    for site in (Site.parse(n) for n in names):
        by_kind.setdefault(site.kind, []).append(site.layer)
    parts = []
    for kind, layers in by_kind.items():
        layers = sorted(layers)
        contiguous = layers == list(range(layers[0], layers[-1] + 1)) and len(layers) > 2
        text = f"{layers[0]}-{layers[-1]}" if contiguous else ",".join(map(str, layers))
        parts.append(f"{kind}@{text}")
    return ", ".join(parts)

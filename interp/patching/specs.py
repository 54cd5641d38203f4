"""What one patch is: a site kind at a block and a position (an offset from the end, or all).

Positions: ``None`` = every position (prefix and suffix); a negative int ``-k`` = the k-th
position from the end of each sequence (``-1`` = the last token, where the reward is read).
``parse_positions`` reads the ``--positions`` option; ``make_patches`` crosses sites, layers and
positions in the order a sweep runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interp.errors import UserError
from interp.sites.names import SITE_KINDS, Site

SiteKey = tuple[str, int]


@dataclass(frozen=True)
class PatchSpec:
    """One intervention: replace ``site`` of block ``layer`` at ``position`` (None = all)."""

    site: str
    layer: int
    position: int | None = None

    @property
    def key(self) -> SiteKey:
        return (self.site, self.layer)

    @property
    def hook(self) -> str:
        """The canonical site name, e.g. ``blocks.3.hook_resid_pre``."""
        return Site(self.layer, self.site).name

    @property
    def position_label(self) -> str:
        return "all" if self.position is None else str(self.position)


def parse_positions(text: str) -> tuple[int | None, ...]:
    """``all`` | ``last`` | ``-1,-2`` | ``last:K`` (the last K positions) -> offsets (None = all)."""
    out: list[int | None] = []
    for part in (text or "all").split(","):
        part = part.strip()
        if part == "all":
            out.append(None)
        elif part == "last":
            out.append(-1)
        elif part.startswith("last:"):
            try:
                k = int(part[5:])
            except ValueError:
                raise UserError(f"--positions {part!r}: last:K needs a whole number") from None
            if k < 1:
                raise UserError(f"--positions {part!r}: last:K needs K >= 1")
            out.extend(range(-1, -k - 1, -1))
        else:
            try:
                value = int(part)
            except ValueError:
                raise UserError(
                    f"--positions {part!r}: use all, last, last:K or offsets such as -1,-2"
                ) from None
            if value >= 0:
                raise UserError("--positions: offsets count from the end: -1 is the last token")
            out.append(value)
    return tuple(dict.fromkeys(out))


def make_patches(
    sites: Sequence[str], layers: Sequence[int], positions: Sequence[int | None]
) -> list[PatchSpec]:
    """Every (site, layer, position) patch, site-major (the order effects tables list them)."""
    unknown = [s for s in sites if s not in SITE_KINDS]
    if unknown:
        raise UserError(f"unknown site(s) {', '.join(unknown)}; sites: {', '.join(SITE_KINDS)}")
    return [PatchSpec(s, layer, pos) for s in sites for layer in layers for pos in positions]


def positions_masks(
    spec: PatchSpec, prefix_len: int, suffix_len: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Bool masks ``([P], [S])`` of the positions a patch writes; None if out of range."""
    pre = torch.zeros(prefix_len, dtype=torch.bool)
    suf = torch.zeros(suffix_len, dtype=torch.bool)
    if spec.position is None:
        return pre | True, suf | True
    if spec.position >= 0:
        raise ValueError("positions are offsets from the end: -1 (last), -2, ...")
    at = prefix_len + suffix_len + spec.position
    if at < 0:
        return None
    if at < prefix_len:
        pre[at] = True
    else:
        suf[at - prefix_len] = True
    return pre, suf

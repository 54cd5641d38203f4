"""Activation patching between two models of one architecture, fast and exactly checkable.

The items of one sweep are conversations ``prefix + suffix[i]``: one prompt's shared prefix
(system + user turn + assistant header, ``P`` ids) and, per response, the response ids and the
closing ids (``S`` ids; items are grouped so every suffix in a group has the same length, so no
padding is ever needed). A *patch* ``(site, layer, position)`` runs the receiver with the
activation at that site replaced by the source model's activation on the identical input; the
output is the receiver's final residual at the last position, read by a readout (an RM's final
norm and score head; see ``interp.models.readout``).

Fast path (``patched_scores``):

1. One clean pass per model (``clean_run``): the prefix runs once (its key/value cache is
   shared by every item), the suffixes run in chunks on top of it, and the needed activations are
   kept.
2. A patch at block ``l`` leaves blocks below ``l`` untouched, so the patched run starts from the
   receiver's cached ``resid_pre`` of block ``l`` (``interp.spans.forward_span``) instead of
   recomputing blocks ``0 .. l-1``. A patch that touches no prefix position reuses the clean
   prefix cache; one that does reruns only the prefix (``P`` tokens, blocks ``l ..``).
3. ``group_size`` patches share one forward pass: their rows are stacked (patch-major), the pass
   starts at the lowest block among them, and each patch's rows are overwritten at its own site.

Exactness: every stacked pass has a clean twin with the identical batch layout (the clean pass
runs ``group_size`` copies of each chunk), a patched row starts from its twin's cached state, and
slot ``k`` takes the source's values from the source's copy ``k`` (some CPU kernels round a row
differently by its position in the batch, so copies can differ in the last bit).
So patching a model into itself reproduces the clean scores bit for bit in float32
(``self_test``) - a check that positions, caches, rotary offsets and hooks line up. (Results of
the same computation with different batch shapes differ by float rounding, ~1e-6 relative.)

The reference path (``interp.patching.reference``) runs one full forward pass per patch; the
self-test (``interp.patching.selftest``) patches a model into itself through this path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from interp.models.loading import LoadedModel
from interp.patching.items import ItemGroup
from interp.patching.specs import PatchSpec, SiteKey, positions_masks
from interp.sites.edit import Replacement, site_hooks
from interp.spans import cache_from, cache_kv, forward_span

Readout = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CleanRun:
    """One model's clean pass over an ``ItemGroup``.

    ``prefix_kv``: per block ``(keys, values)`` ``[1, h, P, hd]``. ``prefix_sites[key]``:
    ``[1, P, d]``. ``suffix_sites[key]``: ``[copies, N, S, d]``. ``final_last``:
    ``[copies, N, d]`` residual after the last block at each item's last position.
    ``lens_last``: ``[N, L + 1, d]`` residual at the last position after 0..L blocks (copy 0),
    when asked for (value lens). ``digest``: the ids it ran on.
    """

    digest: str
    copies: int
    prefix_kv: list[tuple[torch.Tensor, torch.Tensor]]
    prefix_sites: dict[SiteKey, torch.Tensor]
    suffix_sites: dict[SiteKey, torch.Tensor]
    final_last: torch.Tensor
    lens_last: torch.Tensor | None = None
    chunks: list[tuple[int, int]] = field(default_factory=list)


def chunk_bounds(n: int, rows: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + rows)) for s in range(0, n, rows)]


@torch.no_grad()
def clean_run(
    model: LoadedModel,
    group: ItemGroup,
    sites: set[SiteKey],
    copies: int,
    chunk_rows: int,
    device: torch.device,
    lens: bool = False,
) -> CleanRun:
    """Run ``group`` through the whole model, keeping ``sites`` (prefix and suffix parts)."""
    backbone = model.backbone
    n_layers = model.n_layers
    from transformers import DynamicCache

    lens_keys = {("resid_post", layer) for layer in range(n_layers)} | {("resid_pre", 0)}
    want = set(sites) | (lens_keys if lens else set())
    cache = DynamicCache()
    capture = {k: [] for k in want}
    prefix_ids = torch.tensor([list(group.prefix)], device=device)
    with site_hooks(model, capture=capture):
        forward_span(backbone, 0, n_layers, input_ids=prefix_ids, cache=cache)
    prefix_kv = cache_kv(cache)
    prefix_sites = {k: capture[k][0] for k in sites}
    chunks = chunk_bounds(group.n, chunk_rows)
    suffix_parts: dict[SiteKey, list[torch.Tensor]] = {k: [] for k in sites}
    finals, lens_parts = [], []
    for start, stop in chunks:
        rows = stop - start
        ids = group.suffixes[start:stop].to(device).repeat(copies, 1)
        capture = {k: [] for k in want}
        with site_hooks(model, capture=capture):
            out = forward_span(
                backbone,
                0,
                n_layers,
                input_ids=ids,
                cache=cache_from(prefix_kv, rows * copies),
                past_length=group.prefix_len,
            )
        for k in sites:
            suffix_parts[k].append(capture[k][0].reshape(copies, rows, *capture[k][0].shape[1:]))
        finals.append(out[:, -1].reshape(copies, rows, -1))
        if lens:
            depth = [capture[("resid_pre", 0)][0]] + [
                capture[("resid_post", layer)][0] for layer in range(n_layers)
            ]
            lens_parts.append(torch.stack([d[:rows, -1] for d in depth], dim=1))
    return CleanRun(
        digest=group.digest(),
        copies=copies,
        prefix_kv=prefix_kv,
        prefix_sites=prefix_sites,
        suffix_sites={k: torch.cat(v, dim=1) for k, v in suffix_parts.items()},
        final_last=torch.cat(finals, dim=1),
        lens_last=torch.cat(lens_parts, dim=0) if lens else None,
        chunks=chunks,
    )


@dataclass(frozen=True)
class PatchPlan:
    """Patches in run order, cut into groups of ``group_size`` (the last padded by repeats)."""

    patches: tuple[PatchSpec, ...]
    group_size: int

    def groups(self) -> list[list[int]]:
        order = sorted(range(len(self.patches)), key=lambda i: (self.patches[i].layer, i))
        out = []
        for s in range(0, len(order), self.group_size):
            g = order[s : s + self.group_size]
            out.append(g + [g[-1]] * (self.group_size - len(g)))
        return out

    def start_layers(self) -> set[int]:
        return {min(self.patches[i].layer for i in g) for g in self.groups()}

    def receiver_sites(self) -> set[SiteKey]:
        """Sites the receiver's clean pass must keep: block inputs where groups and prefix runs start."""
        starts = {("resid_pre", layer) for layer in self.start_layers()}
        return starts | {("resid_pre", p.layer) for p in self.patches}

    def source_sites(self) -> set[SiteKey]:
        return {p.key for p in self.patches}


@torch.no_grad()
def _prefix_kv_for(
    model: LoadedModel,
    group: ItemGroup,
    spec: PatchSpec,
    mask: torch.Tensor,
    receiver: CleanRun,
    source: CleanRun,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Prefix cache of the receiver with ``spec`` applied on the prefix positions in ``mask``."""
    from transformers import DynamicCache

    if not bool(mask.any()):
        return receiver.prefix_kv
    backbone, n_layers = model.backbone, model.n_layers
    cache = DynamicCache()
    start = receiver.prefix_sites[("resid_pre", spec.layer)]
    replace = {spec.key: Replacement(source.prefix_sites[spec.key], mask[None].to(start.device))}
    with site_hooks(model, replace=replace):
        forward_span(backbone, spec.layer, n_layers, hidden=start, cache=cache)
    patched = cache_kv(cache)
    return [patched[i] if i >= spec.layer else receiver.prefix_kv[i] for i in range(n_layers)]


@torch.no_grad()
def patched_scores(
    model: LoadedModel,
    group: ItemGroup,
    plan: PatchPlan,
    receiver: CleanRun,
    source: CleanRun,
    readout: Readout,
    prefix_cache: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores with each patch applied: ``[n_patches, N]`` float32 (NaN where a position does not
    exist), and the clean twin scores ``[n_patches, N]`` each patched row is compared with.

    ``prefix_cache`` (a dict kept by the caller across the item groups of one prompt) reuses a
    patched prefix cache when the same patch writes the same prefix positions again."""
    prefix_cache = {} if prefix_cache is None else prefix_cache
    if receiver.digest != source.digest or receiver.digest != group.digest():
        raise AssertionError("receiver and source did not run on identical token ids")
    v_size = plan.group_size
    if receiver.copies != v_size:
        raise ValueError("the receiver's clean pass must hold one copy per stacked patch")
    backbone, n_layers = model.backbone, model.n_layers
    device = receiver.final_last.device
    n_patch = len(plan.patches)
    out = torch.full((n_patch, group.n), float("nan"))
    twin = torch.full((n_patch, group.n), float("nan"))
    for members in plan.groups():
        specs = [plan.patches[i] for i in members]
        masks = [positions_masks(s, group.prefix_len, group.suffix_len) for s in specs]
        valid = [m is not None for m in masks]
        masks = [
            m if m is not None else positions_masks(PatchSpec(s.site, s.layer, -1), 1, 1)
            for s, m in zip(specs, masks)
        ]
        start_layer = min(s.layer for s in specs)
        kvs = []
        for s, m, ok in zip(specs, masks, valid):
            if not ok or not bool(m[0].any()):
                kvs.append(receiver.prefix_kv)
                continue
            key = (group.prefix, s.site, s.layer, tuple(m[0].tolist()))
            if key not in prefix_cache:
                prefix_cache[key] = _prefix_kv_for(model, group, s, m[0], receiver, source)
            kvs.append(prefix_cache[key])
        for start, stop in receiver.chunks:
            rows = stop - start
            hidden = receiver.suffix_sites[("resid_pre", start_layer)][:, start:stop]
            hidden = hidden.reshape(v_size * rows, *hidden.shape[2:])
            kv = []
            for layer in range(n_layers):
                per = [k[layer] for k in kvs]
                if all(p[0] is per[0][0] for p in per):
                    kv.append(
                        (
                            per[0][0].expand(v_size * rows, *per[0][0].shape[1:]),
                            per[0][1].expand(v_size * rows, *per[0][1].shape[1:]),
                        )
                    )
                else:
                    kv.append(
                        tuple(
                            torch.cat([p[j].expand(rows, *p[j].shape[1:]) for p in per])
                            for j in (0, 1)
                        )
                    )
            replace: dict[SiteKey, Replacement] = {}
            for slot, (spec, (_, suf_mask), ok) in enumerate(zip(specs, masks, valid)):
                if not ok:
                    continue
                src = source.suffix_sites[spec.key]
                src = src[slot if source.copies > 1 else 0, start:stop]
                if spec.key not in replace:
                    zeros = torch.zeros_like(hidden)
                    replace[spec.key] = Replacement(
                        zeros, torch.zeros(hidden.shape[:2], dtype=torch.bool, device=device)
                    )
                rep = replace[spec.key]
                sl = slice(slot * rows, (slot + 1) * rows)
                rep.values[sl] = src.to(rep.values.dtype)
                rep.mask[sl] = suf_mask.to(device)[None]
            with site_hooks(model, replace=replace):
                final = forward_span(
                    backbone,
                    start_layer,
                    n_layers,
                    hidden=hidden,
                    cache=cache_from(kv),
                    past_length=group.prefix_len,
                )
            scores = readout(final[:, -1].contiguous()).float().cpu().reshape(v_size, rows)
            # the clean twins, read out with the identical batch shape
            clean = receiver.final_last[:, start:stop].reshape(v_size * rows, -1).contiguous()
            clean_scores = readout(clean).float().cpu().reshape(v_size, rows)
            for slot, (i, ok) in enumerate(zip(members, valid)):
                if ok:
                    out[i, start:stop] = scores[slot]
                    twin[i, start:stop] = clean_scores[slot]
    return out, twin

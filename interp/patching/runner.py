"""Activation patching between two models of one architecture, fast and exactly checkable.

The items of one sweep are conversations ``prefix + suffix[i]``: one prompt's shared prefix
(system + user turn + assistant header, ``P`` ids) and, per response, the response ids and the
closing ids (``S`` ids; items are grouped so every suffix in a group has the same length, so no
padding is ever needed). A *patch* ``(site, layer, position)`` runs the receiver with the
activation at that site replaced by the source model's activation on the identical input; the
output is the receiver's final residual stream, read by a readout (an RM's final norm and score
head at the last position, or its own head module on the whole sequence when the head is not
one linear map; see ``interp.models.readout``: for such an RM the RM's own output is the metric).

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

from dataclasses import dataclass, field

import torch

from interp.models.loading import LoadedModel
from interp.models.readout import RewardReadout
from interp.patching.items import ItemGroup
from interp.patching.specs import PatchSpec, SiteKey, positions_masks
from interp.sites.edit import Replacement, site_hooks
from interp.spans import cache_from, cache_kv, forward_span

Readout = RewardReadout


@dataclass
class CleanRun:
    """One model's clean pass over an ``ItemGroup``.

    ``prefix_kv``: per block ``(keys, values)`` ``[1, h, P, hd]``. ``prefix_sites[key]``:
    ``[1, P, d]``. ``suffix_sites[key]``: ``[copies, N, S, d]``. ``final_suffix``:
    ``[copies, N, S, d]`` residual after the last block at the suffix positions; ``prefix_final``
    ``[1, P, d]`` the same at the prefix positions. ``lens``: ``[N, L + 1]`` value-lens readings
    (the readout of the residual after 0..L blocks, copy 0) when a lens readout was given.
    ``ids``: ``[N, P + S]`` the ids it ran on; ``digest``: their hash.
    """

    digest: str
    copies: int
    prefix_kv: list[tuple[torch.Tensor, torch.Tensor]]
    prefix_sites: dict[SiteKey, torch.Tensor]
    suffix_sites: dict[SiteKey, torch.Tensor]
    final_suffix: torch.Tensor
    prefix_final: torch.Tensor
    ids: torch.Tensor
    lens: torch.Tensor | None = None
    chunks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def final_last(self) -> torch.Tensor:
        """``[copies, N, d]``: the final residual at each item's last position."""
        return self.final_suffix[:, :, -1]

    def read(self, readout: Readout, copy: int = 0) -> torch.Tensor:
        """The readout of copy ``copy``'s final residual streams: ``[N]``."""
        return readout.read(self.final_suffix[copy], self.prefix_final, self.ids)


def _full_ids(group: ItemGroup, start: int, stop: int, copies: int = 1) -> torch.Tensor:
    """``[copies * (stop - start), P + S]`` ids of items ``start:stop`` (prefix included)."""
    suffix = group.suffixes[start:stop]
    prefix = torch.tensor([list(group.prefix)], dtype=torch.long).expand(len(suffix), -1)
    return torch.cat([prefix, suffix], dim=1).repeat(copies, 1)


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
    lens: Readout | None = None,
) -> CleanRun:
    """Run ``group`` through the whole model, keeping ``sites`` (prefix and suffix parts); with a
    ``lens`` readout, also the value-lens readings at every depth."""
    backbone = model.backbone
    n_layers = model.n_layers
    from transformers import DynamicCache

    lens_keys = {("resid_post", layer) for layer in range(n_layers)} | {("resid_pre", 0)}
    want = set(sites) | (lens_keys if lens else set())
    cache = DynamicCache()
    capture = {k: [] for k in want}
    prefix_ids = torch.tensor([list(group.prefix)], device=device)
    with site_hooks(model, capture=capture):
        prefix_final = forward_span(backbone, 0, n_layers, input_ids=prefix_ids, cache=cache)
    prefix_kv = cache_kv(cache)
    prefix_sites = {k: capture[k][0] for k in sites}
    depth_keys = [("resid_pre", 0)] + [("resid_post", layer) for layer in range(n_layers)]
    prefix_depths = [capture[k][0] for k in depth_keys] if lens else []
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
        finals.append(out.reshape(copies, rows, *out.shape[1:]))
        if lens:
            ids_chunk = _full_ids(group, start, stop)
            readings = [
                lens.read(capture[k][0][:rows], pre, ids_chunk).float().cpu()
                for k, pre in zip(depth_keys, prefix_depths)
            ]
            lens_parts.append(torch.stack(readings, dim=1))
    return CleanRun(
        digest=group.digest(),
        copies=copies,
        prefix_kv=prefix_kv,
        prefix_sites=prefix_sites,
        suffix_sites={k: torch.cat(v, dim=1) for k, v in suffix_parts.items()},
        final_suffix=torch.cat(finals, dim=1),
        prefix_final=prefix_final,
        ids=_full_ids(group, 0, group.n),
        lens=torch.cat(lens_parts, dim=0) if lens else None,
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
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Prefix cache and final prefix residual ``[1, P, d]`` of the receiver with ``spec`` applied
    on the prefix positions in ``mask``."""
    from transformers import DynamicCache

    if not bool(mask.any()):
        return receiver.prefix_kv, receiver.prefix_final
    backbone, n_layers = model.backbone, model.n_layers
    cache = DynamicCache()
    start = receiver.prefix_sites[("resid_pre", spec.layer)]
    replace = {spec.key: Replacement(source.prefix_sites[spec.key], mask[None].to(start.device))}
    with site_hooks(model, replace=replace):
        final = forward_span(backbone, spec.layer, n_layers, hidden=start, cache=cache)
    patched = cache_kv(cache)
    kv = [patched[i] if i >= spec.layer else receiver.prefix_kv[i] for i in range(n_layers)]
    return kv, final


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
        kvs, prefix_finals = [], []
        for s, m, ok in zip(specs, masks, valid):
            if not ok or not bool(m[0].any()):
                kvs.append(receiver.prefix_kv)
                prefix_finals.append(receiver.prefix_final)
                continue
            key = (group.prefix, s.site, s.layer, tuple(m[0].tolist()))
            if key not in prefix_cache:
                prefix_cache[key] = _prefix_kv_for(model, group, s, m[0], receiver, source)
            kvs.append(prefix_cache[key][0])
            prefix_finals.append(prefix_cache[key][1])
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
            ids = _full_ids(group, start, stop, v_size)
            if readout.kind == "linear":
                pre = clean_pre = None
            else:  # each slot's own prefix residual (a patch may have changed it)
                pre = torch.cat([p.expand(rows, *p.shape[1:]) for p in prefix_finals])
                clean_pre = receiver.prefix_final
            scores = readout.read(final.contiguous(), pre, ids).float().cpu().reshape(v_size, rows)
            # the clean twins, read out with the identical batch shape
            clean = receiver.final_suffix[:, start:stop]
            clean = clean.reshape(v_size * rows, *clean.shape[2:]).contiguous()
            clean_scores = readout.read(clean, clean_pre, ids).float().cpu().reshape(v_size, rows)
            for slot, (i, ok) in enumerate(zip(members, valid)):
                if ok:
                    out[i, start:stop] = scores[slot]
                    twin[i, start:stop] = clean_scores[slot]
    return out, twin

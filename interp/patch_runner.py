"""Activation patching between two models of one architecture, fast and exactly checkable.

The items of one sweep are conversations ``prefix + suffix[i]``: one prompt's shared prefix
(system + user turn + assistant header, ``P`` ids) and, per response, the response ids and the
closing ids (``S`` ids; items are grouped so every suffix in a group has the same length, so no
padding is ever needed). A *patch* ``(site, layer, position)`` runs the receiver with the
activation at that site replaced by the source model's activation on the identical input; the
output is the receiver's final residual at the last position, read by a readout (an RM's final
norm and score head; see ``interp.value_lens``).

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
runs ``group_size`` copies of each chunk), and a patched row starts from its twin's cached state.
So patching a model into itself reproduces the clean scores bit for bit in float32
(``self_test``) - a check that positions, caches, rotary offsets and hooks line up. (Results of
the same computation with different batch shapes differ by float rounding, ~1e-6 relative.)

Reference path (``plain_patched_scores``, the TransformerLens way): right-padded full sequences,
one full forward pass per patch. Used by the benchmark and the tests.

Positions: ``None`` = every position (prefix and suffix); a negative int ``-k`` = the k-th
position from the end of each sequence (``-1`` = the last token, where the reward is read).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from interp.batching import right_pad
from interp.loading import LoadedModel
from interp.spans import Replacement, cache_from, cache_kv, forward_span, site_hooks

Readout = Callable[[torch.Tensor], torch.Tensor]
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
    def position_label(self) -> str:
        return "all" if self.position is None else str(self.position)


@dataclass(frozen=True)
class ItemGroup:
    """One prompt's items with equal suffix length: ``prefix`` ids and ``suffixes`` [N, S]."""

    prefix: tuple[int, ...]
    suffixes: torch.Tensor
    item_index: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(self.suffixes.shape[0])

    @property
    def prefix_len(self) -> int:
        return len(self.prefix)

    @property
    def suffix_len(self) -> int:
        return int(self.suffixes.shape[1])

    def digest(self) -> str:
        """sha256 of the exact ids (both models must see the same)."""
        h = hashlib.sha256(str(self.prefix).encode())
        h.update(self.suffixes.cpu().numpy().tobytes())
        return h.hexdigest()

    def subset(self, rows: int) -> ItemGroup:
        return ItemGroup(self.prefix, self.suffixes[:rows], self.item_index[:rows])


def group_items(
    formats: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
) -> list[ItemGroup]:
    """Items -> groups. ``formats`` lists, per prompt, ``(prefix_ids, [suffix_ids per item])``;
    item numbers run over all prompts in order (prompt-major)."""
    groups: list[ItemGroup] = []
    offset = 0
    for prefix, suffixes in formats:
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(suffixes):
            if len(s) == 0:
                raise ValueError("an item has no suffix ids (empty response and no closing ids)")
            by_len.setdefault(len(s), []).append(i)
        for length in sorted(by_len):
            idx = by_len[length]
            ids = torch.tensor([list(suffixes[i]) for i in idx], dtype=torch.long)
            groups.append(ItemGroup(tuple(prefix), ids, tuple(offset + i for i in idx)))
        offset += len(suffixes)
    return groups


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


# ------------------------------------------------------------------------------ clean passes
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


# ------------------------------------------------------------------------------ patch groups
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


@dataclass(frozen=True)
class SelfTest:
    """Result of patching the receiver into itself: ``max_abs_diff`` must be exactly 0."""

    passed: bool
    n_patches: int
    n_items: int
    max_abs_diff: float
    layers: tuple[int, ...] = ()


@torch.no_grad()
def self_test(
    model: LoadedModel,
    group: ItemGroup,
    plan: PatchPlan,
    readout: Readout,
    device: torch.device,
    chunk_rows: int,
    max_layers: int | None = 4,
) -> SelfTest:
    """Patch the model into itself and compare with the clean twins exactly.

    Every site and position of ``plan`` is tested at up to ``max_layers`` of its blocks (the first,
    the last and evenly spaced ones between; ``None``: all), on the items of ``group``, with the
    sweep's own stacking: the code path of the sweep, on a sample small enough to run every time.
    """
    layers = sorted({p.layer for p in plan.patches})
    if max_layers is not None and len(layers) > max_layers:
        picks = {round(i * (len(layers) - 1) / (max_layers - 1)) for i in range(max_layers)}
        layers = [layers[i] for i in sorted(picks)]
    plan = PatchPlan(tuple(p for p in plan.patches if p.layer in set(layers)), plan.group_size)
    sites = plan.receiver_sites() | plan.source_sites()
    run = clean_run(model, group, sites, plan.group_size, chunk_rows, device)
    patched, twin = patched_scores(model, group, plan, run, run, readout)
    ok = ~torch.isnan(patched)
    diff = (patched[ok] - twin[ok]).abs()
    max_diff = float(diff.max()) if diff.numel() else 0.0
    exact = bool(torch.equal(patched[ok], twin[ok]))
    return SelfTest(exact, len(plan.patches), group.n, max_diff, tuple(layers))


# ------------------------------------------------------------------------------ reference path
@torch.no_grad()
def plain_patched_scores(
    receiver: LoadedModel,
    source: LoadedModel,
    sequences: Sequence[Sequence[int]],
    patches: Sequence[PatchSpec],
    readout: Readout,
    pad_id: int,
    batch_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TransformerLens-style patching: for each batch, cache the source's sites in one forward
    pass, then one full forward pass of the receiver per patch. Sequences are right-padded (the
    same ids and mask go to both models). Returns (patched ``[n_patches, N]``, clean ``[N]``).
    A patch with a position writes that offset from each row's own end."""
    n_layers = receiver.n_layers
    keys = sorted({p.key for p in patches}, key=lambda k: (k[1], k[0]))
    out = torch.full((len(patches), len(sequences)), float("nan"))
    clean = torch.empty(len(sequences))
    for start in range(0, len(sequences), batch_size):
        batch = right_pad(sequences[start : start + batch_size], pad_id).to(device)
        rows = torch.arange(batch.size, device=device)
        last = batch.lengths - 1
        capture = {k: [] for k in keys}
        with site_hooks(source, capture=capture):
            forward_span(source.backbone, 0, n_layers, **batch.model_inputs())
        final = forward_span(receiver.backbone, 0, n_layers, **batch.model_inputs())
        clean[start : start + batch.size] = readout(final[rows, last]).float().cpu()
        for i, spec in enumerate(patches):
            mask = batch.attention_mask.bool()
            if spec.position is not None:
                at = batch.lengths + spec.position
                mask = torch.zeros_like(mask)
                ok = at >= 0
                mask[rows[ok], at[ok]] = True
            rep = {spec.key: Replacement(capture[spec.key][0], mask)}
            with site_hooks(receiver, replace=rep):
                final = forward_span(receiver.backbone, 0, n_layers, **batch.model_inputs())
            scores = readout(final[rows, last]).float().cpu()
            if spec.position is not None:
                scores[(batch.lengths + spec.position < 0).cpu()] = float("nan")
            out[i, start : start + batch.size] = scores
    return out, clean

"""The patching self-test: patch a model into itself through the sweep's own code path.

Every stacked pass has a clean twin with the identical batch layout, so patching a model into
itself must reproduce the clean scores bit for bit in float32. A sweep runs this check on a few
items before it starts and refuses to run when it fails (positions, caches, rotary offsets or
hooks do not line up for the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.models.loading import LoadedModel
from interp.patching.items import ItemGroup
from interp.patching.runner import PatchPlan, Readout, clean_run, patched_scores


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

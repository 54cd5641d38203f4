"""The patching sweep: every patch on every item, after the self-test, into a typed result.

``patch_sweep`` runs, for every ``PatchSpec``, the receiver with that activation replaced by the
source's activation on the identical input and records every item's score through the readout.
It also records the value lens of both models (their residual stream at every depth through the
same readout), which costs nothing extra: the clean passes already hold it. Statistics are left
to the caller (``analyses.stats.patch_effects``), as TransformerLens's ``patching.py`` leaves them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp.budget import patches_per_pass, rows_per_pass
from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.models.readout import RewardReadout
from interp.patching.items import Items
from interp.patching.runner import PatchPlan, clean_run, patched_scores
from interp.patching.selftest import SelfTest, self_test
from interp.patching.specs import PatchSpec
from interp.progress import NoProgress, Progress


@dataclass(frozen=True)
class SweepResult:
    """Raw sweep output. Arrays are float32 over items (``items.table`` order).

    ``clean`` [N]: receiver unpatched (copy 0); ``source`` [N]: the base reading per item;
    ``patched``/``twin`` [n_patches, N]: patched scores and their exact clean twins;
    ``lens_receiver``/``lens_source`` [N, L + 1]: value-lens readings.
    """

    patches: tuple[PatchSpec, ...]
    items: Items
    clean: np.ndarray
    source: np.ndarray
    patched: np.ndarray
    twin: np.ndarray
    lens_receiver: np.ndarray
    lens_source: np.ndarray
    self_test: SelfTest
    group_size: int
    seconds: float


def patch_sweep(
    receiver: LoadedModel,
    source: LoadedModel,
    readout: RewardReadout,
    items: Items,
    patches: Sequence[PatchSpec],
    group_size: int | None = None,
    self_test_items: int = 6,
    progress: Progress | None = None,
) -> SweepResult:
    """Run every patch on every item (fast path), after the self-test; see the module doc."""
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    device = receiver.device
    size = group_size or patches_per_pass(device)
    plan = PatchPlan(tuple(patches), size)
    first = max(items.groups, key=lambda g: g.n)
    test = self_test(
        receiver,
        first.subset(min(self_test_items, first.n)),
        plan,
        readout,
        device,
        rows_per_pass(device, first.prefix_len + first.suffix_len, size),
    )
    if not test.passed:
        raise UserError(
            f"self-test failed: patching {receiver.name} into itself changed scores by up to "
            f"{test.max_abs_diff:.3g}; the patching machinery does not line up for this model"
        )
    n = len(items.table)
    n_layers = receiver.n_layers
    patched = np.full((len(patches), n), np.nan, dtype=np.float32)
    twin = np.full_like(patched, np.nan)
    clean = np.full(n, np.nan, dtype=np.float32)
    src = np.full(n, np.nan, dtype=np.float32)
    lens_r = np.full((n, n_layers + 1), np.nan, dtype=np.float32)
    lens_s = np.full_like(lens_r, np.nan)
    progress.start(len(items.groups) * (len(plan.groups()) + 2), "patching sweep")
    prefix_cache: dict = {}
    for group in items.groups:
        if any(key[0] != group.prefix for key in prefix_cache):
            prefix_cache.clear()  # a new prompt: patched prefix caches of the last one are done
        rows = rows_per_pass(device, group.prefix_len + group.suffix_len, size)
        r_run = clean_run(receiver, group, plan.receiver_sites(), size, rows, device, lens=readout)
        progress.advance()
        # the source runs the same stacked copies as the receiver, so slot k of a stacked pass
        # takes its values from copy k: on CPUs whose kernels round by row position, a patch of a
        # model into itself then still equals its clean twin bit for bit
        s_run = clean_run(source, group, plan.source_sites(), size, rows, device, lens=readout)
        progress.advance()
        p, t = patched_scores(receiver, group, plan, r_run, s_run, readout, prefix_cache)
        progress.advance(len(plan.groups()))
        idx = list(group.item_index)
        patched[:, idx] = p.numpy()
        twin[:, idx] = t.numpy()
        clean[idx] = r_run.read(readout).float().cpu().numpy()
        src[idx] = s_run.read(readout).float().cpu().numpy()
        lens_r[idx] = r_run.lens.numpy()
        lens_s[idx] = s_run.lens.numpy()
    progress.close()
    return SweepResult(
        tuple(patches),
        items,
        clean,
        src,
        patched,
        twin,
        lens_r,
        lens_s,
        test,
        size,
        time.perf_counter() - t0,
    )

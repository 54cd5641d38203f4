"""The patching sweep: every patch on every item, after the self-test, into a typed result.

``patch_sweep`` runs, for every ``PatchSpec``, the receiver with that activation replaced by the
source's activation on the identical input and records every item's score through the readout.
It also records the value lens of both models (their residual stream at every depth through the
same readout), which costs nothing extra: the clean passes already hold it. Each item group
(one prompt's items of one length) is a work unit (``group_frame``), so a sweep can resume from
the groups it finished (``units``). Statistics are left
to the caller (``analyses.stats.patch_effects``), as TransformerLens's ``patching.py`` leaves them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from interp.budget import patches_per_pass, rows_per_pass
from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.models.readout import RewardReadout
from interp.patching.items import Items
from interp.patching.runner import PatchPlan, clean_run, patched_scores
from interp.patching.selftest import SelfTest, self_test
from interp.patching.specs import PatchSpec
from interp.progress import NoProgress, Progress
from interp.sweeps.plan import WorkUnit


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


def group_frame(group, patched, twin, clean, source, lens_r, lens_s) -> pd.DataFrame:
    """One item group's results as a table (a work unit's rows): item, clean, source, then
    ``patched_j``/``twin_j`` per patch and ``lens_r_l``/``lens_s_l`` per depth (float32)."""
    columns = {"item": np.asarray(group.item_index), "clean": clean, "source": source}
    columns.update({f"patched_{j}": row for j, row in enumerate(patched)})
    columns.update({f"twin_{j}": row for j, row in enumerate(twin)})
    columns.update({f"lens_r_{d}": col for d, col in enumerate(lens_r.T)})
    columns.update({f"lens_s_{d}": col for d, col in enumerate(lens_s.T)})
    return pd.DataFrame(columns)


def patch_sweep(
    receiver: LoadedModel,
    source: LoadedModel,
    readout: RewardReadout,
    items: Items,
    patches: Sequence[PatchSpec],
    group_size: int | None = None,
    self_test_items: int = 6,
    progress: Progress | None = None,
    units: Callable[[Callable[[WorkUnit], pd.DataFrame]], list[pd.DataFrame]] | None = None,
) -> SweepResult:
    """Run every patch on every item (fast path), after the self-test; see the module doc.

    ``units``: runs the item groups as work units (one unit per group, in order) and returns
    their frames (``group_frame``), e.g. from a parts folder so that a rerun skips the groups
    already done; without it every group is computed here."""
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

    def one_group(group) -> pd.DataFrame:
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
        return group_frame(
            group, p.numpy(), t.numpy(), r_run.read(readout).float().cpu().numpy(),
            s_run.read(readout).float().cpu().numpy(), r_run.lens.numpy(), s_run.lens.numpy(),
        )  # fmt: skip

    if units is None:
        frames = [one_group(g) for g in items.groups]
    else:
        frames = units(lambda unit: one_group(items.groups[unit.prompt]))
    for group, frame in zip(items.groups, frames):
        idx = list(group.item_index)
        values = frame.drop(columns="item").to_numpy(dtype=np.float32)
        k, m = len(patches), n_layers + 1
        clean[idx], src[idx] = values[:, 0], values[:, 1]
        patched[:, idx] = values[:, 2 : 2 + k].T
        twin[:, idx] = values[:, 2 + k : 2 + 2 * k].T
        lens_r[idx] = values[:, 2 + 2 * k : 2 + 2 * k + m]
        lens_s[idx] = values[:, 2 + 2 * k + m :]
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

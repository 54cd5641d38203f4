"""Stream activations of every item into an HDF5 store, batch by batch, resumably.

Per batch: items are formatted (``ItemPlan``) and run with a ``SiteReader`` that stops after the
last requested site and keeps only the stored positions (``activations.batch_reading``: the
whole sequences right-padded, or, for ``last``/``response-*`` positions, each prompt's prefix
once and only the items' own tokens on top of it), moved to the CPU in the store dtype and
written to ``/acts``. Nothing else the model computes is kept, so memory does not grow with the
number of items.

Durability (``activations.writer``): the store is laid out whole when it is created, so a batch
only overwrites rows in place; a *commit* makes the rows durable, then marks the committed items
in ``/done``, so an item marked done always has its rows on disk. Commits happen at most every
``commit_every_s`` seconds and at the end. After an interruption (Ctrl-C, a kill, a full disk)
the same command resumes from the first batch not fully done; a second process writing the same
store is refused while the first holds it. Batches are fixed index ranges ``[k * B, (k + 1) * B)``, so a resumed run
computes exactly the batches an uninterrupted run would, and its data are equal.

Rerunning with different settings (model, sites, positions, dtypes, backend, batch size, prompts,
responses) is refused with a message naming what differs; ``overwrite=True`` replaces the file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from activations.batch_reading import BatchRows
from activations.items import ItemPlan
from activations.manifest import CacheSettings, build_manifest, settings_differences
from activations.writer import StoreWriter, create_store
from interp.budget import rows_per_pass
from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.models.readout import score_direction
from interp.progress import NoProgress, Progress
from interp.sites import Site, SiteReader, check_sites


@dataclass(frozen=True)
class CacheResult:
    """Outcome of one call: items already done before it, items computed by it, wall seconds."""

    path: Path
    n_items: int
    n_sites: int
    already_done: int
    computed: int
    seconds: float
    resumed: bool
    complete: bool

    def summary(self) -> str:
        verb = "resumed" if self.resumed else "wrote"
        rate = self.computed / self.seconds if self.seconds > 0 else float("nan")
        return (
            f"{verb} {self.path}: {self.n_items} items x {self.n_sites} sites; computed "
            f"{self.computed} ({rate:.1f} items/s), {self.already_done} were already done"
        )


def default_batch_size(loaded: LoadedModel, plan: ItemPlan, route: str = "full-sequence") -> int:
    """Items per forward pass from the suite's token budget (``interp.budget``): the longest
    whole sequence, or (prefix-cached) the longest item's own tokens plus one."""
    if route == "prefix-cached":
        longest = max(len(w) for w in plan.word_ids) + max(len(s) for s in plan.suffix) + 1
    else:
        longest = int(plan.lengths().max())
    return min(plan.n_items, rows_per_pass(loaded.device, longest))


def _expect_same_settings(path: Path, manifest: dict, explicit_batch: bool):
    """A check for ``StoreWriter.begin``: the existing store was made with these settings."""

    def check(old: dict) -> None:
        new_settings = dict(manifest["settings"])
        if not explicit_batch:
            new_settings["batch_size"] = old["settings"].get("batch_size")
        diffs = settings_differences(old["settings"], new_settings)
        if diffs:
            raise UserError(
                f"{path} was made with different settings: {'; '.join(diffs)}. Rerun with the "
                "original settings to resume, or pass --overwrite to replace it."
            )

    return check


def cache_activations(
    loaded: LoadedModel,
    plan: ItemPlan,
    settings: CacheSettings,
    out: str | Path,
    overwrite: bool = False,
    commit_every_s: float = 2.0,
    progress: Progress | None = None,
) -> CacheResult:
    """Cache ``settings.sites`` at ``settings.positions`` for every item of ``plan`` into ``out``.

    Creates the store, or resumes it when it exists with the same settings. Returns what was
    done. Raises ``UserError`` for a foreign, damaged or differently-made file (unless
    ``overwrite``).
    """
    progress = progress or NoProgress()
    out = Path(out)
    batch_size = settings.batch_size or default_batch_size(loaded, plan, settings.route)
    manifest = build_manifest(loaded, plan, settings, batch_size)

    def create() -> None:
        check_sites(loaded, backend="torch")
        create_store(out, plan, manifest, loaded.d_model, score_direction(loaded))

    check = _expect_same_settings(out, manifest, settings.batch_size is not None)
    with StoreWriter(out).begin(overwrite, create, check) as writer:
        resumed = writer.resumed
        manifest = writer.manifest
        batch_size = int(manifest["settings"]["batch_size"])
        started = time.perf_counter()
        done = writer.done()
        already = int(done.sum())
        offsets = writer.offsets()
        sites = tuple(Site.parse(name) for name in manifest["settings"]["sites"])
        store_dtype = getattr(torch, manifest["settings"]["store_dtype"])
        n = plan.n_items
        computed = 0
        progress.start(n, f"caching {loaded.name} ({len(sites)} sites)")
        progress.advance(already)
        if already < n:
            reader = SiteReader(loaded, manifest["settings"]["backend"])
            batch_rows = BatchRows(
                loaded, plan, reader, sites, manifest["settings"]["positions"], store_dtype,
                manifest["settings"].get("route", "full-sequence"),
            )  # fmt: skip
            last_commit = time.perf_counter()
            try:
                for start in range(0, n, batch_size):
                    stop = min(n, start + batch_size)
                    if done[start:stop].all():
                        continue
                    got = batch_rows.rows(start, stop)
                    lo, hi = int(offsets[start]), int(offsets[stop])
                    writer.write((start, stop), lo, hi, {s.name: got[s].numpy() for s in sites})
                    del got
                    computed += stop - start
                    progress.advance(stop - start)
                    if time.perf_counter() - last_commit >= commit_every_s:
                        writer.commit()
                        last_commit = time.perf_counter()
            finally:
                # every pending batch was written in full, so an interruption keeps them
                writer.commit()
        complete = bool(writer.done().all())
    progress.close()
    return CacheResult(
        path=out,
        n_items=plan.n_items,
        n_sites=len(sites),
        already_done=already,
        computed=computed,
        seconds=time.perf_counter() - started,
        resumed=resumed,
        complete=complete,
    )

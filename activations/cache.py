"""Stream activations of every item into an HDF5 store, batch by batch, resumably.

Per batch: items are formatted (``ItemPlan``) and run with a ``SiteReader`` that stops after the
last requested site and keeps only the stored positions (``activations.batch_reading``: the
whole sequences right-padded, or, for ``last``/``response-*`` positions, each prompt's prefix
once and only the items' own tokens on top of it), moved to the CPU in the store dtype and
written to ``/acts``. Nothing else the model computes is kept, so memory does not grow with the
number of items.

Durability: a *commit* flushes the file, then marks the committed items in ``/done`` (and flushes
again), so an item marked done always has its rows on disk. Commits happen at most every
``commit_every_s`` seconds and at the end. After an interruption (Ctrl-C closes the file cleanly;
a killed process loses at most the uncommitted batches) the same command resumes from the first
batch not fully done. Batches are fixed index ranges ``[k * B, (k + 1) * B)``, so a resumed run
computes exactly the batches an uninterrupted run would, and its data are equal.

Rerunning with different settings (model, sites, positions, dtypes, backend, batch size, prompts,
responses) is refused with a message naming what differs; ``overwrite=True`` replaces the file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from activations.batch_reading import BatchRows
from activations.items import ItemPlan
from activations.manifest import CacheSettings, build_manifest, settings_differences
from activations.store import (
    FORMAT,
    FORMAT_VERSION,
    INT_COLUMNS,
    STRING_COLUMNS,
    check_structure,
    open_h5,
    read_manifest,
)
from interp.budget import rows_per_pass
from interp.errors import UserError
from interp.models.loading import LoadedModel
from interp.models.readout import score_direction
from interp.progress import NoProgress, Progress
from interp.provenance import utc_now
from interp.sites import Site, SiteReader, check_sites

CHUNK_BYTES = 256 * 1024
TOKEN_BLOCK = 4096


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


def _chunk_rows(n_rows: int, d_model: int, itemsize: int) -> int:
    return max(1, min(n_rows, CHUNK_BYTES // (d_model * itemsize)))


def _create(path: Path, loaded: LoadedModel, plan: ItemPlan, manifest: dict) -> None:
    """Write the skeleton (items, prompts, tokens, offsets, empty datasets) atomically."""
    settings = manifest["settings"]
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    n = plan.n_items
    lengths = plan.lengths()
    per_item = lengths if settings["positions"] == "all" else np.ones(n, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_item)]).astype(np.int64)
    string = h5py.string_dtype("utf-8")
    with h5py.File(partial, "w") as f:
        f.attrs["vb_format"] = FORMAT
        f.attrs["vb_format_version"] = FORMAT_VERSION
        f.attrs["manifest"] = json.dumps(manifest)
        f.attrs["complete"] = False
        items = f.create_group("items")
        for name in STRING_COLUMNS:
            items.create_dataset(name, shape=(n,), dtype=string)
        for name in INT_COLUMNS:
            items.create_dataset(name, shape=(n,), dtype=np.int32)
        for start in range(0, n, TOKEN_BLOCK):  # blockwise: memory independent of n
            stop = min(n, start + TOKEN_BLOCK)
            for name, values in plan.columns(start, stop).items():
                items[name][start:stop] = list(values) if name in STRING_COLUMNS else values
        prompts = f.create_group("prompts")
        prompts.create_dataset("key", data=[p.key for p in plan.prompts], dtype=string)
        prompts.create_dataset("text", data=[p.text for p in plan.prompts], dtype=string)
        prompts.create_dataset("framing", data=[p.framing for p in plan.prompts], dtype=string)
        f.create_dataset("done", shape=(n,), dtype=bool, fillvalue=False)
        f.create_dataset("offsets", data=offsets)
        total = int(lengths.sum())
        tokens = f.create_dataset(
            "tokens",
            shape=(total,),
            dtype=np.int32,
            chunks=(max(1, min(total, 65536)),),
            compression="gzip",
            compression_opts=1,
        )
        at = 0
        for start in range(0, n, TOKEN_BLOCK):
            stop = min(n, start + TOKEN_BLOCK)
            flat = np.fromiter(
                (t for i in range(start, stop) for t in plan.sequence(i)), dtype=np.int32
            )
            tokens[at : at + len(flat)] = flat
            at += len(flat)
        acts = f.create_group("acts")
        itemsize = np.dtype(settings["store_dtype"]).itemsize
        n_rows = int(offsets[-1])
        for name in settings["sites"]:
            acts.create_dataset(
                name,
                shape=(n_rows, loaded.d_model),
                dtype=settings["store_dtype"],
                chunks=(_chunk_rows(n_rows, loaded.d_model, itemsize), loaded.d_model),
                compression="gzip",
                compression_opts=1,
                shuffle=True,
            )
        direction = score_direction(loaded)
        if direction is not None:
            head = f.create_group("score_head")
            head.create_dataset("weight", data=direction.weight)
            head.create_dataset("gain", data=direction.gain)
            head.create_dataset("effective", data=direction.effective)
    partial.replace(path)


def _open_existing(path: Path, manifest: dict, explicit_batch: bool) -> tuple[h5py.File, dict]:
    try:
        f = open_h5(path, "r+")
    except UserError as err:
        raise UserError(f"{err} Use --overwrite to replace it.") from None
    try:
        old = read_manifest(f, path)
        check_structure(f, old, path)
    except UserError as err:
        f.close()
        raise UserError(f"{err} Use --overwrite to replace it.") from None
    new_settings = dict(manifest["settings"])
    if not explicit_batch:
        new_settings["batch_size"] = old["settings"].get("batch_size")
    diffs = settings_differences(old["settings"], new_settings)
    if diffs:
        f.close()
        raise UserError(
            f"{path} was made with different settings: {'; '.join(diffs)}. Rerun with the "
            "original settings to resume, or pass --overwrite to replace it."
        )
    return f, old


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
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as acts.h5")
    out.parent.mkdir(parents=True, exist_ok=True)
    batch_size = settings.batch_size or default_batch_size(loaded, plan, settings.route)
    manifest = build_manifest(loaded, plan, settings, batch_size)
    if overwrite:
        out.unlink(missing_ok=True)
    resumed = out.exists()
    if resumed:
        f, old = _open_existing(out, manifest, settings.batch_size is not None)
        batch_size = int(old["settings"]["batch_size"])
        manifest = old
    else:
        check_sites(loaded, backend="torch")
        _create(out, loaded, plan, manifest)
        f = open_h5(out, "r+")

    started = time.perf_counter()
    with f:
        done = f["done"][:].astype(bool)
        already = int(done.sum())
        offsets = f["offsets"][:]
        sites = tuple(Site.parse(name) for name in manifest["settings"]["sites"])
        acts = {site: f[f"acts/{site.name}"] for site in sites}
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
            pending: list[tuple[int, int]] = []
            last_commit = time.perf_counter()

            def commit() -> None:
                f.flush()  # rows first ...
                for lo, hi in pending:
                    f["done"][lo:hi] = True  # ... then the marks that vouch for them
                f.flush()
                pending.clear()

            try:
                for start in range(0, n, batch_size):
                    stop = min(n, start + batch_size)
                    if done[start:stop].all():
                        continue
                    got = batch_rows.rows(start, stop)
                    lo, hi = int(offsets[start]), int(offsets[stop])
                    for site in sites:
                        acts[site][lo:hi] = got[site].numpy()
                    del got
                    pending.append((start, stop))
                    computed += stop - start
                    progress.advance(stop - start)
                    if time.perf_counter() - last_commit >= commit_every_s:
                        commit()
                        last_commit = time.perf_counter()
            finally:
                # every pending batch was written in full, so an interruption keeps them
                commit()
        complete = bool(f["done"][:].all())
        f.attrs["complete"] = complete
        f.attrs["updated_utc"] = utc_now()
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

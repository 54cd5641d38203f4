"""Stream activations of every item into an HDF5 store, batch by batch, resumably.

Per batch: items are formatted (``ItemPlan``), right-padded, run once with a ``SiteReader`` that
stops after the last requested site and keeps only the stored positions, moved to the CPU in the
store dtype and written to ``/acts``. Nothing else the model computes is kept, so memory does not
grow with the number of items.

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

import datetime as _dt
import importlib.metadata
import json
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from activations.items import ItemPlan
from activations.positions import POSITIONS, PositionPicker
from activations.store import (
    FORMAT,
    FORMAT_VERSION,
    INT_COLUMNS,
    STORE_DTYPES,
    STRING_COLUMNS,
    check_structure,
    open_h5,
    read_manifest,
)
from interp.batching import right_pad
from interp.errors import UserError
from interp.loading import LoadedModel, tokenizer_digest
from interp.progress import NoProgress, Progress
from interp.readout import score_direction
from interp.sites import BACKENDS, Site, SiteReader, check_sites

CHUNK_BYTES = 256 * 1024
TOKEN_BLOCK = 4096

# settings key -> how a message names it
SETTING_NAMES = {
    "model_fingerprint": "model (weights, config, tokenizer or kind)",
    "kind": "--as (rm or lm)",
    "compute_dtype": "--dtype (compute dtype)",
    "revision": "--revision",
    "tokenizer_hash": "tokenizer or chat template",
    "template": "conversation template",
    "sites": "--sites/--layers",
    "positions": "--positions",
    "store_dtype": "--store-dtype",
    "backend": "--backend",
    "batch_size": "--batch-size",
    "prompts_digest": "--prompts",
    "responses_digest": "--responses",
    "items_digest": "formatted items (token ids)",
}


@dataclass(frozen=True)
class CacheSettings:
    """What to store. ``batch_size`` None: the file's on resume, else a token-budget default."""

    sites: tuple[Site, ...]
    positions: str = "last"
    store_dtype: str = "float16"
    backend: str = "nnsight"
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise UserError(f"--positions {self.positions!r}: use {', '.join(POSITIONS)}")
        if self.store_dtype not in STORE_DTYPES:
            raise UserError(
                f"--store-dtype {self.store_dtype!r}: use {' or '.join(STORE_DTYPES)} "
                "(HDF5 has no bfloat16)"
            )
        if self.backend not in BACKENDS:
            raise UserError(f"--backend {self.backend!r}: use {', '.join(BACKENDS)}")
        if not self.sites:
            raise UserError("no sites to cache")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")


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


def tool_version() -> str:
    try:
        return importlib.metadata.version("valuebias")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_batch_size(loaded: LoadedModel, plan: ItemPlan) -> int:
    """Items per forward pass: ~2k tokens per batch on CPU, ~32k on GPU."""
    budget = 32768 if loaded.device.type == "cuda" else 2048
    longest = int(plan.lengths().max())
    return max(1, min(plan.n_items, budget // max(1, longest)))


def build_manifest(
    loaded: LoadedModel, plan: ItemPlan, settings: CacheSettings, batch_size: int
) -> dict:
    """The manifest (see ``activations.store``); ``settings`` holds what a resume must match."""
    lengths = plan.lengths()
    n_rows = int(lengths.sum()) if settings.positions == "all" else plan.n_items
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": tool_version(),
        "created_utc": _now(),
        "model": {
            **loaded.provenance(),
            "tokenizer_hash": tokenizer_digest(loaded.tokenizer),
            "n_layers": loaded.n_layers,
            "d_model": loaded.d_model,
            "device": str(loaded.device),
        },
        "settings": {
            "model_fingerprint": loaded.fingerprint,
            "kind": loaded.kind,
            "compute_dtype": str(loaded.dtype).removeprefix("torch."),
            "revision": loaded.spec.revision,
            "tokenizer_hash": tokenizer_digest(loaded.tokenizer),
            "template": plan.template,
            "sites": [s.name for s in sorted(settings.sites, key=lambda s: s.order)],
            "positions": settings.positions,
            "store_dtype": settings.store_dtype,
            "backend": settings.backend,
            "batch_size": batch_size,
            "prompts_digest": plan.prompts_identity()["digest"],
            "responses_digest": plan.responses_identity()["digest"],
            "items_digest": plan.digest(),
        },
        "prompts": plan.prompts_identity(),
        "responses": plan.responses_identity(),
        "n_items": plan.n_items,
        "n_rows": n_rows,
        "d_model": loaded.d_model,
        "n_layers": loaded.n_layers,
        "layout": "ragged token rows (offsets)" if settings.positions == "all" else "one row/item",
    }


def describe_sites(names: list[str]) -> str:
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


def _describe(key: str, value) -> str:
    if key == "sites" and isinstance(value, list):
        return describe_sites(value)
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def settings_differences(old: dict, new: dict) -> list[str]:
    """Human-readable ``name (file: x, now: y)`` for every setting that differs."""
    out = []
    for key, label in SETTING_NAMES.items():
        if old.get(key) != new.get(key):
            old_text, new_text = _describe(key, old.get(key)), _describe(key, new.get(key))
            out.append(f"{label} (file: {old_text}, now: {new_text})")
    return out


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
    batch_size = settings.batch_size or default_batch_size(loaded, plan)
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
            pad = loaded.tokenizer.pad_token_id
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
                    batch = right_pad([plan.sequence(i) for i in range(start, stop)], pad)
                    spans = np.array([plan.response_span(i) for i in range(start, stop)])
                    device = loaded.device
                    picker = PositionPicker(
                        mode=manifest["settings"]["positions"],
                        lengths=batch.lengths.to(device),
                        response_start=torch.as_tensor(spans[:, 0], device=device),
                        response_len=torch.as_tensor(spans[:, 1], device=device),
                        dtype=store_dtype,
                    )
                    got = reader.read(batch, sites, picker)
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
        f.attrs["updated_utc"] = _now()
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

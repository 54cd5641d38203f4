"""Writing an activation store so that a kill, a crash or a full disk never leaves a store that a
resume crashes on or a reader mistakes for complete.

How (format version 2):

- **Laid out once.** ``create_store`` writes the whole file under a temporary name: manifest,
  items, prompts, tokens and offsets with their values, and every ``/acts/<site>`` dataset and
  ``/done`` *contiguous and allocated at creation* (``H5D_ALLOC_TIME_EARLY``, no compression),
  then reserves the file's blocks (``posix_fallocate``: a disk too small fails here, in a
  second, naming the size needed), fsyncs it and renames it into place. A file under the final
  name therefore always has complete HDF5 metadata.
- **Only bytes in place afterwards.** A batch overwrites rows that already exist in the file and
  a commit flips ``/done`` bytes; no HDF5 metadata (object headers, B-trees, heaps, attributes) is
  written after creation, so a SIGKILL or ``ENOSPC`` mid-write can tear only rows that are not yet
  marked done, and the resume recomputes them.
- **Rows before marks.** ``commit`` flushes and fsyncs the rows, then writes the marks that vouch
  for them, then flushes and fsyncs again.
- **One writer.** ``StoreWriter`` holds ``interp.locks.OutputLock`` on the store for its lifetime;
  a second writer (or ``--overwrite`` of a store being written) is refused "in use by process N".
- **Damage is named.** ``open_for_resume`` refuses a foreign, truncated or inconsistent file with
  what it found and, when the marks can still be read, how many items could be salvaged.

Version-1 stores (chunked, compressed, written by older releases) are still read and resumed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from activations.items import ItemPlan
from activations.store import (
    FORMAT,
    FORMAT_VERSION,
    INT_COLUMNS,
    STRING_COLUMNS,
    check_structure,
    open_h5,
    read_manifest,
)
from interp.atomic import atomic_path, check_writable, fsync_dir
from interp.errors import UserError
from interp.locks import OutputLock

TOKEN_BLOCK = 4096
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StoreWriteError(UserError):
    """Writing rows or marks failed (disk full, I/O error); what was committed is kept."""


def _early_dcpl() -> h5py.h5p.PropDCID:
    """Contiguous layout, space allocated at creation, never filled: later writes are in place."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


def _reserve(path: Path, target: Path) -> None:
    """Reserve every block of the file now (a sparse file could hit ENOSPC mid-run)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno in DISK_FULL:
            free = shutil.disk_usage(path.parent).free
            raise UserError(
                f"not enough disk space for {target}: the store needs {size / 2**20:.1f} MiB, "
                f"{free / 2**20:.1f} MiB are free; free some space and rerun"
            ) from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def _write_skeleton(f: h5py.File, plan: ItemPlan, manifest: dict, d_model: int, head) -> None:
    settings = manifest["settings"]
    n = plan.n_items
    lengths = plan.lengths()
    per_item = lengths if settings["positions"] == "all" else np.ones(n, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_item)]).astype(np.int64)
    string = h5py.string_dtype("utf-8")
    f.attrs["vb_format"] = FORMAT
    f.attrs["vb_format_version"] = FORMAT_VERSION
    f.attrs["manifest"] = json.dumps(manifest)
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
    done = f.create_dataset("done", shape=(n,), dtype=bool, dcpl=_early_dcpl())
    done[...] = False
    f.create_dataset("offsets", data=offsets)
    total = int(lengths.sum())
    tokens = f.create_dataset(
        "tokens", shape=(total,), dtype=np.int32, chunks=(max(1, min(total, 65536)),),
        compression="gzip", compression_opts=1,
    )  # fmt: skip
    at = 0
    for start in range(0, n, TOKEN_BLOCK):
        stop = min(n, start + TOKEN_BLOCK)
        flat = np.fromiter((t for i in range(start, stop) for t in plan.sequence(i)), np.int32)
        tokens[at : at + len(flat)] = flat
        at += len(flat)
    acts = f.create_group("acts")
    n_rows = int(offsets[-1])
    for name in settings["sites"]:
        acts.create_dataset(
            name, shape=(n_rows, d_model), dtype=settings["store_dtype"], dcpl=_early_dcpl()
        )
    if head is not None:
        group = f.create_group("score_head")
        group.create_dataset("weight", data=head.weight)
        group.create_dataset("gain", data=head.gain)
        group.create_dataset("effective", data=head.effective)


def size_needed(plan: ItemPlan, manifest: dict, d_model: int) -> int:
    """Bytes a new store will take, with a margin for HDF5's own records (an upper bound)."""
    settings = manifest["settings"]
    n, n_words = plan.n_items, len(plan.responses.words)
    lengths = plan.lengths()
    n_rows = int(lengths.sum()) if settings["positions"] == "all" else n
    itemsize = np.dtype(settings["store_dtype"]).itemsize
    acts = n_rows * d_model * itemsize * len(settings["sites"])
    words = sum(
        2 * len(w.encode()) + len(c.encode())
        for w, c in zip(plan.responses.words, plan.responses.categories, strict=True)
    )
    keys = sum(len(p.key.encode()) for p in plan.prompts)
    strings = len(plan.prompts) * words + n_words * keys + 4 * 48 * n
    fixed = n + 8 * (n + 1) + 4 * int(lengths.sum()) + 4 * 5 * n + 12 * d_model
    return int(1.05 * (acts + strings + fixed)) + (1 << 20)


def _check_space(path: Path, needed: int) -> None:
    """Refuse before HDF5 writes anything when the disk cannot hold the store (HDF5 can crash,
    not raise, when a disk fills while it writes its own records)."""
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise UserError(
            f"not enough disk space for {path}: the store needs about {needed / 2**20:.1f} MiB, "
            f"{free / 2**20:.1f} MiB are free; free some space and rerun"
        )


def create_store(path: Path, plan: ItemPlan, manifest: dict, d_model: int, head=None) -> None:
    """Write a new store's whole layout under a temporary name, reserve its space, rename it
    to ``path`` (see the module docstring). ``head``: the RM's score direction, or None."""
    _check_space(path, size_needed(plan, manifest, d_model))
    try:
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                _write_skeleton(f, plan, manifest, d_model, head)
            _reserve(tmp, path)
    except OSError as err:
        if err.errno in DISK_FULL or "No space left" in str(err):
            raise UserError(
                f"not enough disk space to create {path}; free some space and rerun"
            ) from None
        raise


def damage_report(path: Path, f: h5py.File | None, problem: str) -> UserError:
    """A refusal naming what is wrong and how many items are marked done (salvageable)."""
    salvage = "none of its items can be read back"
    if f is not None:
        try:
            done = f["done"][:].astype(bool)
            salvage = f"{int(done.sum())} of {len(done)} items are marked done and may be salvaged"
        except (KeyError, OSError, ValueError):
            pass
    return UserError(
        f"{path}: damaged activation store ({problem}); {salvage}. Rerun with --overwrite to "
        "start again"
    )


def open_for_resume(path: Path) -> tuple[h5py.File, dict]:
    """Open an existing store read-write for resuming, or refuse it (foreign, truncated,
    damaged), naming the problem and the salvageable item count."""
    try:
        f = open_h5(path, "r+")
    except UserError as err:
        raise UserError(f"{err} Use --overwrite to replace it.") from None
    try:
        manifest = read_manifest(f, path)
    except UserError as err:
        f.close()
        raise UserError(f"{err} Use --overwrite to replace it.") from None
    try:
        check_structure(f, manifest, path)
        f["done"][:1]  # the marks and offsets must be readable for a resume
        f["offsets"][:]
    except UserError as err:
        report = damage_report(path, f, str(err).split("damaged activation store: ")[-1])
        f.close()
        raise report from None
    except (OSError, ValueError, KeyError) as err:
        report = damage_report(path, f, str(err).split("(")[0].strip() or type(err).__name__)
        f.close()
        raise report from None
    return f, manifest


class StoreWriter:
    """The exclusive writer of one store: its lock, the open file and durable commits.

    ``begin(create)`` takes the lock first (a store another process is writing is refused, even
    with ``overwrite``), then removes the old file if ``overwrite``, then calls ``create()`` when
    there is no file. ``write(items, lo, hi, site_rows)`` puts the rows of an item range in
    place; ``commit()`` makes the rows written so far durable, then marks their items done. A
    failed write commits what was fully written before it, then raises ``StoreWriteError``
    saying how many items are stored. Use as a context manager (the lock is released and the
    file closed on exit).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = OutputLock(self.path)
        self.file: h5py.File | None = None
        self.manifest: dict = {}
        self.resumed = False
        self.pending: list[tuple[int, int]] = []

    def begin(self, overwrite: bool, create, expected: dict) -> StoreWriter:
        """Lock, then open the store for resuming (refusing different settings via ``expected``,
        a callable ``(old manifest) -> None``) or create it with ``create()``."""
        if self.path.is_dir():
            raise UserError(f"--out {self.path} is a folder; give a file name such as acts.h5")
        check_writable(self.path)
        self.lock.acquire()
        try:
            if overwrite and self.path.exists():
                self.path.unlink()
                fsync_dir(self.path.parent)
            self.resumed = self.path.exists()
            if not self.resumed:
                create()
            self.file, self.manifest = open_for_resume(self.path)
            if self.resumed:
                expected(self.manifest)
        except BaseException:
            self.close()
            raise
        return self

    def done(self) -> np.ndarray:
        return self.file["done"][:].astype(bool)

    def offsets(self) -> np.ndarray:
        return self.file["offsets"][:]

    def write(
        self, items: tuple[int, int], lo: int, hi: int, site_rows: dict[str, np.ndarray]
    ) -> None:
        """Rows ``lo:hi`` of each site (canonical name -> ``[hi - lo, d_model]``) of the item
        range ``items`` = ``[start, stop)``, in place; the items are done at the next commit."""
        try:
            for name, rows in site_rows.items():
                self.put(name, lo, hi, rows)
        except OSError as err:
            failure = err
        else:
            self.pending.append(items)
            return
        try:
            self.commit()  # what was fully written before this batch is kept
        except StoreWriteError:
            pass
        raise self._failure("writing rows", failure)

    def put(self, name: str, lo: int, hi: int, rows: np.ndarray) -> None:
        """One site's rows in place (the only call that writes activations)."""
        self.file[f"acts/{name}"][lo:hi] = rows

    def commit(self) -> None:
        """Make the rows written so far durable, then mark their items done."""
        if not self.pending:
            return
        try:
            self._sync()
            done = self.file["done"]
            for lo, hi in self.pending:
                done[lo:hi] = True
            self._sync()
        except OSError as err:
            raise self._failure("marking items done", err) from None
        self.pending.clear()

    def _sync(self) -> None:
        self.file.flush()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _failure(self, doing: str, err: OSError) -> StoreWriteError:
        try:
            kept = int(self.done().sum())
        except OSError:
            kept = None
        what = "the disk is full" if err.errno in DISK_FULL or "No space" in str(err) else str(err)
        saved = (
            f"{kept} items are safely stored" if kept is not None else "committed items are kept"
        )
        return StoreWriteError(
            f"{self.path}: {doing} failed ({what}); {saved}. Fix the cause and rerun the same "
            "command to resume"
        )

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass  # nothing is left to write: every change after creation went in place
            self.file = None
        self.lock.release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

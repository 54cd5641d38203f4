"""Atomic outputs: a file is either absent, the old complete version, or the new complete version.

Every output of the suite is written to a temporary file in the same folder, flushed and fsynced,
then renamed over its final name (``os.replace`` is atomic on POSIX within one filesystem), and
the folder is fsynced so the rename survives a crash. A run killed at any moment leaves no
partially written file under a final name; the temporary files it leaves are named
``.<name>.<random>.partial`` and are ignored (and cleaned up by the next successful write).

``check_writable`` fails fast, before any model is loaded, when an output cannot be created.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from interp.errors import UserError

PARTIAL_SUFFIX = ".partial"


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder so renames inside it are durable (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mode_for(path: Path) -> int:
    """The permission bits a replaced file keeps, or a new file gets (0666 less the umask;
    ``mkstemp`` alone would leave 0600)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it becomes ``path`` atomically.

    The caller writes the whole file to the yielded path (any library that takes a file name
    works). On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with tmp_path.open("rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _mode_for(path))
        os.replace(tmp_path, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(path: str | Path, *, folder: bool = False) -> None:
    """Refuse (``UserError``) an output that cannot be created: a parent that is a file, a
    read-only folder, or (``folder=False``) a path that is an existing folder."""
    path = Path(path)
    target = path if folder else path.parent
    if not folder and path.is_dir():
        raise UserError(f"{path} is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder")
    for parent in [target, *target.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot write {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"cannot write {path}: {parent} is not writable")
            return


# ----------------------------------------------------------------------------- tables and JSON
def output_format(path: str | Path, allowed: tuple[str, ...], what: str = "--out") -> str:
    """The output format from ``path``'s extension (``.parquet`` -> ``parquet``) if it is one of
    ``allowed``; else ``UserError`` (a format is never guessed, and never written under a
    misleading name)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in allowed:
        names = " or ".join(f".{a}" for a in allowed)
        shown = f".{suffix}" if suffix else "no extension"
        raise UserError(f"{what} {path}: {shown} is not an output format here; use {names}")
    return suffix


def write_table(df, path: str | Path) -> Path:
    """Write a pandas table atomically as Parquet, CSV or TSV (by extension); returns ``path``.

    Text tables quote every non-numeric field and end lines with ``\\n``, so a cell holding the
    delimiter, a quote, ``\\r`` or a newline reads back unchanged (``interp.files``).
    """
    import csv

    fmt = output_format(path, ("parquet", "csv", "tsv"), "table")
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(
                tmp, index=False, sep="\t" if fmt == "tsv" else ",",
                quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n",
            )  # fmt: skip
    return Path(path)


def write_json(record, path: str | Path) -> Path:
    """Write a JSON-safe copy of ``record`` (NaN -> null) atomically, indented; returns ``path``."""
    import json

    from interp.provenance import json_safe

    return atomic_write_text(path, json.dumps(json_safe(record), indent=1, default=str) + "\n")


# ----------------------------------------------------------------------------- run folders
STAGING_MARKER = ".valuebias-staging.json"


def staging_path(out: str | Path) -> Path:
    """Where a run folder is built before it is swapped in: ``.<name>.partial`` beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}{PARTIAL_SUFFIX}")


class RunFolder:
    """A folder output that holds exactly one run, swapped in whole.

    ``with RunFolder(out, overwrite=...) as folder:`` locks ``out`` (``interp.locks``) for the
    whole run, refuses an ``out`` that already holds files unless ``overwrite``, and gives
    ``folder.work``, an empty staging folder beside ``out`` to write everything into. On a
    clean exit the staging folder replaces ``out`` (an older run is removed only then); on an
    error it is removed, so a failed or killed run never leaves files under ``out``.

    ``resume_key`` (e.g. a settings hash): a staging folder left by an interrupted run with the
    same key is kept (``folder.resumed``) instead of emptied, and kept after an error if the run
    saved anything there, so it can continue from that; one with another key is refused (it is
    discarded only with ``overwrite``, which always starts afresh). ``final(path)`` maps a path inside ``work``
    to where it will be once swapped in (for records that name files).
    """

    def __init__(
        self, out: str | Path, *, overwrite: bool = False, resume_key: str | None = None
    ) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        self.resume_key = resume_key
        self.work = staging_path(self.out)
        self.resumed = False
        self._lock = None

    def final(self, path: str | Path) -> Path:
        path = Path(path)
        try:
            return self.out / path.relative_to(self.work)
        except ValueError:
            return path

    def _check(self) -> None:
        check_writable(self.out, folder=True)
        if self.out.is_dir() and not self.overwrite:
            held = sorted(p.name for p in self.out.iterdir())
            if held:
                shown = ", ".join(held[:4]) + (
                    f" and {len(held) - 4} more" if len(held) > 4 else ""
                )
                raise UserError(
                    f"{self.out} already holds a run ({shown}); pass --overwrite to replace it "
                    "or choose another folder"
                )

    def _prepare_staging(self) -> None:
        import json
        import shutil

        marker = self.work / STAGING_MARKER
        if self.work.is_dir() and self.resume_key is not None and marker.is_file():
            try:
                key = json.loads(marker.read_text()).get("key")
            except (OSError, ValueError, AttributeError):
                key = None
            self.resumed = key == self.resume_key and not self.overwrite
            if key != self.resume_key and key is not None and not self.overwrite:
                raise UserError(
                    f"{self.work} holds an unfinished run of {self.out} with other settings; "
                    "rerun with the original settings to resume it, or pass --overwrite to "
                    "discard it"
                )
        if not self.resumed:
            if self.work.is_dir():
                shutil.rmtree(self.work)  # left by a killed run: we hold the lock, it is ours
            elif self.work.exists():
                self.work.unlink()
            self.work.mkdir(parents=True)
            atomic_write_text(marker, json.dumps({"key": self.resume_key, "out": str(self.out)}))

    def __enter__(self) -> RunFolder:
        from interp.locks import OutputLock

        self._check()
        self._lock = OutputLock(self.out).acquire()
        try:
            self._check()  # again under the lock: another writer may have finished meanwhile
            self._prepare_staging()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _swap_in(self) -> None:
        import shutil

        (self.work / STAGING_MARKER).unlink(missing_ok=True)
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old{PARTIAL_SUFFIX}")
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
            os.replace(self.out, old)
        os.replace(self.work, self.out)
        fsync_dir(self.out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        import shutil

        try:
            if exc_type is None:
                self._swap_in()
            elif self.resume_key is None or not self._saved_anything():
                shutil.rmtree(self.work, ignore_errors=True)
        finally:
            self._lock.release()

    def _saved_anything(self) -> bool:
        """Whether the staging folder holds more than its marker (something to resume from)."""
        return (
            any(p.name != STAGING_MARKER for p in self.work.iterdir())
            if self.work.is_dir()
            else False
        )

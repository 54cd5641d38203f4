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

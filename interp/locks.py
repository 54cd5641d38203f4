"""Exclusive output locks: one writer per output (a store, a score file, a run folder) at a time.

``OutputLock(path)`` holds an advisory ``fcntl.flock`` on ``<path>.lock`` for as long as it is
open, and records in that file who holds it (process id, host, start time). A second writer gets
``UserError("<path> is in use by process N on HOST since T")``. The operating system releases a
``flock`` when its process dies, so a lock file left by a killed process is stale by
construction and is simply taken over. (``flock`` is per host; writers on several machines
sharing a folder coordinate through the work-unit claims of their sweep instead.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from interp.errors import UserError
from interp.provenance import utc_now


def lock_path(path: str | Path) -> Path:
    """The lock file of an output: ``<path>.lock`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


class OutputLock:
    """Context manager holding the exclusive lock of ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.file = lock_path(self.path)
        self._fd: int | None = None

    def holder(self) -> dict:
        """Who the lock file says holds (or last held) the lock: pid, host, since."""
        try:
            return json.loads(self.file.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def current_holder(self) -> dict | None:
        """The holder record if another process holds the lock now, else None (never creates
        the lock file; a shared probe released at once)."""
        try:
            fd = os.open(self.file, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return self.holder() or {"pid": "?"}
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _locked_fd(self) -> int:
        """An fd of the current lock file holding its flock (retried if the file was replaced
        between our open and our lock: the lock must be on the file the path names)."""
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                who = self.holder()
                raise UserError(
                    f"{self.path} is in use by process {who.get('pid', '?')} on "
                    f"{who.get('host', '?')} since {who.get('since', '?')}; wait for it to finish"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def acquire(self) -> OutputLock:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = self._locked_fd()
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
        except OSError:
            pass  # a full disk: the lock holds all the same, only the record of who is missing
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.file.unlink(missing_ok=True)  # while still locked: see _locked_fd
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

"""Exclusive ownership: one writer per output (``OutputLock``), one worker per work unit (``Claim``).

``OutputLock(path)`` holds an advisory ``fcntl.flock`` on ``<path>.lock`` for as long as it is
open, and records in that file who holds it (process id, host, start time). A second writer gets
``UserError("<path> is in use by process N on HOST since T")``. The operating system releases a
``flock`` when its process dies, so a lock file left by a killed process is stale by
construction and is simply taken over. ``acquire(wait_s=...)`` waits for a busy lock instead.

``Claim(path, lease_s)`` is a worker's claim on one work unit of a sweep, safe between processes
on one host and between machines sharing a folder: the claim file appears atomically with its
holder's record (``os.link`` of a file already written and ``flock``-ed), is held with ``flock``
for the holder's lifetime, and its modification time is a heartbeat the holder refreshes
(``beat``). A claim is *stale*, and another worker takes it over, when its ``flock`` can be
taken and either its holder ran on this host (so it is dead: the OS dropped its lock) or its
heartbeat is older than ``lease_s`` (a holder on another machine that died or hung).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from pathlib import Path

from interp.errors import UserError
from interp.provenance import utc_now


def read_holder(path: Path) -> dict:
    """The holder record (pid, host, since) in a lock or claim file; {} if unreadable."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


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
        return read_holder(self.file)

    def refuse_if_held(self) -> None:
        """``UserError`` (``in_use``) if another process holds the lock now (nothing created)."""
        who = self.current_holder()
        if who is not None:
            raise UserError(in_use(self.path, who))

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
                raise UserError(in_use(self.path, self.holder())) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def acquire(self, wait_s: float = 0.0) -> OutputLock:
        """Take the lock; a busy lock raises ``UserError`` at once or after ``wait_s`` seconds."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fd = self._locked_fd()
                break
            except UserError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, _record())
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


def in_use(path, who: dict, advice: str = "wait for it to finish") -> str:
    """The one message for an output another process holds: who, where, since when."""
    return (
        f"{path} is in use by process {who.get('pid', '?')} on {who.get('host', '?')} since "
        f"{who.get('since', '?')}; {advice}"
    )


def _record() -> bytes:
    return json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
    ).encode()


def _same_inode(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


class Claim:
    """One worker's claim on a work unit (see the module docstring)."""

    def __init__(self, path: str | Path, lease_s: float = 600.0) -> None:
        self.path = Path(path)
        self.lease_s = lease_s
        self._fd: int | None = None
        self.took_over: dict | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict:
        return read_holder(self.path)

    def try_acquire(self) -> bool:
        """Claim the unit if it is free or stale; False if another live worker holds it."""
        for _ in range(5):  # the claim file can vanish between our looks: retry a few times
            if self._create():
                return True
            result = self._take_over_if_stale()
            if result is not None:
                return result
        return False

    def _create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, _record())
        os.fsync(fd)
        try:
            os.link(tmp, self.path)  # appears with its content and our lock, or not at all
        except FileExistsError:
            os.close(fd)
            return False
        except OSError:  # a filesystem without hard links: create in place instead
            os.close(fd)
            return self._create_in_place()
        finally:
            tmp.unlink(missing_ok=True)
        self._fd = fd
        return True

    def _create_in_place(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, _record())
        os.fsync(fd)
        self._fd = fd
        return True

    def _take_over_if_stale(self) -> bool | None:
        """True: taken over; False: a live holder; None: the file changed under us (retry)."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if not _same_inode(fd, self.path):
            os.close(fd)
            return None
        holder = self.holder()
        age = time.time() - os.fstat(fd).st_mtime
        if holder.get("host") != socket.gethostname() and age < self.lease_s:
            fcntl.flock(fd, fcntl.LOCK_UN)  # another machine's holder with a fresh heartbeat
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, _record(), 0)
        os.fsync(fd)
        os.utime(self.path)
        self.took_over = holder
        self._fd = fd
        return True

    def beat(self) -> bool:
        """Refresh the heartbeat; False when the claim is no longer ours (taken over)."""
        if self._fd is None or not _same_inode(self._fd, self.path):
            return False
        os.utime(self.path)
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _same_inode(self._fd, self.path):
                self.path.unlink(missing_ok=True)  # while still locked, as OutputLock does
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

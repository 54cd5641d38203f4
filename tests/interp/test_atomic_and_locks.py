"""Atomic writes leave no partial file under a final name; output locks admit one writer and are
taken over when their holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from interp.atomic import atomic_path, atomic_write_text, check_writable
from interp.errors import UserError
from interp.locks import OutputLock, lock_path


def test_atomic_write_replaces_whole_file_or_nothing(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no partial left behind


def test_sigkill_during_write_leaves_old_file(tmp_path):
    target = tmp_path / "big.bin"
    atomic_write_text(target, "old")
    code = (
        "import sys, time\nfrom interp.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    f = open(tmp, 'wb'); f.write(b'x' * 1000); f.flush()\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_text() == "old"
    partials = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(partials) == 1 and partials[0].name.startswith(".big.bin.")


def test_check_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        check_writable(tmp_path / "file" / "out.csv")
    with pytest.raises(UserError, match="is a folder"):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "deeper" / "out.csv")


def test_check_writable_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permission bits
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(UserError, match="not writable"):
            check_writable(ro / "sub" / "out.csv")
    finally:
        ro.chmod(0o700)


def test_second_writer_is_refused_and_dead_holder_is_taken_over(tmp_path):
    out = tmp_path / "store.h5"
    with OutputLock(out):
        with pytest.raises(UserError, match=r"in use by process \d+ on .* since"):
            OutputLock(out).acquire()
    code = (
        "import time\nfrom interp.locks import OutputLock\n"
        f"lock = OutputLock({str(out)!r}).acquire()\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"process {proc.pid}"):
        OutputLock(out).acquire()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    assert lock_path(out).exists()  # the killed holder left its lock file ...
    with OutputLock(out) as lock:  # ... which is stale, so it is taken over
        assert lock.holder()["pid"] == os.getpid()
    assert not lock_path(out).exists()

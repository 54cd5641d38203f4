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


def test_run_folder_swaps_in_whole_and_refuses_an_older_run(tmp_path):
    from interp.atomic import RunFolder, staging_path

    out = tmp_path / "run"
    with RunFolder(out) as folder:
        (folder.work / "a.csv").write_text("first")
        assert not out.exists()  # nothing under the final name until the run is done
        assert folder.final(folder.work / "a.csv") == out / "a.csv"
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]
    with pytest.raises(UserError, match="already holds a run .*a.csv.*--overwrite"):
        with RunFolder(out):
            pass
    with pytest.raises(RuntimeError), RunFolder(out, overwrite=True) as folder:
        (folder.work / "b.csv").write_text("half")
        raise RuntimeError("the run failed")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv"]  # the old run is intact
    assert not staging_path(out).exists()
    with RunFolder(out, overwrite=True) as folder:
        (folder.work / "b.csv").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv"]  # exactly one run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_run_folder_keeps_a_resumable_staging_folder(tmp_path):
    from interp.atomic import RunFolder, staging_path

    out = tmp_path / "run"
    with pytest.raises(RuntimeError), RunFolder(out, resume_key="k1") as folder:
        (folder.work / "state.json").write_text("step 3")
        raise RuntimeError("killed")
    assert (staging_path(out) / "state.json").exists()
    with RunFolder(out, resume_key="k1") as folder:
        assert folder.resumed and (folder.work / "state.json").read_text() == "step 3"
    with pytest.raises(RuntimeError), RunFolder(tmp_path / "r2", resume_key="k1") as folder:
        (folder.work / "state.json").write_text("x")
        raise RuntimeError("killed")
    with pytest.raises(UserError, match="unfinished run .* other settings"):
        RunFolder(tmp_path / "r2", resume_key="k2").__enter__()
    with RunFolder(tmp_path / "r2", resume_key="k2", overwrite=True) as folder:
        assert not folder.resumed and not (folder.work / "state.json").exists()


_HOLD = (
    "import sys, time\nfrom interp.locks import OutputLock\n"
    "lock = OutputLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(60)\n"
)


@pytest.mark.parametrize("kind", ["run folder", "score file"])
def test_a_locked_output_is_refused_even_with_overwrite(kind, tmp_path, tiny_llama_lm):
    from click.testing import CliRunner

    from cli import main
    from tests.helpers import refusal

    words = tmp_path / "words.csv"
    words.write_text(
        "response,category\npower,Agency\nsuccess,Agency\nlove,Communion\ncare,Communion\n"
    )
    if kind == "run folder":
        out = tmp_path / "stats-out"
        out.mkdir()
        (out / "summary.json").write_text("{}")
        args = ["stats", "--scores", str(tmp_path / "s.parquet"), "--lexicon", str(words),
                "--overwrite", "--out", str(out)]  # fmt: skip
    else:
        out = tmp_path / "scores.parquet"
        out.write_text("an older table")
        args = ["score", "--model", tiny_llama_lm, "--responses", str(words), "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        line = refusal(CliRunner().invoke(main, args))
        assert f"in use by process {proc.pid} on" in line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert out.exists()  # --overwrite did not remove it


def test_atomic_files_get_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        (tmp_path / "kept.txt").write_text("old")
        (tmp_path / "kept.txt").chmod(0o640)
        atomic_write_text(tmp_path / "kept.txt", "new")
        assert (tmp_path / "kept.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)

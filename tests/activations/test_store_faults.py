"""The activation store under faults: a full disk (a real size-limited tmpfs made by the test,
and a write wrapper raising ENOSPC after N bytes), a second writer, and the crash-safety premise
(after creation only row bytes and done marks change, never HDF5 metadata).

Each fault is followed by freeing the space (or removing the fault) and running the same command
again: the rerun completes and its store equals an uninterrupted run's.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from activations import writer as store_writer
from activations.inspect import inspect_store
from activations.store import ActivationStore
from cli import main
from tests.helpers import AGENCY, COMMUNION, refusal

WORDS = AGENCY[:4] + COMMUNION[:4]


def _words_csv(folder: Path) -> Path:
    path = folder / "words.csv"
    path.write_text(
        "response,category\n"
        + "".join(f"{w},Agency\n" for w in AGENCY[:4])
        + "".join(f"{w},Communion\n" for w in COMMUNION[:4])
    )
    return path


def _args(model: str, words: Path, out: Path, *extra: str) -> list[str]:
    return [
        "cache-activations", "--model", model, "--as", "rm", "--prompt-keys",
        "best_ever_one,worst_ever_one,greatest_ever_one", "--responses", str(words),
        "--sites", "resid_post,mlp_out", "--batch-size", "4", "--store-dtype", "float32",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _cli(args):
    result = CliRunner().invoke(main, args)
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    return result.exit_code, lines, result


def _contents(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {f"acts/{n}": f[f"acts/{n}"][:] for n in f["acts"]}
        out["done"] = f["done"][:]
        out["tokens"] = f["tokens"][:]
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    x, y = _contents(a), _contents(b)
    assert x.keys() == y.keys()
    for key in x:
        np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture
def reference(tmp_path, tiny_gemma_rm):
    """An uninterrupted run's store."""
    words = _words_csv(tmp_path)
    out = tmp_path / "reference.h5"
    code, lines, result = _cli(_args(tiny_gemma_rm, words, out))
    assert code == 0, result.output
    return out, words


def _metadata_digest(path: Path) -> str:
    """sha256 of the file with the raw bytes of /done and every /acts dataset blanked."""
    with h5py.File(path, "r") as f:
        regions = [(f["done"].id.get_offset(), f["done"].id.get_storage_size())]
        regions += [
            (f[f"acts/{n}"].id.get_offset(), f[f"acts/{n}"].id.get_storage_size())
            for n in f["acts"]
        ]
    data = bytearray(path.read_bytes())
    for offset, size in regions:
        data[offset : offset + size] = bytes(size)
    return hashlib.sha256(bytes(data)).hexdigest()


def test_after_creation_only_rows_and_marks_change(tmp_path, tiny_gemma_rm, monkeypatch):
    """The premise of crash safety: metadata bytes at creation equal those of the finished store,
    and the file's blocks are all reserved (not sparse)."""
    seen = {}
    real_create = store_writer.create_store

    def create_and_remember(path, *args, **kwargs):
        real_create(path, *args, **kwargs)
        seen["digest"] = _metadata_digest(path)
        seen["size"] = path.stat().st_size

    monkeypatch.setattr(store_writer, "create_store", create_and_remember)
    monkeypatch.setattr("activations.cache.create_store", create_and_remember)
    out = tmp_path / "acts.h5"
    code, _, result = _cli(_args(tiny_gemma_rm, _words_csv(tmp_path), out))
    assert code == 0, result.output
    assert _metadata_digest(out) == seen["digest"]
    assert out.stat().st_size == seen["size"]
    assert out.stat().st_blocks * 512 >= seen["size"]  # fallocated: no holes to fill later
    with ActivationStore(out) as store:
        assert store.complete


def test_enospc_mid_run_then_rerun_equals_uninterrupted(
    tmp_path, tiny_gemma_rm, reference, monkeypatch
):
    """A write wrapper raises ENOSPC after N bytes (a disk that fills while rows are written)."""
    ref, words = reference
    out = tmp_path / "faulty.h5"
    batch_bytes = 4 * 32 * 4 * 8  # 4 items x d=32 x float32 x 8 sites
    budget = {"left": int(2.5 * batch_bytes)}  # the third batch is torn half-way
    real_put = store_writer.StoreWriter.put

    def put_until_full(self, name, lo, hi, rows):
        if budget["left"] < rows.nbytes:
            raise OSError(errno.ENOSPC, "No space left on device")
        budget["left"] -= rows.nbytes
        real_put(self, name, lo, hi, rows)

    monkeypatch.setattr(store_writer.StoreWriter, "put", put_until_full)
    line = refusal(_cli(_args(tiny_gemma_rm, words, out))[2])
    assert "disk is full" in line and "8 items are safely stored" in line
    report = inspect_store(out)  # what is there reads back, and says it is incomplete
    assert 0 < report.n_done < report.n_items and not report.complete
    with ActivationStore(out) as store:
        kept = store.done
    assert kept.sum() == 8 and kept[:8].all()  # the torn batch is not marked done
    monkeypatch.setattr(store_writer.StoreWriter, "put", real_put)  # space freed
    code, lines, result = _cli(_args(tiny_gemma_rm, words, out))
    assert code == 0, result.output
    assert f"{int(kept.sum())} were already done" in result.output
    _assert_same_store(ref, out)


SMALL_DISK = """
import os, shutil, subprocess, sys
from pathlib import Path

mount, results, model, words = (Path(a) for a in sys.argv[1:5])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
from click.testing import CliRunner
from cli import main
from analyses.runs.cache_activations import CacheActivationsSettings, run_cache_activations
from interp.progress import NoProgress

out = mount / "acts.h5"
args = ["cache-activations", "--model", str(model), "--as", "rm", "--prompt-keys",
        "best_ever_one,worst_ever_one,greatest_ever_one", "--responses", str(words),
        "--sites", "resid_post,mlp_out", "--batch-size", "4", "--store-dtype", "float32",
        "--out", str(out)]

def fill(path, leave):
    with open(path, "wb") as f:
        try:
            while shutil.disk_usage(mount).free > leave:
                f.write(b"x" * 4096)
                f.flush()
        except OSError:
            pass

# 1. the disk is (almost) full before the store is created: refused at once, nothing left
fill(mount / "filler", 8192)
r = CliRunner().invoke(main, args)
(results / "first.txt").write_text(f"{r.exit_code}\\n{r.output}")
(results / "left.txt").write_text("\\n".join(sorted(p.name for p in mount.iterdir())))
# 2. space freed; the disk fills completely right after the store is created: the run completes
(mount / "filler").unlink()

class FillAfterCreation(NoProgress):
    filled = False
    def advance(self, n=1):
        if not self.filled:
            self.filled = True
            fill(mount / "filler2", 0)
            (results / "free_after_fill.txt").write_text(str(shutil.disk_usage(mount).free))

settings = CacheActivationsSettings(
    model=str(model), kind="rm", prompt_keys=("best_ever_one", "worst_ever_one", "greatest_ever_one"),
    responses=str(words), sites="resid_post,mlp_out", batch_size=4, store_dtype="float32", out=out)
run = run_cache_activations(settings, progress=FillAfterCreation())
(results / "second.txt").write_text(run.headline())
shutil.copy(out, results / "acts.h5")
"""


def _namespace_command() -> list[str] | None:
    """How to run a script that may mount a tmpfs: as root directly, else in a user+mount
    namespace; None when neither works here."""
    if shutil.which("mount") is None:
        return None
    if os.geteuid() == 0:
        return ["unshare", "--mount"] if shutil.which("unshare") else None
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    return ["unshare", "--user", "--map-root-user", "--mount"] if probe.returncode == 0 else None


def test_small_disk_refused_at_creation_and_reserved_space_survives_a_full_disk(
    tmp_path, tiny_gemma_rm, reference
):
    """A real size-limited folder (a 2 MiB tmpfs mounted by the test in its own mount
    namespace): a full disk refuses the store in a second and leaves nothing; after freeing
    space, a disk that fills up during the run does not stop it (its blocks were reserved)."""
    command = _namespace_command()
    if command is None:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root or user namespaces)")
    ref, words = reference
    mount, results = tmp_path / "small", tmp_path / "results"
    mount.mkdir()
    results.mkdir()
    script = tmp_path / "small_disk.py"
    script.write_text(textwrap.dedent(SMALL_DISK))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(
        [*command, sys.executable, str(script), str(mount), str(results), tiny_gemma_rm, str(words)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0 and "mount" in proc.stderr and not (results / "first.txt").exists():
        pytest.skip(f"tmpfs mount refused here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    code, *output = (results / "first.txt").read_text().splitlines()
    lines = [ln for ln in output if ln.strip()]
    assert code == "2" and len(lines) == 1 and "not enough disk space" in lines[0], output
    assert (results / "left.txt").read_text().split() == ["filler"]  # no store, no partial file
    assert int((results / "free_after_fill.txt").read_text()) < 4096  # the disk really was full
    assert "wrote" in (results / "second.txt").read_text()
    _assert_same_store(ref, results / "acts.h5")


HOLDER = """
import sys, time
from interp.locks import OutputLock
lock = OutputLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_writer_is_told_the_store_is_in_use(tmp_path, tiny_gemma_rm, reference):
    ref, words = reference
    out = tmp_path / "shared.h5"
    shutil.copy(ref, out)
    before = out.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        for extra in ((), ("--overwrite",)):
            line = refusal(_cli(_args(tiny_gemma_rm, words, out, *extra))[2])
            assert f"in use by process {proc.pid} on " in line and "since" in line
            assert "truncated" not in line
        assert out.read_bytes() == before  # --overwrite did not remove a locked store
        code, lines, result = _cli(["inspect", str(out)])
        assert code == 0 and f"being written by process {proc.pid}" in result.output
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.1)
    code, lines, result = _cli(_args(tiny_gemma_rm, words, out))  # the dead holder's lock is stale
    assert code == 0 and "resumed" in result.output, result.output

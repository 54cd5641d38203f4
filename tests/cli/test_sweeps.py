"""Sweeps that survive and spread: SIGKILL and rerun, two processes at once, a killed worker's units
redone, torchrun with two ranks, Ray on a local instance, a full disk, an interruption at 60 %.

Every case ends by comparing the table with one uninterrupted single-process run of the same
command: equal rows, equal order, bit-identical scores. Bit-identity needs the same arithmetic:
CPU kernels round differently with another thread count, so every process here (workers and the
reference alike) runs with one thread, as torchrun sets it for each rank.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from analyses.inputs.score_table import read_provenance, read_score_table
from analyses.runs.score import ScoreSettings, run_score
from interp import atomic
from interp.errors import UserError
from interp.sweeps.parts import parts_folder

ROOT = Path(__file__).resolve().parents[2]
KEYS = "best_ever_one,worst_ever_one,greatest_world_single"


def _settings(model: str, out: Path, unit_size: int = 25, **extra) -> ScoreSettings:
    return ScoreSettings(
        model=model, kind="rm", responses="vocab", prompt_keys=tuple(KEYS.split(",")),
        out=out, unit_size=unit_size, poll_s=0.05, **extra,
    )  # fmt: skip


def _args(model: str, out: Path, unit_size: int = 25) -> list[str]:
    return ["score", "--model", model, "--as", "rm", "--responses", "vocab", "--prompt-keys",
            KEYS, "--unit-size", str(unit_size), "--out", str(out)]  # fmt: skip


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def reference(tiny_llama_rm, tmp_path_factory) -> pd.DataFrame:
    """One uninterrupted single-process run in this process (for the in-process cases)."""
    out = tmp_path_factory.mktemp("ref") / "ref.parquet"
    run_score(_settings(tiny_llama_rm, out))
    return read_score_table(out)


@pytest.fixture(scope="module")
def reference_cli(tiny_llama_rm, tmp_path_factory) -> pd.DataFrame:
    """One uninterrupted run of the command in a process of its own (one thread)."""
    out = tmp_path_factory.mktemp("ref-cli") / "ref.parquet"
    proc = _cli(_args(tiny_llama_rm, out))
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    return read_score_table(out)


def _same(path: Path, reference: pd.DataFrame) -> None:
    got = read_score_table(path)  # also checks its row count and digest
    pd.testing.assert_frame_equal(got, reference, check_exact=True)
    assert not parts_folder(path).exists()  # assembled and cleaned up


def _done(out: Path) -> int:
    return len(list((parts_folder(out) / "units").glob("*.done.json")))


def _computed(stdout: str) -> tuple[int, int]:
    import re

    m = re.search(r"\((\d+) of (\d+) work units computed here, (\d+) already done", stdout)
    assert m, stdout
    return int(m.group(1)), int(m.group(3))


def test_sigkill_half_way_then_rerun_finishes_only_the_rest(tiny_llama_rm, tmp_path, reference_cli):
    out = tmp_path / "s.parquet"
    n_units = 3 * -(-len(reference_cli) // 3 // 25)
    proc = _cli(_args(tiny_llama_rm, out))
    while _done(out) < n_units // 2 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = _done(out)
    assert 0 < kept < n_units and not out.exists()  # half done, nothing under the final name
    rerun = _cli(_args(tiny_llama_rm, out))
    stdout, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    computed, already = _computed(stdout)
    assert already == kept and computed == n_units - kept
    _same(out, reference_cli)


def test_two_processes_on_one_plan_share_the_units(tiny_llama_rm, tmp_path, reference_cli):
    out = tmp_path / "s.parquet"
    procs = [_cli(_args(tiny_llama_rm, out)) for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
    computed = [_computed(r[0])[0] for r in results]
    assert sum(computed) == 3 * -(-len(reference_cli) // 3 // 25)  # no unit done twice
    _same(out, reference_cli)


def test_a_killed_workers_units_are_redone_by_another(tiny_llama_rm, tmp_path, reference_cli):
    out = tmp_path / "s.parquet"
    victim, survivor = _cli(_args(tiny_llama_rm, out)), _cli(_args(tiny_llama_rm, out))
    claims = parts_folder(out) / "claims"

    def victim_holds() -> bool:
        for path in claims.glob("*.claim") if claims.exists() else ():
            try:
                if json.loads(path.read_text() or "{}").get("pid") == victim.pid:
                    return True
            except (OSError, ValueError):
                pass
        return False

    deadline = time.time() + 300
    while not victim_holds() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    left_stale = victim_holds()
    stdout, stderr = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, stderr
    if left_stale:  # the victim died holding a unit: the survivor took it over and redid it
        assert "taken over from dead workers" in stdout
    _same(out, reference_cli)


def test_torchrun_two_ranks_write_the_same_table(tiny_llama_rm, tmp_path, reference_cli):
    out = tmp_path / "s.parquet"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(ROOT / "cli.py"), *_args(tiny_llama_rm, out)]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 assembles it" in done.stdout and f"wrote {out}" in done.stdout
    _same(out, reference_cli)


def test_ray_tasks_on_a_local_instance(tiny_llama_rm, tmp_path, reference_cli):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'valuebias[scale]')")
    out = tmp_path / "s.parquet"
    args = [*_args(tiny_llama_rm, out), "--executor", "ray", "--ray-address", "local",
            "--ray-actors", "2"]  # fmt: skip
    proc = _cli(args)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    _same(out, reference_cli)


def test_full_disk_then_free_space_and_rerun(tiny_llama_rm, tmp_path, reference, monkeypatch):
    out = tmp_path / "s.parquet"
    budget = {"left": 40_000}
    real = atomic.atomic_write_bytes

    def small_disk(path, data):  # writes what fits, then fails as a full disk does
        with atomic.atomic_path(path) as tmp:
            fits = max(0, min(len(data), budget["left"]))
            tmp.write_bytes(data[:fits])
            budget["left"] -= fits
            if fits < len(data):
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return Path(path)

    monkeypatch.setattr(atomic, "atomic_write_bytes", small_disk)
    with pytest.raises(UserError, match="no space left"):
        run_score(_settings(tiny_llama_rm, out))
    kept = _done(out)
    assert kept > 0 and not out.exists()
    assert not [p for p in (parts_folder(out) / "units").iterdir() if p.suffix == ".partial"]
    monkeypatch.setattr(atomic, "atomic_write_bytes", real)  # space freed
    run = run_score(_settings(tiny_llama_rm, out))
    assert run.units.already_done == kept
    _same(out, reference)


def test_interrupted_at_60_percent_keeps_what_it_finished(
    tiny_llama_rm, tmp_path, reference, monkeypatch
):
    from interp import score_units

    out = tmp_path / "s.csv"
    n_units = 3 * -(-len(reference) // 3 // 25)
    calls = {"n": 0}
    real = score_units.ScoreUnits.__call__

    def interrupted(self, unit):
        calls["n"] += 1
        if calls["n"] > int(0.6 * n_units):
            raise KeyboardInterrupt
        return real(self, unit)

    monkeypatch.setattr(score_units.ScoreUnits, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_score(_settings(tiny_llama_rm, out))
    assert _done(out) == int(0.6 * n_units) and not out.exists()
    assert not list((parts_folder(out) / "claims").iterdir())  # claims released
    monkeypatch.setattr(score_units.ScoreUnits, "__call__", real)
    run = run_score(_settings(tiny_llama_rm, out))
    assert run.units.computed == n_units - int(0.6 * n_units)
    csv = read_score_table(out)  # CSV: same rows and scores as the Parquet reference
    pd.testing.assert_frame_equal(csv[reference.columns[:9]], reference[reference.columns[:9]])


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_sigkill_while_assembling_leaves_nothing_under_the_final_name(
    tiny_llama_rm, tmp_path, reference, suffix
):
    out = tmp_path / f"s{suffix}"
    code = (
        "import sys, time\nfrom interp.sweeps import parts\nreal = parts.Parts.read\n"
        "def slow(self, unit):\n    if unit.index == 3:\n"
        "        print('assembling', flush=True); time.sleep(120)\n    return real(self, unit)\n"
        "parts.Parts.read = slow\nfrom cli import main\nsys.argv = ['cli.py'] + sys.argv[1:]\n"
        "main()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *_args(tiny_llama_rm, out)], cwd=ROOT,
                            env=_env(), stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "assembling"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # the half-written table only ever had a hidden temporary name
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    run_score(_settings(tiny_llama_rm, out))
    got = read_score_table(out)
    assert len(got) == len(reference) and read_provenance(out)["rows"] == len(reference)


def test_a_different_sweep_in_the_parts_folder_is_refused(tiny_llama_rm, tmp_path, monkeypatch):
    from interp import score_units

    out = tmp_path / "s.parquet"

    def stop(self, unit):
        raise KeyboardInterrupt

    monkeypatch.setattr(score_units.ScoreUnits, "__call__", stop)
    with pytest.raises(KeyboardInterrupt):
        run_score(_settings(tiny_llama_rm, out))
    with pytest.raises(UserError, match="another sweep .*unit_size"):
        run_score(_settings(tiny_llama_rm, out, unit_size=30))

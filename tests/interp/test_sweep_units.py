"""Work units, claims and workers: content addresses, exclusive claims with stale takeover,
launcher environments, the parts folder's checks, and out-of-memory halving."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from interp.budget import fitted_rows, run_in_batches
from interp.errors import UserError
from interp.locks import Claim, OutputLock
from interp.sweeps.parts import Parts
from interp.sweeps.plan import plan_units
from interp.sweeps.workers import worker_from_env

PROMPTS = [{"key": "a", "text": "A?"}, {"key": "b", "text": "B?"}]


def test_units_are_content_addressed():
    plan = plan_units({"model": "m", "dtype": "float32"}, PROMPTS, 10, 4)
    assert [(u.prompt, u.start, u.stop) for u in plan.units] == [
        (0, 0, 4), (0, 4, 8), (0, 8, 10), (1, 0, 4), (1, 4, 8), (1, 8, 10)
    ]  # fmt: skip
    again = plan_units({"dtype": "float32", "model": "m"}, PROMPTS, 10, 4)
    assert [u.uid for u in again.units] == [u.uid for u in plan.units]
    assert again.digest == plan.digest
    other = plan_units({"model": "m", "dtype": "bfloat16"}, PROMPTS, 10, 4)
    assert not {u.uid for u in other.units} & {u.uid for u in plan.units}
    assert len({u.uid for u in plan.units}) == len(plan.units)


def test_claims_are_exclusive_and_a_dead_holders_claim_is_taken_over(tmp_path):
    path = tmp_path / "u.claim"
    first = Claim(path)
    assert first.try_acquire() and not Claim(path).try_acquire()
    first.release()
    assert not path.exists() and Claim(path).try_acquire()
    dead = tmp_path / "dead.claim"
    code = (
        "import time\nfrom interp.locks import Claim\n"
        f"c = Claim({str(dead)!r}); assert c.try_acquire()\nprint('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    assert not Claim(dead).try_acquire()  # alive: refused
    proc.kill()
    proc.wait()
    taker = Claim(dead)
    assert taker.try_acquire() and taker.took_over["pid"] == proc.pid
    assert json.loads(dead.read_text())["pid"] == os.getpid()


def test_a_fresh_claim_of_another_machine_is_respected_until_its_lease_ends(tmp_path):
    path = tmp_path / "remote.claim"
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "t"}))
    assert not Claim(path, lease_s=60).try_acquire()  # heartbeat fresh, holder on another host
    old = time.time() - 120
    os.utime(path, (old, old))
    claim = Claim(path, lease_s=60)
    assert claim.try_acquire() and claim.took_over["host"] == "elsewhere"
    assert claim.beat() and time.time() - path.stat().st_mtime < 5


def test_output_lock_waits_for_a_busy_holder(tmp_path):
    lock = OutputLock(tmp_path / "o").acquire()
    with pytest.raises(UserError, match="in use by process"):
        OutputLock(tmp_path / "o").acquire(wait_s=0.2)
    lock.release()
    OutputLock(tmp_path / "o").acquire(wait_s=0.2).release()


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, (0, 1, "single", True)),
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (1, 2, "torchrun", False)),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, (0, 2, "torchrun", True)),
        ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"},
         (2, 4, "slurm", True)),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MAX": "3", "RANK": "1", "WORLD_SIZE": "2"},
         (7, 8, "torchrun+slurm", False)),
    ],
)  # fmt: skip
def test_workers_from_launcher_environments(env, expected):
    w = worker_from_env(env)
    assert (w.index, w.count, w.launcher, w.assembles) == expected
    order = w.order(list(range(12)))
    assert sorted(order) == list(range(12))
    assert order[: 12 // w.count] == [i for i in range(12) if i % w.count == w.index]
    with pytest.raises(UserError, match="not a whole number"):
        worker_from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_parts_refuse_a_damaged_unit_and_another_plan(tmp_path):
    plan = plan_units({"model": "m"}, PROMPTS, 4, 2)
    parts = Parts(tmp_path / "p", plan)
    assert parts.open() is False and parts.open() is True
    unit = plan.units[0]
    frame = pd.DataFrame({"response": ["a", "b"], "score": [0.5, -1.25]})
    frame.attrs["meta"] = {"model": {"fingerprint": "f"}}
    parts.write(unit, frame, worker="w")
    assert parts.is_done(unit) and parts.marker(unit)["model"] == {"fingerprint": "f"}
    pd.testing.assert_frame_equal(parts.read(unit), frame)
    pd.DataFrame({"response": ["a"], "score": [0.5]}).to_parquet(parts.unit_path(unit))
    with pytest.raises(UserError, match="differ from its done marker"):
        parts.read(unit)
    with pytest.raises(UserError, match="another sweep"):
        Parts(tmp_path / "p", plan_units({"model": "other"}, PROMPTS, 4, 2)).open()
    assert (
        Parts(tmp_path / "p", plan_units({"model": "o"}, PROMPTS, 4, 2)).open(overwrite=True)
        is False
    )


def test_out_of_memory_halves_the_batch_and_remembers_it():
    seen = []

    def run(start: int, stop: int) -> None:
        if stop - start > 6:
            raise torch.OutOfMemoryError("simulated")
        seen.append((start, stop))

    used = run_in_batches(20, 16, run, "cpu", 999)
    assert used == 4 and seen[0] == (0, 4)
    assert [i for s, e in seen for i in range(s, e)] == list(range(20))
    assert fitted_rows()["cpu/999"] == 4
    seen.clear()
    run_in_batches(8, 16, run, "cpu", 999)  # starts from the size that fit
    assert seen == [(0, 4), (4, 8)]
    assert socket.gethostname()


def test_overwrite_never_removes_units_a_live_worker_holds(tmp_path):
    plan = plan_units({"model": "m"}, PROMPTS, 4, 2)
    parts = Parts(tmp_path / "p", plan)
    parts.open()
    held = parts.claim(plan.units[0], 600)
    assert held.try_acquire()
    other = Parts(tmp_path / "p", plan_units({"model": "other"}, PROMPTS, 4, 2))
    with pytest.raises(UserError, match="in use by process"):
        other.open(overwrite=True)
    held.release()
    assert other.open(overwrite=True) is False

"""Run a plan's units as Ray tasks on an existing Ray cluster (``--executor ray --ray-address``).

The driver (this process) claims each unit it submits (so a local worker on the same plan never
duplicates it), and a pool of Ray actors computes them: one actor per GPU of the cluster (each
reserves one GPU), or two CPU actors on a cluster without GPUs, unless ``actors`` says how many.
Each actor builds its compute function once (``make_compute()``: loads the model) and returns
each unit's rows to the driver, which writes them into the parts folder, so the cluster's nodes
need not share a filesystem with the driver. ``address="local"`` starts a private local Ray
instance (what CI uses). Ray is an optional extra: ``pip install 'valuebias[scale]'``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import pandas as pd

from interp.errors import UserError
from interp.progress import NoProgress, Progress
from interp.sweeps.local import Heartbeat, UnitsRun
from interp.sweeps.parts import Parts
from interp.sweeps.plan import SweepPlan, WorkUnit


class _UnitActor:
    """Computes units with the function built by ``make_compute`` (once per actor)."""

    def __init__(self, make_compute: Callable[[], Callable[[WorkUnit], pd.DataFrame]]) -> None:
        self.compute = make_compute()

    def run(self, unit: WorkUnit) -> pd.DataFrame:
        return self.compute(unit)


def _connect(address: str, local_cpus: int):
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'valuebias[scale]'") from None
    path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    runtime = {"env_vars": {"PYTHONPATH": path}}
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(address="local", num_cpus=local_cpus, include_dashboard=False,
                         log_to_driver=False, runtime_env=runtime)  # fmt: skip
            else:
                ray.init(address=address, log_to_driver=False, runtime_env=runtime)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise UserError(f"--ray-address {address}: cannot connect to Ray ({err})") from None
    return ray


def run_units_ray(
    plan: SweepPlan,
    parts: Parts,
    make_compute: Callable[[], Callable[[WorkUnit], pd.DataFrame]],
    address: str,
    *,
    actors: int | None = None,
    lease_s: float = 600.0,
    progress: Progress | None = None,
) -> UnitsRun:
    """Compute every unit not yet done on the Ray cluster at ``address``; see the module doc."""
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    ray = _connect(address, local_cpus=actors or 2)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    n_actors = actors or (gpus if gpus else 2)
    remote = ray.remote(num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1)(_UnitActor)
    pool = [remote.remote(make_compute) for _ in range(n_actors)]
    already = parts.n_done()
    todo = [u for u in plan.units if not parts.is_done(u)]
    progress.start(len(plan.units), f"work units on Ray ({n_actors} actors)")
    progress.advance(already)
    heartbeat = Heartbeat(max(0.05, lease_s / 4))
    running: dict = {}  # object ref -> (unit, claim, actor)
    free = list(pool)
    computed = taken_over = 0
    try:
        while todo or running:
            while todo and free:
                unit = todo.pop(0)
                claim = parts.claim(unit, lease_s)
                if parts.is_done(unit) or not claim.try_acquire():
                    continue  # done, or a live local worker has it
                taken_over += claim.took_over is not None
                heartbeat.watch(claim)
                actor = free.pop()
                running[actor.run.remote(unit)] = (unit, claim, actor)
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1)
            unit, claim, actor = running.pop(ready[0])
            try:
                parts.write(unit, ray.get(ready[0]), worker=f"ray:{address}")
                computed += 1
                progress.advance()
            finally:
                heartbeat.unwatch(claim)
                claim.release()
                free.append(actor)
    finally:
        heartbeat.stop()
        for ref, (_, claim, _) in running.items():
            ray.cancel(ref, force=True)
            claim.release()
        for actor in pool:
            ray.kill(actor)
        progress.close()
    return UnitsRun(computed, already, taken_over, time.perf_counter() - t0)

"""Run a plan's units in this process: claim, compute, write, repeat, until every unit is done.

Any number of processes (ranks, array tasks, machines on a shared filesystem) run this loop on
the same plan at once. Each unit is claimed before it is computed (``interp.locks.Claim``), so no
unit is done twice; a worker that died leaves a stale claim that the next worker takes over, so
its units are redone. The claim's heartbeat is refreshed by a background thread while the unit
runs. A worker keeps polling while the only units left are held by live workers, so the last
worker standing finishes them. A killed worker loses at most the unit it was computing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from interp.locks import Claim
from interp.progress import NoProgress, Progress
from interp.sweeps.parts import Parts
from interp.sweeps.plan import SweepPlan, WorkUnit
from interp.sweeps.workers import Worker


@dataclass(frozen=True)
class UnitsRun:
    """What this worker did: units it computed, units done before it started, claims it took
    over from dead workers."""

    computed: int
    already_done: int
    taken_over: int
    seconds: float


class Heartbeat:
    """A daemon thread refreshing the claims being worked on every ``every_s`` seconds."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._claims: set[Claim] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            with self._lock:
                for claim in list(self._claims):
                    claim.beat()

    def watch(self, claim: Claim) -> None:
        with self._lock:
            self._claims.add(claim)

    def unwatch(self, claim: Claim) -> None:
        with self._lock:
            self._claims.discard(claim)

    def stop(self) -> None:
        self._stop.set()


def run_units(
    plan: SweepPlan,
    parts: Parts,
    compute: Callable[[WorkUnit], pd.DataFrame],
    worker: Worker,
    *,
    lease_s: float = 600.0,
    poll_s: float = 0.5,
    finished_elsewhere: Callable[[], bool] = lambda: False,
    progress: Progress | None = None,
) -> UnitsRun:
    """Work on ``plan`` until every unit is done (see the module docstring).

    ``compute(unit)`` returns the unit's rows; ``finished_elsewhere()`` says another worker has
    already assembled the output (then the parts folder may vanish and the loop stops)."""
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    order = worker.order(plan.units)
    already = parts.n_done()
    progress.start(
        len(plan.units), f"work units ({worker.launcher} worker {worker.index + 1}/{worker.count})"
    )
    progress.advance(already)
    seen_done = already
    computed = taken_over = 0
    heartbeat = Heartbeat(max(0.05, lease_s / 4))
    try:
        while not finished_elsewhere():
            try:
                pending = [u for u in order if not parts.is_done(u)]
            except FileNotFoundError:
                break
            done_now = len(plan.units) - len(pending)
            progress.advance(done_now - seen_done)
            seen_done = done_now
            if not pending:
                break
            worked = False
            for unit in pending:
                try:
                    claim = parts.claim(unit, lease_s)
                except FileNotFoundError:
                    break
                if not claim.try_acquire():
                    continue
                heartbeat.watch(claim)
                try:
                    if parts.is_done(unit):  # finished by another worker between our looks
                        continue
                    taken_over += claim.took_over is not None
                    parts.write(unit, compute(unit), worker=worker.name)
                    computed += 1
                    worked = True
                finally:
                    heartbeat.unwatch(claim)
                    claim.release()
                break  # look again from the start of our share: others may have finished units
            if not worked:
                time.sleep(poll_s)  # what is left is held by live workers: wait for them
    finally:
        heartbeat.stop()
        progress.close()
    return UnitsRun(computed, already, taken_over, time.perf_counter() - t0)

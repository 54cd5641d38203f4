"""Who this worker is: a torchrun/accelerate rank, a SLURM array task, or the only worker.

Existing launchers say it in the environment: ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (torchrun and
``accelerate launch``, one node or several), ``SLURM_ARRAY_TASK_ID``/``SLURM_ARRAY_TASK_COUNT``/
``SLURM_ARRAY_TASK_MIN`` (a SLURM job array; combined with ranks when both are set). A worker
takes its own share first (unit ``i`` with ``i % count == index``) and then helps with the rest
(claims keep it from doing a unit twice, and let it redo a dead worker's units). Under torchrun
only rank 0 assembles the output; otherwise any worker that sees every unit done assembles
(assembly is idempotent and locked).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from interp.errors import UserError


@dataclass(frozen=True)
class Worker:
    """``index`` of ``count`` workers; ``launcher``: ``single``, ``torchrun``, ``slurm`` or both."""

    index: int = 0
    count: int = 1
    launcher: str = "single"
    local_rank: int | None = None
    assembles: bool = True

    @property
    def name(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{self.launcher}{self.index}/{self.count}"

    def order(self, items: Sequence) -> list:
        """``items`` with this worker's share first, then the others' (each rotated so workers
        that finish early spread over what is left)."""
        mine = [x for i, x in enumerate(items) if i % self.count == self.index]
        rest = [x for i, x in enumerate(items) if i % self.count != self.index]
        shift = (len(rest) * self.index) // max(1, self.count)
        return mine + rest[shift:] + rest[:shift]


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    text = env.get(name)
    if text in (None, ""):
        return default
    try:
        return int(text)
    except ValueError:
        raise UserError(f"environment variable {name}={text!r} is not a whole number") from None


def worker_from_env(env: Mapping[str, str] | None = None) -> Worker:
    """The worker this process is, from the launcher's environment variables."""
    env = os.environ if env is None else env
    world = _int(env, "WORLD_SIZE", 1) or 1
    rank = _int(env, "RANK", 0) or 0
    local = _int(env, "LOCAL_RANK")
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    launchers = []
    index, count = rank, world
    if world > 1:
        launchers.append("torchrun")
    if task is not None:
        first = _int(env, "SLURM_ARRAY_TASK_MIN", 0) or 0
        tasks = _int(env, "SLURM_ARRAY_TASK_COUNT")
        if tasks is None:
            tasks = (_int(env, "SLURM_ARRAY_TASK_MAX", task) or task) - first + 1
        index, count = (task - first) * world + rank, tasks * world
        launchers.append("slurm")
    if not 0 <= index < count:
        raise UserError(
            f"worker index {index} out of range for {count} workers (launcher variables)"
        )
    return Worker(
        index=index, count=count, launcher="+".join(launchers) or "single",
        local_rank=local, assembles=world == 1 or rank == 0,
    )  # fmt: skip

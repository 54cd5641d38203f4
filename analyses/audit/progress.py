"""One progress display for a whole audit: the stage and step, the counts, and the time left.

``AuditProgress`` wraps the caller's ``Progress`` (the CLI's bars). Every phase a run function
starts is shown as ``[stage 4/7 probes · step 2/3 rm-probes] <what> (audit: ~3m10s left)``; the
wrapped display draws its count bar. Time left: every step has a rough cost (``Step.weight``,
in forward passes); seconds per unit of cost are measured on the steps this run executed and
applied to the steps still to come (skipped steps cost nothing).
"""

from __future__ import annotations

import time

from interp.progress import NoProgress, Progress


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class AuditProgress:
    """A ``Progress`` that labels every phase with the audit's stage, step and time left."""

    def __init__(self, inner: Progress | None, total_weight: float, n_stages: int) -> None:
        self.inner = inner or NoProgress()
        self.remaining = float(total_weight)
        self.n_stages = n_stages
        self.spent = 0.0
        self.executed = 0.0
        self.label = ""
        self._t0 = 0.0
        self._weight = 0.0

    def time_left(self) -> str:
        if self.executed <= 0:
            return "audit: estimating time left"
        left = self.spent / self.executed * max(self.remaining - self._weight, 0.0)
        return f"audit: ~{_duration(left)} left after this step"

    def begin(self, stage_no: int, stage: str, step_no: int, n_steps: int, step: str,
              weight: float) -> None:  # fmt: skip
        """A step starts (``stage_no`` counts from 1)."""
        self.label = f"[stage {stage_no}/{self.n_stages} {stage} · step {step_no}/{n_steps} {step}]"
        self._t0 = time.perf_counter()
        self._weight = weight

    def end(self, executed: bool) -> None:
        """The current step finished; ``executed`` is False when it was skipped."""
        if executed:
            self.spent += time.perf_counter() - self._t0
            self.executed += self._weight
        self.remaining = max(self.remaining - self._weight, 0.0)
        self._weight = 0.0

    def start(self, total: int, desc: str) -> None:
        self.inner.start(total, f"{self.label} {desc} ({self.time_left()})")

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)

    def close(self) -> None:
        self.inner.close()

    def note(self, message: str) -> None:
        self.inner.note(f"{self.label} {message}")

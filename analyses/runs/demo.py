"""``demo``: ``audit`` on the embedded default pair, then the paper's controlled comparison (offline).

The audited pair is ``smollm2-135m-instruct`` and an RM that ``train-rm`` makes from it (LoRA on
every block's attention projections, cached after the first run); the controlled comparison
trains an RM from ``gemma3-270m`` with the same data and settings (``analyses.demo``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyses.demo.pipeline import DemoOutcome, run_demo_pipeline
from analyses.report.content import format_number
from analyses.runs.common import RunResult
from analyses.runs.options import Settings, option
from interp.progress import Progress


@dataclass(frozen=True, kw_only=True)
class DemoSettings(Settings):
    """Where to write, and whether to take only a first look."""

    out: Path = option(Path("demo-out"), "--out", kind="path", help="Output folder.")
    quick: bool = option(False, "--quick", kind="flag",
                         help="A first look (about 5 minutes): 2 prompts, 12 words per category, "
                         "no controlled comparison.")  # fmt: skip


@dataclass(frozen=True)
class DemoRun(RunResult):
    outcome: DemoOutcome | None = field(default=None, repr=False)

    def headline(self) -> str:
        o = self.outcome
        lines = []
        for rm in o.rms:
            a = rm.accuracy
            lines.append(
                f"demo RM from {rm.base} ({'trained now' if rm.trained_now else 'cached'}): "
                f"held-out pairwise accuracy {format_number(a.value)} (Wilson 95% CI "
                f"{format_number(a.low)} to {format_number(a.high)}, n = {a.n} pairs)"
            )
        lines += ["", *o.audit.report.answer_text(), ""]
        lines += [f"{c.severity}: {c.text}" for c in o.audit.report.caveats
                  if c.severity == "warning"]  # fmt: skip
        lines.append(f"report: {self.out / 'report.html'} (and report.json)")
        return "\n".join(lines)


def run_demo(settings: DemoSettings, *, progress: Progress | None = None) -> DemoRun:
    """Audit the embedded default pair, then compare RMs from both embedded bases (offline)."""
    outcome = run_demo_pipeline(Path(settings.out), settings.quick, progress)
    return DemoRun(outcome.out, outcome.audit.files, outcome=outcome)

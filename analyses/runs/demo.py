"""``demo``: every stage of the suite on the two embedded models (offline) into one folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyses.demo.pipeline import STAGES, run_stages
from analyses.runs.common import RunResult
from analyses.runs.options import Settings, option
from interp.progress import Progress


@dataclass(frozen=True, kw_only=True)
class DemoSettings(Settings):
    out: Path = option(Path("demo-out"), "--out", kind="path", help="Output folder.")
    stage: tuple[str, ...] = option(
        (), "--stage", multiple=True, kind="choice", choices=tuple(STAGES), show_default=False,
        help="Run only these stages (repeatable); default: all.",
    )  # fmt: skip


@dataclass(frozen=True)
class DemoRun(RunResult):
    summary: dict = field(default_factory=dict, repr=False)

    def headline(self) -> str:
        parts = [
            f"[{stage}]\n{info['headline']}"
            for stage, info in self.summary.items()
            if isinstance(info, dict) and info.get("headline")
        ]
        return "\n\n".join([*parts, f"summary: {self.out / 'demo_summary.json'}"])


def run_demo(settings: DemoSettings, *, progress: Progress | None = None) -> DemoRun:
    """Run every stage of the suite on the two embedded models (offline) into OUT."""
    out = Path(settings.out)
    summary = run_stages(out, progress, list(settings.stage) or None)
    return DemoRun(out, (out / "demo_summary.json",), summary=summary)

"""The demo: ``audit`` on the embedded default pair, then the controlled comparison, in one folder.

1. The demo RM from ``smollm2-135m-instruct`` (``rms.demo_rm``: trained on first use, cached).
2. ``audit`` of (smollm2-135m-instruct, that RM) into ``out`` (``out/report.html``).
3. Full demo only: the RM from ``gemma3-270m`` with the same data and settings, its preference
   stages under ``out/comparison/gemma3-270m/``, then the main audit again, which finds every
   step complete and only rewrites the report with the comparison section added.

``--quick`` runs 1 and 2 with 2 prompts and 12 words per category (a first look); the report
says the comparison was not run. Everything resumes: rerun the same command after a stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analyses.audit.pipeline import AuditOutcome, run_audit_config
from analyses.demo import comparison
from analyses.demo import config as demo
from analyses.demo.rms import DemoRm, demo_rm
from analyses.report.content import Section
from analyses.runs.audit import AuditSettings
from interp.progress import NoProgress, Progress


@dataclass(frozen=True)
class DemoOutcome:
    out: Path
    audit: AuditOutcome
    rms: tuple[DemoRm, ...]
    comparison: bool


def _audit(base: str, rm: DemoRm, out: Path, quick: bool, progress: Progress, extra=None,
           stages: tuple[str, ...] | None = None) -> AuditOutcome:  # fmt: skip
    values = dict(demo.AUDIT_QUICK if quick else demo.AUDIT)
    if stages:
        values["stages"] = stages
    label = f"demo RM from {base}"
    config = AuditSettings(rm=str(rm.checkpoint), base=base, out=out, rm_label=label,
                           **values).resolve()  # fmt: skip
    return run_audit_config(config, progress, extra=extra)


def _skipped_comparison(_root: Path, _results: dict):
    return [Section("comparison", comparison.TITLE, status="not run with --quick (run `demo` "
                    "without --quick for the controlled comparison of both embedded bases)")], []  # fmt: skip


def run_demo_pipeline(
    out: Path, quick: bool = False, progress: Progress | None = None
) -> DemoOutcome:
    """Run the demo into ``out`` (see the module docstring)."""
    progress = progress or NoProgress()
    out = Path(out)
    first, second = demo.DEMO_BASES
    rm = demo_rm(first, progress)
    if quick:
        outcome = _audit(first, rm, out, True, progress, extra=_skipped_comparison)
        return DemoOutcome(out, outcome, (rm,), False)
    _audit(first, rm, out, False, progress)
    other = demo_rm(second, progress)
    other_outcome = _audit(second, other, out / "comparison" / second, False, progress,
                           stages=demo.COMPARISON_STAGES)  # fmt: skip

    def extra(root: Path, results: dict):
        pairs = [(first, rm, results), (second, other, other_outcome.results)]
        return comparison.section(root, pairs, demo.GAP)

    outcome = _audit(first, rm, out, False, progress, extra=extra)
    return DemoOutcome(out, outcome, (rm, other), True)

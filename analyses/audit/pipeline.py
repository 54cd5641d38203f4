"""Run an audit: the stages in order, each step resumable, one progress display, then the report.

Layout of the output folder::

    audit_config.yaml / .json     the resolved settings and their hash
    0-inputs/{words,prompts}/     the exact words and prompt files every stage reads
    1-rm-preference/ ... 7-token-sweep/   one folder per stage, one sub-folder per step
    figures/                      the report's figures (PNG + SVG)
    report.html, report.json      the report (identical after a resume)
    run_info.json                 what this run did: steps run / skipped / resumed, seconds

Rerunning the same command skips every complete step whose settings are unchanged and redoes
the rest (``analyses.audit.ledger``); an interrupted step runs again in its folder, where the
activation cache resumes by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analyses.audit.config import AuditConfig
from analyses.audit.inputs import input_steps
from analyses.audit.internals import internal_stages
from analyses.audit.ledger import Ledger, Step
from analyses.audit.patching import patching_stage
from analyses.audit.preference import AuditInputs, preference_stages
from analyses.audit.progress import AuditProgress
from analyses.audit.report import build_report
from analyses.audit.tokens import token_stage
from analyses.report.content import Report
from analyses.report.html import write_report
from interp.atomic import atomic_write_text, check_writable
from interp.locks import OutputLock
from interp.progress import Progress
from interp.provenance import settings_hash, utc_now


@dataclass(frozen=True)
class AuditOutcome:
    """What one call did: the report, every step's result and what happened to each step."""

    out: Path
    report: Report
    files: tuple[Path, ...]
    results: dict = field(repr=False)
    outcomes: dict = field(repr=False)
    inputs: AuditInputs | None = None


def plan(
    config: AuditConfig, ledger: Ledger, inputs: AuditInputs, progress
) -> dict[str, list[Step]]:
    """Every enabled stage's steps, in order (stage folder -> steps)."""
    stages: dict[str, list[Step]] = {}
    for build in (preference_stages, internal_stages, patching_stage, token_stage):
        stages.update(build(config, inputs, ledger, progress))
    return stages


def _write_config(config: AuditConfig, out: Path) -> None:
    record = config.record()
    atomic_write_text(out / "audit_config.yaml", yaml.safe_dump(record, sort_keys=False))
    payload = {"settings": record, "settings_hash": settings_hash(record)}
    atomic_write_text(out / "audit_config.json", json.dumps(payload, indent=1) + "\n")


def _run_info(ledger: Ledger, stages: dict[str, list[Step]], started: str) -> dict:
    steps = {}
    for key, outcome in ledger.outcomes.items():
        timing = ledger.timing_path(key)
        seconds = json.loads(timing.read_text()).get("seconds") if timing.is_file() else None
        steps[key] = {"outcome": outcome, "seconds_when_it_ran": seconds}
    return {"started_utc": started, "finished_utc": utc_now(), "stages": list(stages),
            "steps": steps}  # fmt: skip


def run_audit_config(
    config: AuditConfig, progress: Progress | None = None, *, extra=None
) -> AuditOutcome:
    """Run (or resume) the audit ``config`` describes; returns the outcome with its report.

    ``extra(root, results) -> (sections, tests)`` adds sections after the stages' (the demo's
    controlled comparison)."""
    out = Path(config.out)
    check_writable(out, folder=True)
    out.mkdir(parents=True, exist_ok=True)
    started = utc_now()
    with OutputLock(out / "audit"):
        _write_config(config, out)
        ledger = Ledger(out)
        first = input_steps(config, ledger)
        display = AuditProgress(progress, 0.0, 1)
        for i, step in enumerate(first, start=1):
            display.begin(0, "inputs", i, len(first), step.name, 0.0)
            ledger.run(step, display)
        ledger.close_stage("0-inputs", first)
        results = ledger.results
        inputs = AuditInputs.from_results(
            out, results["0-inputs/words"], results["0-inputs/prompts"]
        )
        stages = plan(config, ledger, inputs, display)
        ledger.register([s for steps in stages.values() for s in steps])
        display.n_stages = len(stages)
        display.remaining = sum(
            s.weight for steps in stages.values() for s in steps if ledger.state(s) != "complete"
        )
        for n, (stage, steps) in enumerate(stages.items(), start=1):
            for i, step in enumerate(steps, start=1):
                executed = ledger.state(step) != "complete"
                display.begin(n, stage, i, len(steps), step.name, step.weight if executed else 0.0)
                ledger.run(step, display)
                display.end(executed)
            ledger.close_stage(stage, steps)
        display.label = "[report]"
        display.note("writing report.html and report.json")
        sections, tests = extra(out, ledger.results) if extra else ((), ())
        report = build_report(config, out, inputs, ledger.results, tuple(sections), tuple(tests))
        files = write_report(report, out)
        info = _run_info(ledger, stages, started)
        atomic_write_text(out / "run_info.json", json.dumps(info, indent=1) + "\n")
    return AuditOutcome(out, report, (*files, out / "run_info.json"), dict(ledger.results),
                        dict(ledger.outcomes), inputs)  # fmt: skip

"""``audit``: which values an RM prefers, how much its base already had, and where inside it lives.

The settings are ``analyses.audit.config.AuditConfig``'s fields as options (each ``None`` unless
typed) plus ``--config FILE`` (YAML, the same names as keys); options typed on the command line
win over the file, the file over ``--quick``'s preset, the preset over the defaults. The run is
``analyses.audit.pipeline``: resumable stages, one progress display, ``report.html`` and
``report.json`` in ``--out``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyses.audit.config import AuditConfig, cli_twin
from analyses.audit.pipeline import AuditOutcome, run_audit_config
from analyses.runs.common import RunResult
from interp.progress import Progress

AuditSettings = cli_twin(
    AuditConfig,
    "AuditSettings",
    "Give --rm and --base (or a --config YAML file with the same keys). Stages: RM preference, "
    "base preference and inheritance, [implicit reward with --versus], probes, value lens, "
    "patching, [token sweep with --token-sweep]. Rerun the same command to resume.",
)


@dataclass(frozen=True)
class AuditRun(RunResult):
    """A finished audit: its outcome (report content, step results, what each step did)."""

    outcome: AuditOutcome | None = field(default=None, repr=False)

    def headline(self) -> str:
        report = self.outcome.report
        ran = sum(1 for o in self.outcome.outcomes.values() if not o.startswith("skipped"))
        lines = [*report.answer_text(), ""]
        lines += [f"{c.severity}: {c.text}" for c in report.caveats if c.severity == "warning"]
        lines.append(
            f"{ran} of {len(self.outcome.outcomes)} steps ran (the rest were complete); "
            f"report: {self.out / 'report.html'}"
        )
        return "\n".join(lines)


def run_audit(settings, *, progress: Progress | None = None) -> AuditRun:
    """Audit a reward model against its base: preferences, inheritance, probes, patching."""
    config = settings.resolve() if hasattr(settings, "resolve") else settings
    outcome = run_audit_config(config, progress)
    return AuditRun(outcome.out, outcome.files, {"settings": config.record()}, outcome=outcome)

"""``inspect``: what an activation store holds, how complete it is, and whether its values are finite."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from activations.inspect import StoreReport, inspect_store
from analyses.runs.common import RunResult
from analyses.runs.options import Settings, option
from interp.progress import Progress


@dataclass(frozen=True, kw_only=True)
class InspectSettings(Settings):
    acts: Path = option(Path(), "ACTS", argument=True, kind="path", required=True)
    json: bool = option(False, "--json", kind="flag", help="Print the report as JSON.")


@dataclass(frozen=True)
class InspectRun(RunResult):
    report: StoreReport | None = None
    as_json: bool = False

    def headline(self) -> str:
        return self.report.to_json() if self.as_json else self.report.text()


def run_inspect(settings: InspectSettings, *, progress: Progress | None = None) -> InspectRun:
    """Show an activation store's manifest, shapes, completeness and a NaN/inf check."""
    report = inspect_store(settings.acts)
    return InspectRun(Path(settings.acts), (), report=report, as_json=settings.json)

"""Resumable audit steps: each writes into its own folder with a record of its settings hash.

A *step* is one unit of the audit (``<out>/<stage>/<step>/``): its ``settings`` (everything its
outputs depend on, JSON-ready), the steps whose results it reads (``needs``; their hashes join
its own, so a changed upstream step redoes everything downstream) and a function
``folder -> result`` returning a JSON-ready summary. ``<step>.step.json`` beside the folder
records the settings hash, the status and the result (beside, not inside: the folder belongs to
the command the step runs, which stages its output and swaps it in whole):

- complete, same hash: the step is skipped and its recorded result used;
- running, same hash (an interrupted step): it runs again in the same folder, so a sub-step that
  resumes by itself (the activation cache) continues where it stopped;
- different hash, or a folder without a record: the folder is emptied and the step redone.

Each stage folder gets ``stage.json`` (its steps' hashes) once all its steps are complete.
Results pass through JSON before use, so a fresh and a skipped step give identical results.
Wall-clock times go to ``<step>.timing.json`` beside each record (never into the results).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interp.atomic import atomic_write_text
from interp.progress import NoProgress
from interp.provenance import json_safe, settings_hash, utc_now

STEP_FILE = ".step.json"  # suffix of <stage>/<step>.step.json
STAGE_FILE = "stage.json"
TIMING_FILE = ".timing.json"  # suffix of <stage>/<step>.timing.json


@dataclass(frozen=True)
class Step:
    """One resumable unit: ``run(folder) -> result`` (see the module docstring)."""

    stage: str
    name: str
    settings: dict
    run: Callable[[Path], dict]
    needs: tuple[str, ...] = ()
    weight: float = 1.0

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.name}"


def _json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, NaN -> None, numpy -> Python)."""
    return json.loads(json.dumps(json_safe(obj), default=str))


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@dataclass
class Ledger:
    """The records of one audit folder: step hashes, results and what each run did."""

    root: Path
    hashes: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)

    def folder(self, step: Step) -> Path:
        return self.root / step.stage / step.name

    def record_path(self, step: Step) -> Path:
        """``<stage>/<step>.step.json``: the step's settings hash, status and result."""
        return self.root / step.stage / f"{step.name}{STEP_FILE}"

    def timing_path(self, key: str) -> Path:
        """``<stage>/<step>.timing.json`` of the step ``key`` (``stage/step``)."""
        return self.root / f"{key}{TIMING_FILE}"

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the audit folder (results never hold absolute output paths)."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def step_hash(self, step: Step) -> str:
        upstream = {k: self.hashes[k] for k in step.needs}
        return settings_hash({"step": step.key, "settings": step.settings, "needs": upstream})

    def register(self, steps: list[Step]) -> None:
        """Hash planned steps in order (a step's hash needs only its upstream steps' hashes)."""
        for step in steps:
            self.hashes[step.key] = self.step_hash(step)

    def state(self, step: Step) -> str:
        """``complete`` (skip), ``resume`` (same settings, interrupted) or ``fresh`` (run anew)."""
        record = _read(self.record_path(step))
        if record is None or record.get("settings_hash") != self.step_hash(step):
            return "fresh"
        return "complete" if record.get("status") == "complete" else "resume"

    def run(self, step: Step, progress=None) -> dict:
        """Skip, resume or run ``step``; returns its (JSON round-tripped) result."""
        progress = progress or NoProgress()
        missing = [k for k in step.needs if k not in self.results]
        if missing:
            raise RuntimeError(f"step {step.key} needs {missing}, which have not run")
        folder = self.folder(step)
        digest = self.step_hash(step)
        state = self.state(step)
        if state == "complete":
            record = _read(self.record_path(step))
            self._done(step, digest, record["result"], "skipped (complete, settings unchanged)")
            return record["result"]
        if state == "fresh" and folder.exists():
            shutil.rmtree(folder)  # made with other settings (or unrecorded): redo from scratch
        folder.mkdir(parents=True, exist_ok=True)
        record = {"step": step.key, "status": "running", "settings_hash": digest}
        record["settings"] = _json(step.settings)
        atomic_write_text(self.record_path(step), json.dumps(record, indent=1) + "\n")
        started = time.perf_counter()
        result = _json(step.run(folder))
        record.update(status="complete", needs={k: self.hashes[k] for k in step.needs})
        record["result"] = result
        atomic_write_text(self.record_path(step), json.dumps(record, indent=1) + "\n")
        timing = {"seconds": round(time.perf_counter() - started, 2), "finished_utc": utc_now()}
        atomic_write_text(self.timing_path(step.key), json.dumps(timing) + "\n")
        outcome = "resumed (interrupted before)" if state == "resume" else "ran"
        self._done(step, digest, result, outcome)
        progress.note(f"{step.key}: done in {timing['seconds']:.1f} s")
        return result

    def _done(self, step: Step, digest: str, result: dict, outcome: str) -> None:
        self.hashes[step.key] = digest
        self.results[step.key] = result
        self.outcomes[step.key] = outcome

    def close_stage(self, stage: str, steps: list[Step]) -> None:
        """Write ``<stage>/stage.json`` once every step of ``stage`` is complete."""
        record = {
            "stage": stage,
            "status": "complete",
            "steps": {s.name: self.hashes[s.key] for s in steps},
            "settings_hash": settings_hash([self.hashes[s.key] for s in steps]),
        }
        atomic_write_text(self.root / stage / STAGE_FILE, json.dumps(record, indent=1) + "\n")

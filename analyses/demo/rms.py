"""The demo's reward models: trained once by ``train-rm`` and cached, then reused by every demo.

``demo_rm(base)`` returns the RM trained from ``base`` with ``config.RM_TRAINING``. It lives in
``<cache>/demo-rms/<base>-<hash>/`` (``$VALUEBIAS_CACHE``, default ``~/.cache/valuebias``), the
hash naming the training settings and the tool version, so changed settings train a new one.
Training writes into a ``.partial`` folder that is renamed when complete: an interrupted
training leaves no half-made RM in the cache. The held-out pairwise accuracy comes with its
Wilson 95 % CI.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from analyses.demo import config as demo
from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from analyses.stats.preference import wilson_interval
from interp.evidence import Estimate
from interp.models import zoo
from interp.progress import NoProgress, Progress
from interp.provenance import settings_hash, tool_version


@dataclass(frozen=True)
class DemoRm:
    """A cached demo RM: its checkpoint folder, training summary and held-out accuracy."""

    base: str
    checkpoint: Path
    summary: dict
    accuracy: Estimate
    trained_now: bool


def rm_cache_dir(base: str) -> Path:
    key = settings_hash({"base": base, "training": demo.RM_TRAINING, "tool": tool_version()})
    return zoo.cache_root() / "demo-rms" / f"{base}-{key}"


def _load(folder: Path, base: str, trained_now: bool) -> DemoRm:
    summary = json.loads((folder / "train_summary.json").read_text())
    final = max(summary["heldout_accuracy"], key=int)
    acc, n = summary["heldout_accuracy"][final], int(summary["n_heldout"])
    checkpoint = folder / Path(summary["final_checkpoint"]).name
    return DemoRm(base, checkpoint, summary, wilson_interval(acc * n, n), trained_now)


def demo_rm(base: str, progress: Progress | None = None) -> DemoRm:
    """The RM trained from ``base`` with the demo's settings (trained on first use)."""
    progress = progress or NoProgress()
    folder = rm_cache_dir(base)
    if (folder / "train_summary.json").is_file():
        progress.note(f"demo RM from {base}: cached in {folder}")
        return _load(folder, base, trained_now=False)
    partial = folder.with_name(folder.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    progress.note(f"training the demo RM from {base} (once; cached in {folder})")
    settings = TrainRmSettings(base=base, out=partial, **demo.RM_TRAINING)
    run_train_rm(settings, progress=progress)
    summary_path = partial / "train_summary.json"
    summary = json.loads(summary_path.read_text())
    summary["out_dir"] = str(folder)  # the paths it will have once renamed
    summary["final_checkpoint"] = str(folder / Path(summary["final_checkpoint"]).name)
    summary_path.write_text(json.dumps(summary, indent=1))
    if folder.exists():  # another process finished first: keep its copy
        shutil.rmtree(partial, ignore_errors=True)
    else:
        os.replace(partial, folder)
    return _load(folder, base, trained_now=True)

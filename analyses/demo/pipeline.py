"""The demo pipeline: every stage on the two embedded models, into one output folder.

Each stage (``analyses.demo.stages``) returns a JSON-ready summary that the pipeline collects into
``out_dir/demo_summary.json`` after every stage, so an interrupted demo loses at most the stage
it was in; ``stages`` reruns only the named ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from analyses.demo import stages
from analyses.runs.common import write_json
from interp.errors import UserError
from interp.progress import NoProgress, Progress

Stage = Callable[[Path, Progress], dict]

STAGES: dict[str, Stage] = {
    "next-token-logprobs": stages.stage_next_token_logprobs,
    "implicit-reward": stages.stage_implicit_reward,
    "probes": stages.stage_probes,
    "rm-training": stages.stage_training,
}


def run_stages(
    out_dir: Path, progress: Progress | None = None, names: Sequence[str] | None = None
) -> dict:
    """Run the named stages (default: all) and write ``out_dir/demo_summary.json``."""
    progress = progress or NoProgress()
    unknown = [s for s in names or () if s not in STAGES]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "demo_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in names or list(STAGES):
        summary[name] = STAGES[name](out_dir, progress)
        write_json(summary, summary_path)
    return summary

"""The ``demo``: every stage of the suite on the two embedded models, into one output folder.

Each stage is a function ``(out_dir, progress) -> dict`` returning a JSON-ready summary that
the demo collects into ``out_dir/demo_summary.json``; a stage whose output already exists is
redone only when asked, so an interrupted demo loses at most the stage it was in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from analyses.prompts import paper_prompts
from analyses.provenance import provenance
from analyses.score_table import write_score_table
from interp import zoo
from interp.loading import ModelSpec, load_model
from interp.progress import NoProgress, Progress
from interp.scoring import next_token_logprobs

DEMO_MODELS = ("smollm2-135m-instruct", "gemma3-270m")
SHOWCASE_PROMPT = "greatest_ever_one"
TOP_K = 200

Stage = Callable[[Path, Progress], dict]


def top_token_table(loaded, prompts, logprobs, k: int = TOP_K) -> pd.DataFrame:
    """The ``k`` most likely next tokens per prompt as score-table rows (score = log-prob, nats)."""
    tok = loaded.tokenizer
    rows = []
    values, indices = logprobs.topk(k, dim=-1)
    for prompt, vals, ids in zip(prompts, values, indices):
        ids_list = ids.tolist()
        raw = tok.convert_ids_to_tokens(ids_list)
        for rank, (v, t, r) in enumerate(zip(vals.tolist(), ids_list, raw), start=1):
            rows.append(
                {
                    "model": loaded.name,
                    "family": loaded.family,
                    "kind": "lm",
                    "prompt_key": prompt.key,
                    "prompt": prompt.text,
                    "framing": prompt.framing,
                    "response": tok.decode([t]),
                    "token_id": t,
                    "score": v,
                    "rank": rank,
                    "raw_token": r,
                }
            )
    return pd.DataFrame(rows)


def stage_next_token_logprobs(out_dir: Path, progress: Progress) -> dict:
    """Fetch both embedded models; next-token log-probs of the 54 prompts; top tokens per prompt."""
    prompts = paper_prompts()
    out_dir = out_dir / "lm_logprobs"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {}
    for name in DEMO_MODELS:
        progress.start(1, f"fetching {name}")
        zoo.fetch_embedded(name)
        progress.advance()
        loaded = load_model(ModelSpec(name, kind="lm"))
        progress.start(len(prompts), f"next-token log-probs, {name}")
        rows = []
        for prompt in prompts:
            rows.append(next_token_logprobs(loaded, [prompt.text])[0])
            progress.advance()
        table = top_token_table(loaded, prompts, torch.stack(rows))
        path = out_dir / f"{name}.parquet"
        write_score_table(
            table,
            path,
            provenance(
                model=loaded.provenance(),
                prompts={"source": "paper54", "n": len(prompts)},
                responses={"responses": f"top {TOP_K} next tokens of the full vocabulary"},
            ),
        )
        show = table[table["prompt_key"] == SHOWCASE_PROMPT].head(10)
        summary[name] = {
            "file": str(path),
            "template": loaded.template_mode if loaded.template_mode == "chat" else "raw prompt",
            "top_tokens": [
                {"token": r.response, "logprob": round(float(r.score), 3)}
                for r in show.itertuples()
            ],
        }
    progress.close()
    return summary


def stage_implicit_reward(out_dir: Path, progress: Progress) -> dict:
    """Implicit reward between the embedded pair, Stage-2 statistics and figures."""
    from analyses.implicit_reward import demo_stage_statistics

    return demo_stage_statistics(out_dir / "implicit_reward", progress)


def stage_probes(out_dir: Path, progress: Progress) -> dict:
    """Activations of both embedded models on Big Two words, and layerwise probe curves."""
    from analyses.probe_demo import demo_stage_probes

    summary = demo_stage_probes(out_dir, progress)
    summary["headline"] = "\n".join(
        f"{name}: {info['headline']}" for name, info in summary["models"].items()
    )
    return summary


def stage_training(out_dir: Path, progress: Progress) -> dict:
    """RMs trained from both embedded models on the same data; durability, value lens, patching."""
    from analyses.training_demo import demo_stage_training

    summary = demo_stage_training(out_dir, progress)
    lines = [f"data: {summary['labels_warning'] or summary['data'].get('source')}"]
    for framing, per_model in summary.get("controlled_comparison", {}).items():
        for name, gap in per_model.items():
            lines.append(
                f"{framing} prompts, {name}: Agency-Communion gap (Cohen's d) base LM "
                f"{gap['base_lm_logprob_d']:+.2f}, RM step 0 {gap['rm_d_step0']:+.2f}, "
                f"RM final {gap['rm_d_final']:+.2f}, held-out accuracy {gap['heldout_accuracy_final']:.2f}"
            )
    patching = summary.get("patching", {})
    if patching:
        lines.append(
            f"patching {patching['pair']}: largest effect per site {patching['largest_effect_per_site']}"
        )
    summary["headline"] = "\n".join(lines)
    return summary


STAGES: dict[str, Stage] = {
    "next-token-logprobs": stage_next_token_logprobs,
    "implicit-reward": stage_implicit_reward,
    "probes": stage_probes,
    "rm-training": stage_training,
}


def run_demo(
    out_dir: Path, progress: Progress | None = None, stages: list[str] | None = None
) -> dict:
    """Run the named stages (default: all) and write ``out_dir/demo_summary.json``."""
    progress = progress or NoProgress()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "demo_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in stages or list(STAGES):
        summary[name] = STAGES[name](out_dir, progress)
        summary_path.write_text(json.dumps(summary, indent=2, default=str))
    return summary

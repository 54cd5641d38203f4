"""``score``: RM rewards or LM log-probs for every (prompt, response) into a score table.

The output is a score table (``analyses.inputs.score_table``) with the detail columns
``n_tokens``, ``raw_token``, ``template`` and, when the responses come with categories,
``category``. Its provenance records the model, prompts, responses, shard and settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from analyses.inputs.prompts import load_prompts
from analyses.inputs.responses import load_responses
from analyses.inputs.score_table import write_score_table
from analyses.runs.common import ModelChoice, PromptChoice, RunResult, output_file
from analyses.runs.options import option
from interp.models.loading import load_model
from interp.progress import Progress
from interp.provenance import provenance
from interp.scoring import Shard, score_responses


@dataclass(frozen=True, kw_only=True)
class ScoreSettings(ModelChoice, PromptChoice):
    """What to score and where to write it."""

    responses: str = option(
        "", "--responses", required=True,
        help="vocab (every token as a one-token response), a word file (.txt/.csv) or a lexicon.",
    )  # fmt: skip
    out: Path = option(Path("scores.parquet"), "--out", kind="path", required=True,
                       help="Output score table (.parquet or .csv).")  # fmt: skip
    batch_size: int | None = option(
        None, "--batch-size", kind="int", low=1, help="Candidates per forward pass [auto]."
    )
    shard: Shard = option(
        Shard(), "--shard", parse=Shard.parse, metavar="I/N", show_default=False,
        help="Score slice I of N equal slices of the responses (1-based), e.g. 2/8.",
    )  # fmt: skip


@dataclass(frozen=True)
class ScoreRun(RunResult):
    n_rows: int = 0
    model: str = ""

    def headline(self) -> str:
        return f"wrote {self.out}: {self.n_rows} rows scored by {self.model}"


def prompts_digest(prompts) -> str:
    """sha256 (16 hex) of the prompts' keys and texts."""
    payload = json.dumps([(p.key, p.text) for p in prompts])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_score(settings: ScoreSettings, *, progress: Progress | None = None) -> ScoreRun:
    """Score responses with an RM (rewards) or an LM (log-probs, nats) into a score table."""
    with output_file(settings.out, ("parquet", "csv")):
        return _score(settings, progress)


def _score(settings: ScoreSettings, progress: Progress | None) -> ScoreRun:
    prompts = load_prompts(settings.prompts, settings.prompt_keys, settings.encoding)
    response_set = None
    if settings.responses != "vocab":  # word files are read (or refused) before a model loads
        response_set = load_responses(
            settings.responses, shard=settings.shard, encoding=settings.encoding
        )
    loaded = load_model(settings.model_spec())
    if response_set is None:
        response_set = load_responses("vocab", loaded, settings.shard)
    table = score_responses(loaded, prompts, response_set.responses, settings.batch_size, progress)
    cats = response_set.categories
    if len(cats):
        joined = cats.groupby("response")["category"].agg(lambda c: "|".join(sorted(set(c))))
        table["category"] = table["response"].map(joined).fillna("")
    record = provenance(
        seed=settings.random_head,
        model=loaded.provenance(),
        prompts={"source": settings.prompts, "n": len(prompts), "digest": prompts_digest(prompts)},
        responses=response_set.description,
        shard=str(settings.shard),
        batch_size=settings.batch_size,
    )
    path = write_score_table(table, settings.out, record)
    return ScoreRun(path, (path,), record, n_rows=len(table), model=loaded.name)

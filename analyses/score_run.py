"""One scoring run end to end (load, resolve prompts and responses, score, write), and shard merging.

The output is a score table (see ``analyses.score_table``) with extra columns ``n_tokens``,
``raw_token``, ``template`` and, when the responses come with categories, ``category``. Its
provenance records the model, prompts, responses, shard and settings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from analyses.prompts import load_prompts
from analyses.provenance import provenance
from analyses.responses import load_responses
from analyses.score_table import read_provenance, read_score_table, write_score_table
from interp.errors import UserError
from interp.loading import ModelSpec, load_model
from interp.progress import Progress
from interp.scoring import Shard, score_responses


def _prompts_digest(prompts) -> str:
    payload = json.dumps([(p.key, p.text) for p in prompts])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def score_to_file(
    spec: ModelSpec,
    prompts_source: str,
    responses_spec: str,
    out: Path,
    prompt_keys: tuple[str, ...] | None = None,
    batch_size: int | None = None,
    shard: Shard = Shard(),
    progress: Progress | None = None,
) -> Path:
    """Score ``responses_spec`` after every prompt of ``prompts_source`` and write ``out``."""
    prompts = load_prompts(prompts_source, prompt_keys)
    loaded = load_model(spec)
    response_set = load_responses(responses_spec, loaded, shard)
    table = score_responses(loaded, prompts, response_set.responses, batch_size, progress)
    cats = response_set.categories
    if len(cats):
        joined = cats.groupby("response")["category"].agg(lambda c: "|".join(sorted(set(c))))
        table["category"] = table["response"].map(joined).fillna("")
    record = provenance(
        seed=spec.random_head_seed,
        model=loaded.provenance(),
        prompts={"source": prompts_source, "n": len(prompts), "digest": _prompts_digest(prompts)},
        responses=response_set.description,
        shard=str(shard),
        batch_size=batch_size,
    )
    return write_score_table(table, out, record)


def merge_shards(paths: list[Path], out: Path) -> Path:
    """Join shard tables of one sweep; refuse mixed models or overlapping rows.

    Shards must share the model fingerprint and prompts. Returns ``out``.
    """
    if not paths:
        raise UserError("no shard files given")
    tables, records = [], []
    for path in paths:
        tables.append(read_score_table(path))
        records.append(read_provenance(path))
    fingerprints = {r.get("model", {}).get("fingerprint") for r in records}
    if len(fingerprints) > 1:
        raise UserError(
            f"shards come from different models (fingerprints {sorted(map(str, fingerprints))})"
        )
    prompts = {json.dumps(r.get("prompts"), sort_keys=True) for r in records}
    if len(prompts) > 1:
        raise UserError("shards were scored on different prompts")
    merged = pd.concat(tables, ignore_index=True)
    key = ["prompt_key", "token_id", "response"]
    dupes = merged.duplicated(subset=key)
    if dupes.any():
        raise UserError(f"shards overlap: {int(dupes.sum())} duplicated (prompt, response) rows")
    shards = sorted(r.get("shard", "?") for r in records)
    record = dict(records[0])
    record.update(shard="merged", merged_from=[str(p) for p in paths], merged_shards=shards)
    merged = merged.sort_values(["prompt_key", "token_id", "response"], kind="stable")
    return write_score_table(merged.reset_index(drop=True), out, record)

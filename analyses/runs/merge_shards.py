"""``merge-shards``: join the score tables of a sharded sweep into one table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analyses.inputs.score_table import (
    SCORE_FORMATS,
    read_provenance,
    read_score_table,
    write_score_table,
)
from analyses.runs.common import output_file
from analyses.runs.options import Settings, option
from analyses.runs.score import ScoreRun
from interp.errors import UserError
from interp.progress import Progress


@dataclass(frozen=True, kw_only=True)
class MergeShardsSettings(Settings):
    """Shard tables of one sweep and the merged table to write."""

    files: tuple[Path, ...] = option((), "FILES", argument=True, nargs=-1, kind="path")
    out: Path = option(Path("merged.parquet"), "--out", kind="path", required=True,
                       help="Merged score table (.parquet or .csv).")  # fmt: skip


def run_merge_shards(
    settings: MergeShardsSettings, *, progress: Progress | None = None
) -> ScoreRun:
    """Join the score tables of a sharded sweep (same model and prompts) into one."""
    paths = list(settings.files)
    if not paths:
        raise UserError("no shard files given")
    with output_file(settings.out, SCORE_FORMATS):
        return _merge(paths, settings.out)


def _merge(paths: list[Path], out: Path) -> ScoreRun:
    tables = [read_score_table(p) for p in paths]
    records = [read_provenance(p) for p in paths]
    fingerprints = {r.get("model", {}).get("fingerprint") for r in records}
    if len(fingerprints) > 1:
        raise UserError(
            f"shards come from different models (fingerprints {sorted(map(str, fingerprints))})"
        )
    if len({json.dumps(r.get("prompts"), sort_keys=True) for r in records}) > 1:
        raise UserError("shards were scored on different prompts")
    merged = pd.concat(tables, ignore_index=True)
    key = ["prompt_key", "token_id", "response"]
    dupes = merged.duplicated(subset=key)
    if dupes.any():
        raise UserError(f"shards overlap: {int(dupes.sum())} duplicated (prompt, response) rows")
    record = dict(records[0])
    record.update(
        shard="merged",
        merged_from=[str(p) for p in paths],
        merged_shards=sorted(r.get("shard", "?") for r in records),
    )
    merged = merged.sort_values(key, kind="stable").reset_index(drop=True)
    path = write_score_table(merged, out, record)
    return ScoreRun(
        path, (path,), record, n_rows=len(merged), model=str(record.get("model", {}).get("model"))
    )

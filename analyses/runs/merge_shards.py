"""``merge-shards``: join the score tables of a sharded sweep into one table, after checking coverage.

Each shard written by ``score --shard i/n`` records its candidate range ``[start, stop)`` of the
full response list (``total`` candidates) and that list's digest. Merging refuses: shards of
different models or prompts, shards of different response sets (e.g. a vocabulary shard mixed
with a word list), a gap in the candidate ranges, an overlap, a shard missing its range, and any
shard whose rows or content differ from its own recorded row count and digest (a truncated CSV).
The merged table lists rows exactly as one unsharded run would: prompt by prompt, candidates in
order.
"""

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


def check_coverage(records: list[dict], paths: list[Path]) -> list[int]:
    """Order of the shards by candidate range; refuses gaps, overlaps and mixed response sets."""
    ranges = []
    for path, record in zip(paths, records):
        cand = record.get("candidates")
        if not isinstance(cand, dict) or not {"start", "stop", "total"} <= set(cand):
            raise UserError(f"{path}: no candidate range in its provenance (not written by score?)")
        ranges.append(cand)
    sets = {(c["total"], c.get("responses_digest")) for c in ranges}
    if len(sets) > 1:
        raise UserError(
            "shards come from different response sets (totals/digests "
            f"{sorted(map(str, sets))}): a vocabulary shard mixed with a word list?"
        )
    order = sorted(range(len(paths)), key=lambda i: (ranges[i]["start"], ranges[i]["stop"]))
    at = 0
    for i in order:
        start, stop = int(ranges[i]["start"]), int(ranges[i]["stop"])
        if start > at:
            raise UserError(f"shards leave a gap: candidates [{at}, {start}) are in no shard")
        if start < at:
            raise UserError(f"shards overlap: {paths[i]} starts at candidate {start}, before {at}")
        at = stop
    total = int(ranges[0]["total"])
    if at != total:
        raise UserError(f"shards leave a gap: candidates [{at}, {total}) are in no shard")
    return order


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
    tables = [read_score_table(p) for p in paths]  # each read whole and checked against its digest
    records = [read_provenance(p) for p in paths]
    fingerprints = {(r.get("model") or {}).get("fingerprint") for r in records}
    if len(fingerprints) > 1:
        raise UserError(
            f"shards come from different models (fingerprints {sorted(map(str, fingerprints))})"
        )
    if len({json.dumps(r.get("prompts"), sort_keys=True) for r in records}) > 1:
        raise UserError("shards were scored on different prompts")
    order = check_coverage(records, paths)
    tables = [tables[i] for i in order]
    keys = list(dict.fromkeys(k for t in tables for k in t["prompt_key"]))
    merged = pd.concat(
        [t[t["prompt_key"] == k] for k in keys for t in tables], ignore_index=True
    )  # prompt by prompt, candidates in order: as one unsharded run lists them
    dupes = merged.duplicated(subset=["prompt_key", "token_id", "response"])
    if dupes.any():
        raise UserError(f"shards overlap: {int(dupes.sum())} duplicated (prompt, response) rows")
    total = int(records[0]["candidates"]["total"])
    record = dict(records[order[0]])
    for volatile in ("rows", "digest", "digest_method", "plan"):
        record.pop(volatile, None)
    record.update(
        shard="merged",
        candidates={**records[0]["candidates"], "start": 0, "stop": total},
        merged_from=[str(paths[i]) for i in order],
        merged_shards=[records[i].get("shard", "?") for i in order],
    )
    path = write_score_table(merged, out, record)
    return ScoreRun(
        path, (path,), record, n_rows=len(merged),
        model=str((record.get("model") or {}).get("model")),
    )  # fmt: skip

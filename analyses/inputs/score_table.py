"""Score-table files: checking a table against the schema, and reading and writing it with provenance.

The columns are defined with the row builder in ``interp.score_rows`` (``SCORE_COLUMNS``): one
row per (model, prompt, response) with its scalar score (RM reward, LM log-prob in nats, or
implicit reward). Files are Parquet (CSV is accepted on read and write). Provenance (a JSON-serialisable dict) is
stored in the Parquet schema metadata under ``valuebias.provenance`` and, for every format, in a
sidecar ``<path>.meta.json``.

Integrity: every table written here records in its provenance the row count (``rows``) and a
content digest of the schema columns (``digest``, ``interp.provenance.FrameDigest``), and every
reader checks both: a truncated or edited table is refused, never read as complete. Tables are
written atomically (``interp.atomic``), chunk by chunk (``write_score_table_stream``: a sweep's
table never has to fit in memory at once).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from interp.atomic import atomic_path, atomic_write_text, output_format
from interp.errors import UserError
from interp.files import parse_json, read_delimited, read_parquet, table_format
from interp.prompts import FRAMINGS
from interp.provenance import DIGEST_METHOD, FrameDigest
from interp.score_rows import KINDS, SCORE_COLUMNS

PROVENANCE_KEY = b"valuebias.provenance"
SCORE_FORMATS = ("parquet", "csv")
NUMERIC_DETAIL_COLUMNS = ("n_tokens", "rank", "step")  # whole numbers among the extra columns
_STRING_COLUMNS = ("model", "family", "kind", "prompt_key", "prompt", "framing", "response")


def sidecar_path(path: str | Path) -> Path:
    """The provenance sidecar of a score table: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def normalise_score_table(df: pd.DataFrame) -> pd.DataFrame:
    """Check columns and values, cast to the schema dtypes, return columns in schema order.

    Raises ``UserError`` for missing columns, unknown kinds or framings, or non-numeric scores.
    Extra columns are kept after the schema columns.
    """
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"score table is missing column(s): {', '.join(missing)}")
    out = df.copy()
    for col in _STRING_COLUMNS:
        if out[col].isna().any() and col != "prompt":
            raise UserError(f"score table has empty values in column {col!r}")
        out[col] = out[col].fillna("").astype(str)
    bad_kind = sorted(set(out["kind"]) - set(KINDS))
    if bad_kind:
        raise UserError(f"score table has unknown kind(s) {bad_kind}; expected one of {KINDS}")
    bad_framing = sorted(set(out["framing"]) - set(FRAMINGS))
    if bad_framing:
        raise UserError(
            f"score table has unknown framing(s) {bad_framing}; expected one of {FRAMINGS}"
        )
    try:
        out["score"] = pd.to_numeric(out["score"]).astype("float64")
    except (TypeError, ValueError) as err:
        raise UserError(f"score table has non-numeric scores: {err}") from err
    try:
        out["token_id"] = pd.to_numeric(out["token_id"]).astype("Int64")
    except (TypeError, ValueError) as err:
        raise UserError(f"score table has non-integer token ids: {err}") from err
    extra = [c for c in out.columns if c not in SCORE_COLUMNS]
    return out[[*SCORE_COLUMNS, *extra]].reset_index(drop=True)


def write_score_table(
    df: pd.DataFrame, path: str | Path, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write a score table to Parquet (or CSV when ``path`` ends in ``.csv``) plus its sidecar,
    each atomically; any other extension is refused.

    ``provenance`` must be JSON-serialisable; it goes into the Parquet metadata and into
    ``<path>.meta.json``, with ``rows`` and ``digest`` added. Returns the path written.
    """
    return write_score_table_stream([df], path, provenance)


def write_score_table_stream(
    frames: Iterable[pd.DataFrame], path: str | Path, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write the concatenation of ``frames`` as one score table, one chunk at a time (memory
    holds one chunk), atomically; provenance gains ``rows`` and ``digest``. Returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    is_csv = output_format(path, SCORE_FORMATS, "score table") == "csv"
    prov = dict(provenance or {})
    digest = FrameDigest(SCORE_COLUMNS)
    with atomic_path(path) as tmp:
        writer, schema = None, None
        try:
            for i, frame in enumerate(frames):
                part = normalise_score_table(frame)
                digest.update(part)
                if is_csv:
                    part.to_csv(
                        tmp,
                        index=False,
                        header=i == 0,
                        mode="w" if i == 0 else "a",
                        quoting=csv.QUOTE_NONNUMERIC,
                        lineterminator="\n",
                    )  # text quoted: "\r" survives
                    continue
                table = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    schema = table.schema
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table if table.schema == schema else table.cast(schema))
            if writer is None and not is_csv:  # no rows at all: an empty table with the schema
                empty = normalise_score_table(pd.DataFrame({c: [] for c in SCORE_COLUMNS}))
                table = pa.Table.from_pandas(empty, preserve_index=False)
                writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            prov.update(rows=digest.rows, digest=digest.hexdigest(), digest_method=DIGEST_METHOD)
            if writer is not None:
                writer.add_key_value_metadata(
                    {PROVENANCE_KEY: json.dumps(prov, sort_keys=True, default=str).encode()}
                )
        finally:
            if writer is not None:
                writer.close()
        side = json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n"
        atomic_write_text(sidecar_path(path), side)  # before the table itself appears
    return path


def check_integrity(df: pd.DataFrame, path: str | Path, provenance: Mapping[str, Any]) -> None:
    """Refuse a table whose rows or content differ from what its provenance recorded."""
    if "rows" in provenance and len(df) != int(provenance["rows"]):
        raise UserError(
            f"{path}: {len(df)} rows but its provenance records {provenance['rows']} (truncated "
            "or damaged); rerun the command that wrote it"
        )
    if provenance.get("digest"):
        if FrameDigest(SCORE_COLUMNS).update(df).hexdigest() != provenance["digest"]:
            raise UserError(
                f"{path}: its content differs from the digest recorded when it was written "
                "(edited or damaged); rerun the command that wrote it"
            )


def read_score_table(path: str | Path, encoding: str | None = None) -> pd.DataFrame:
    """Read a score table (Parquet, or CSV by suffix) and check it against the schema."""
    fmt = table_format(path, "score table", SCORE_FORMATS)
    if fmt == "csv":
        numeric = NUMERIC_DETAIL_COLUMNS
        df = read_delimited(
            path, "score table", encoding, na_columns=("token_id", "score", *numeric)
        )
        for col in numeric:
            if col in df.columns:
                try:
                    df[col] = pd.to_numeric(df[col]).astype("Int64")
                except (TypeError, ValueError):
                    raise UserError(
                        f"score table {path}: column {col} holds non-integers"
                    ) from None
    else:
        df = read_parquet(path, "score table")
    table = normalise_score_table(df)
    check_integrity(table, path, read_provenance(path))
    return table


def read_provenance(path: str | Path) -> dict[str, Any]:
    """Provenance of a score table: Parquet metadata if present, else the sidecar, else {}."""
    path = Path(path)
    if path.suffix.lower() != ".csv" and path.exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            meta = pq.read_metadata(path).metadata or {}
        except (pa.ArrowException, OSError) as err:
            raise UserError(f"score table {path}: not a readable Parquet file ({err})") from None
        if PROVENANCE_KEY in meta:
            return parse_json(meta[PROVENANCE_KEY].decode(), f"provenance of {path}")
    side = sidecar_path(path)
    if side.exists():
        return parse_json(side.read_text(encoding="utf-8"), f"provenance sidecar {side}")
    return {}

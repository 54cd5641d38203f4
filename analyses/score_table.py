"""The score table: one row per (model, prompt, response) with its scalar score.

Columns (see DESIGN.md, "Data formats"):

- ``model`` (str): model id (HF id, embedded name or the paper's file-name id)
- ``family`` (str): base-model family, e.g. ``Gemma`` or ``Llama``
- ``kind`` (str): ``rm`` (reward), ``lm`` (log-prob, nats) or ``implicit`` (MWLR)
- ``prompt_key`` (str): prompt key, e.g. ``greatest_ever_one``
- ``prompt`` (str): prompt text as shown to the model ("" when unknown)
- ``framing`` (str): ``positive``, ``negative`` or ``none`` (prompt outside the design)
- ``response`` (str): the response (a word); lexicon categories join on this
- ``token_id`` (Int64): token id of a one-token response, <NA> when not a single token
- ``score`` (float64): RM reward, log-prob in nats, or implicit reward

Files are Parquet (CSV is accepted on read and write). Provenance (a JSON-serialisable dict) is
stored in the Parquet schema metadata under ``valuebias.provenance`` and, for every format, in a
sidecar ``<path>.meta.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from analyses.errors import UserError

SCORE_COLUMNS: tuple[str, ...] = (
    "model",
    "family",
    "kind",
    "prompt_key",
    "prompt",
    "framing",
    "response",
    "token_id",
    "score",
)
KINDS: tuple[str, ...] = ("rm", "lm", "implicit")
FRAMINGS: tuple[str, ...] = ("positive", "negative", "none")  # none: prompt outside the design
POSITIVE_KEY_PREFIXES: tuple[str, ...] = ("best", "greatest", "good")
PAPER_FILE_PREFIXES: tuple[str, ...] = ("big2_rewards_", "MFD20_rewards_")
PROVENANCE_KEY = b"valuebias.provenance"
_STRING_COLUMNS = ("model", "family", "kind", "prompt_key", "prompt", "framing", "response")


def sidecar_path(path: str | Path) -> Path:
    """The provenance sidecar of a score table: ``<path>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".meta.json")


def framing_from_key(prompt_key: str) -> str:
    """``positive`` for keys starting with best/greatest/good, else ``negative``."""
    return "positive" if prompt_key.lower().startswith(POSITIVE_KEY_PREFIXES) else "negative"


def family_from_model_id(model_id: str) -> str:
    """The paper's rule: ``Gemma`` when the id contains "gemma" (any case), else ``Llama``."""
    return "Gemma" if "gemma" in model_id.lower() else "Llama"


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
    """Write a score table to Parquet (or CSV when ``path`` ends in ``.csv``) plus its sidecar.

    ``provenance`` must be JSON-serialisable; it goes into the Parquet metadata and into
    ``<path>.meta.json``. Returns the path written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table_df = normalise_score_table(df)
    prov = dict(provenance or {})
    prov_json = json.dumps(prov, sort_keys=True, default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        table_df.to_csv(path, index=False)
    else:
        table = pa.Table.from_pandas(table_df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[PROVENANCE_KEY] = prov_json.encode()
        pq.write_table(table.replace_schema_metadata(meta), path)
    sidecar_path(path).write_text(json.dumps(prov, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_score_table(path: str | Path) -> pd.DataFrame:
    """Read a score table (Parquet, or CSV by suffix) and check it against the schema."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"score table not found: {path}")
    if path.suffix.lower() == ".csv":
        df = pd.read_csv(
            path,
            dtype={c: str for c in _STRING_COLUMNS},
            keep_default_na=False,
            na_values={"token_id": [""], "score": [""]},
        )
    else:
        try:
            df = pd.read_parquet(path)
        except Exception as err:  # pyarrow raises several types for a non-Parquet file
            raise UserError(f"cannot read {path} as Parquet: {err}") from err
    return normalise_score_table(df)


def read_provenance(path: str | Path) -> dict[str, Any]:
    """Provenance of a score table: Parquet metadata if present, else the sidecar, else {}."""
    path = Path(path)
    if path.suffix.lower() != ".csv" and path.exists():
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        if PROVENANCE_KEY in meta:
            return json.loads(meta[PROVENANCE_KEY].decode())
    side = sidecar_path(path)
    if side.exists():
        return json.loads(side.read_text())
    return {}


def model_id_from_paper_file(path: str | Path) -> str:
    """Model id from a paper file name: the part after ``big2_rewards_`` / ``MFD20_rewards_``."""
    stem = Path(path).stem
    for prefix in PAPER_FILE_PREFIXES:
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix) :]
    raise UserError(
        f"cannot take a model id from {Path(path).name!r}: expected a name starting with "
        f"{' or '.join(PAPER_FILE_PREFIXES)}"
    )


def _default_prompt_texts() -> dict[str, str]:
    """Prompt texts from ``analyses.prompts.paper_prompts()`` when that module is available."""
    try:
        from analyses.prompts import paper_prompts
    except ImportError:
        return {}
    return {p.key: p.text for p in paper_prompts()}


_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")


def import_paper_scores(
    files: Iterable[str | Path],
    family_overrides: Mapping[str, str] | None = None,
    prompt_texts: Mapping[str, str] | None = None,
    kind: str = "rm",
) -> pd.DataFrame:
    """Convert the paper's wide score CSVs into one long score table.

    Each file has a ``response`` column then one column per prompt key; the model id is taken
    from the file name (see ``model_id_from_paper_file``). ``family_overrides`` maps model id ->
    family and wins over the "gemma" rule. ``prompt_texts`` maps key -> text (default: the
    paper's prompts when ``analyses.prompts`` is available; unknown keys get ""). All files must
    carry the same set of prompt keys, else ``UserError`` names the missing ones.

    Returns a frame with ``SCORE_COLUMNS`` and ``len(files) * n_responses * n_prompts`` rows.
    """
    files = [Path(f) for f in files]
    if not files:
        raise UserError("no score files given")
    overrides = dict(family_overrides or {})
    texts = dict(prompt_texts) if prompt_texts is not None else _default_prompt_texts()
    frames: list[pd.DataFrame] = []
    keysets: dict[str, set[str]] = {}
    for path in files:
        if not path.exists():
            raise UserError(f"score file not found: {path}")
        model = model_id_from_paper_file(path)
        wide = pd.read_csv(path)
        if "response" not in wide.columns:
            raise UserError(f"{path.name}: no 'response' column")
        keys = [c for c in wide.columns if c != "response"]
        if not keys:
            raise UserError(f"{path.name}: no prompt columns after 'response'")
        bad = [k for k in keys if not _KEY_RE.match(str(k))]
        if bad:
            raise UserError(f"{path.name}: column(s) {bad} do not look like prompt keys")
        if wide["response"].isna().any():
            raise UserError(
                f"{path.name}: empty response in row(s) {list(wide.index[wide['response'].isna()])}"
            )
        keysets[model] = set(keys)
        long = wide.melt(id_vars="response", var_name="prompt_key", value_name="score")
        if long["score"].isna().any():
            n = int(long["score"].isna().sum())
            raise UserError(f"{path.name}: {n} missing score(s)")
        long["model"] = model
        long["family"] = overrides.get(model, family_from_model_id(model))
        frames.append(long)
    unknown = sorted(set(overrides) - set(keysets))
    if unknown:
        raise UserError(f"--family names model(s) not among the files: {', '.join(unknown)}")
    all_keys = set().union(*keysets.values())
    for model, keys in keysets.items():
        if keys != all_keys:
            raise UserError(
                f"score file for {model} is missing prompt(s): {', '.join(sorted(all_keys - keys))}"
            )
    out = pd.concat(frames, ignore_index=True)
    out["kind"] = kind
    out["framing"] = out["prompt_key"].map(framing_from_key)
    out["prompt"] = out["prompt_key"].map(lambda k: texts.get(k, ""))
    out["token_id"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return normalise_score_table(out)

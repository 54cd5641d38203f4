"""The paper's training-dynamics data formats (Fig 4, Fig 5, A5, A6) and its token handling.

- Per-checkpoint exhaustive scores (the released ``greatest_ever_one_across_checkpoints_*.parquet``;
  CSV too): one row per vocabulary token, ``token_decoded`` plus one column per checkpoint
  ``step-N``. ``read_checkpoint_scores`` makes it long: ``run, family, checkpoint, response,
  score`` (plus ``prompt_key`` and ``framing`` of the one prompt the sweep answered). The
  checkpoint is an axis of its own, never a prompt.
- Aggregated rank results (``rank_results_*.csv``): the authors' Fig 4 numbers, ``model_id,
  Category, checkpoint, base_model, sum_value`` after an unnamed index column (later files add
  ``data_size, data_source, method, prompt``). ``read_rank_results`` gives ``run, family,
  category, checkpoint, median_rank, file`` and drops exact duplicate rows (one released file
  repeats its rows), counting them.
- A run manifest: per rank-results file, the preference-data source, its size (thousands of
  pairs) and the method. ``PAPER_MANIFEST`` is the six released files as the authors' script lists
  them (``GRM`` runs have one checkpoint, numbered 1); ``read_manifest`` reads a CSV or JSON.
- ``read_token_list``: a token list such as ``token_intersection.csv`` (column ``token_decoded``).
- ``paper_token_norm``: the paper's token handling: drop every character outside printable ASCII
  (tab, newline and carriage return survive until the trim), trim, lowercase.
- ``family_of_run``: the authors' rule: ``gem``/``Gem`` -> Gemma, ``lam``/``Lla`` -> Llama,
  ``qwe``/``Qwe`` -> Qwen.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from analyses.inputs.prompts import framing_of_key
from interp.errors import UserError

STEP = re.compile(r"^step-(\d+)$")
_NON_ASCII = re.compile(r"[^\x20-\x7E\t\n\r]")


def paper_token_norm(token) -> str:
    """The paper's token handling (see module docstring); missing tokens become ``""``."""
    if not isinstance(token, str):
        return ""
    return _NON_ASCII.sub("", token).strip().lower()


def family_of_run(run_id: str, given: str | None = None) -> str:
    """Family of a training run from its id (the authors' rule), else ``given``, else unknown."""
    for marks, family in ((("gem", "Gem"), "Gemma"), (("lam", "Lla"), "Llama"),
                          (("qwe", "Qwe"), "Qwen")):  # fmt: skip
        if any(m in run_id for m in marks):
            return family
    return given if isinstance(given, str) and given else "unknown"


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


def read_checkpoint_scores(
    path: str | Path, run: str | None = None, family: str | None = None,
    prompt_key: str = "greatest_ever_one",
) -> pd.DataFrame:  # fmt: skip
    """Long table of a per-checkpoint exhaustive score file (see module docstring)."""
    path = Path(path)
    wide = _read_table(path)
    if "token_decoded" not in wide.columns:
        raise UserError(f"{path.name}: no token_decoded column")
    steps = {c: int(STEP.match(str(c)).group(1)) for c in wide.columns if STEP.match(str(c))}
    if not steps:
        raise UserError(f"{path.name}: no checkpoint column (step-N)")
    long = wide[["token_decoded", *steps]].melt(
        id_vars="token_decoded", var_name="step", value_name="score"
    )
    run = run or path.stem
    long = long.rename(columns={"token_decoded": "response"})
    long["response"] = long["response"].astype(object).where(long["response"].notna(), "")
    long.insert(0, "checkpoint", long.pop("step").map(steps).astype(int))
    long.insert(0, "family", family or family_of_run(run))
    long.insert(0, "run", run)
    long["prompt_key"] = prompt_key
    long["framing"] = framing_of_key(prompt_key)
    return long


def read_rank_results(path: str | Path) -> tuple[pd.DataFrame, int]:
    """``(table, n duplicate rows dropped)`` of an aggregated ``rank_results_*.csv``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    raw = pd.read_csv(path)  # default NA handling: base_model "NA" (Qwen) is missing
    need = {"model_id", "Category", "checkpoint", "sum_value"}
    if not need <= set(raw.columns):
        raise UserError(f"{path.name}: needs columns {', '.join(sorted(need))}")
    raw = raw.drop(
        columns=[c for c in raw.columns if c in ("", "X") or str(c).startswith("Unnamed")]
    )
    n = len(raw)
    raw = raw.drop_duplicates()
    base = raw["base_model"] if "base_model" in raw else pd.Series([None] * len(raw), raw.index)
    out = pd.DataFrame({
        "run": raw["model_id"].astype(str),
        "family": [family_of_run(r, b) for r, b in zip(raw["model_id"].astype(str), base)],
        "category": raw["Category"].astype(str),
        "checkpoint": raw["checkpoint"].astype(int),
        "median_rank": raw["sum_value"].astype(float),
        "file": path.name,
    })  # fmt: skip
    return out.reset_index(drop=True), n - len(raw)


@dataclass(frozen=True)
class RunInfo:
    """What a training run was: its preference data (source, thousands of pairs) and method."""

    file: str
    data_source: str
    data_size: float
    method: str


PAPER_MANIFEST: tuple[RunInfo, ...] = (
    RunInfo("rank_results_uf_13.csv", "uf", 13, "BT"),
    RunInfo("rank_results_uf_27.csv", "uf", 27, "BT"),
    RunInfo("rank_results_uf_54.csv", "uf", 53, "BT"),
    RunInfo("rank_results_uf_100.csv", "uf", 106, "BT"),
    RunInfo("rank_results_sky_80k.csv", "skywork", 77, "BT"),
    RunInfo("rank_results_grm_80k.csv", "uf+skywork", 550, "GRM"),
)


def read_manifest(spec: str | Path | None) -> tuple[RunInfo, ...]:
    """``paper`` (or None): ``PAPER_MANIFEST``; else a CSV or JSON list with columns ``file,
    data_source, data_size, method``."""
    if spec in (None, "", "paper"):
        return PAPER_MANIFEST
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"manifest not found: {path} (or use 'paper')")
    rows = (
        json.loads(path.read_text())
        if path.suffix == ".json"
        else pd.read_csv(path).to_dict("records")
    )
    try:
        return tuple(RunInfo(str(r["file"]), str(r["data_source"]), float(r["data_size"]),
                             str(r["method"])) for r in rows)  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"manifest {path.name}: each run needs file, data_source, data_size, "
                        f"method ({err})") from None  # fmt: skip


def manifest_records(manifest: tuple[RunInfo, ...]) -> list[dict]:
    return [asdict(r) for r in manifest]


def read_token_list(path: str | Path) -> frozenset[str]:
    """The tokens of a token list (column ``token_decoded``; empty strings kept out)."""
    table = _read_table(Path(path))
    if "token_decoded" not in table.columns:
        raise UserError(f"{Path(path).name}: no token_decoded column")
    return frozenset(t for t in table["token_decoded"].dropna().astype(str) if t)

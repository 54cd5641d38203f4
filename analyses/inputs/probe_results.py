"""Probe results of other runs, read back for figures: ``train-probes`` and ``compare-probes`` tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interp.errors import UserError
from interp.files import read_table


def _table(path: Path, default_name: str) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    df = read_table(path, "probe results", na_columns=())
    for col in df.columns:  # text tables come back as strings; the curves are numbers
        if df[col].dtype != object and not isinstance(df[col].dtype, pd.StringDtype):
            continue
        converted = pd.to_numeric(df[col], errors="coerce")
        if converted.notna().all():
            df[col] = converted
    return df


def _one_curve(df: pd.DataFrame) -> pd.DataFrame:
    """The first site kind's rows, and the logistic method's when several methods are present."""
    if "kind" in df:
        df = df[df["kind"] == df["kind"].iloc[0]]
    if "method" in df and df["method"].nunique() > 1:
        keep = "logistic" if "logistic" in set(df["method"]) else df["method"].iloc[0]
        df = df[df["method"] == keep]
    return df


def read_probe_results(probes: Path | None, compare: Path | None = None) -> pd.DataFrame | None:
    """Per-layer probe curves for the layerwise figure, from ``train-probes`` output
    (``probes.parquet``: accuracy with ``accuracy_low/high``; the first site kind and the
    logistic method are kept) and/or ``compare-probes`` output (``compare.parquet``: direction
    ``cosine`` between the two models and ``head_cosine_*`` with the RM's score head). A folder
    or a table file (Parquet/CSV with a ``layer`` column) is accepted for each."""
    frames = []
    if probes is not None:
        df = _table(probes, "probes.parquet")
        if "layer" not in df or "accuracy" not in df:
            raise UserError(f"--probes {probes}: needs 'layer' and 'accuracy' columns")
        df = _one_curve(df).rename(columns={"accuracy_low": "ci_low", "accuracy_high": "ci_high"})
        frames.append(df[[c for c in ("layer", "accuracy", "ci_low", "ci_high") if c in df]])
    if compare is not None:
        df = _table(compare, "compare.parquet")
        if "layer" not in df:
            raise UserError(f"--probe-compare {compare}: needs a 'layer' column")
        df = _one_curve(df)
        cols = [c for c in df.columns if c == "cosine" or c.startswith("head_cosine")]
        frames.append(df[["layer", *cols]])
    if not frames:
        return None
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on="layer", how="outer")
    return out.sort_values("layer").reset_index(drop=True)

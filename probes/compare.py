"""Compare the probes of two models of the same architecture (e.g. a base model and its RM).

Per (site, layer, method) present in both probe directories:

- ``cosine``: cosine similarity of the two unit directions (both in the residual basis; a shared
  basis is what "same architecture, fine-tuned from the other" buys).
- ``transfer_a_on_b`` / ``transfer_b_on_a``: accuracy and AUROC of one model's final probe applied
  unchanged to the other model's activations (the other store's selected items and labels).
- ``head_cosine_a`` / ``head_cosine_b``: for an RM, cosine between the direction and the score
  head's *effective* direction ``weight * final_norm_gain`` (see ``interp.models.readout``), plus
  ``head_raw_cosine_*`` with the raw head weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from activations.store import ActivationStore
from interp.errors import UserError
from probes.io import ProbeDir
from probes.layerwise import ProbeSettings, select_items
from probes.metrics import auroc


@dataclass(frozen=True)
class Comparison:
    """``table``: one row per (site, layer, method); ``notes``: what could not be computed."""

    a: str
    b: str
    table: pd.DataFrame
    notes: tuple[str, ...]

    def summary(self) -> dict:
        out: dict = {"a": self.a, "b": self.b, "notes": list(self.notes), "per_method": []}
        for (kind, method), part in self.table.groupby(["kind", "method"], sort=False):
            entry = {
                "kind": kind,
                "method": method,
                "mean_cosine": float(part["cosine"].mean()),
                "max_cosine_layer": int(part.loc[part["cosine"].idxmax(), "layer"]),
            }
            for col in ("transfer_a_on_b_auroc", "head_cosine_a", "head_cosine_b"):
                if col in part and part[col].notna().any():
                    best = part.loc[part[col].abs().idxmax()]
                    entry[f"best_{col}_layer"] = int(best["layer"])
                    entry[f"best_{col}"] = float(best[col])
            out["per_method"].append(entry)
        return out


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0 or nv == 0:
        return float("nan")
    return float(np.dot(u, v) / (nu * nv))


def _settings(probe_dir: ProbeDir) -> ProbeSettings:
    raw = dict(probe_dir.summary["settings"])
    raw["classes"] = tuple(raw["classes"])
    raw["methods"] = tuple(raw["methods"])
    return ProbeSettings(**raw)


def check_compatible(a: ProbeDir, b: ProbeDir) -> None:
    """Refuse pairs whose activations do not share a basis, naming what differs."""
    ma, mb = a.summary.get("model", {}), b.summary.get("model", {})
    for key, label in (("d_model", "width (d_model)"), ("n_layers", "layer count")):
        if ma.get(key) != mb.get(key):
            raise UserError(
                f"cannot compare: {label} differs ({a.path}: {ma.get(key)}, {b.path}: {mb.get(key)})"
            )
    if ma.get("family") != mb.get("family"):
        raise UserError(
            f"cannot compare: architecture family differs ({ma.get('family')} vs {mb.get('family')})"
        )
    if set(a.classes) != set(b.classes):
        raise UserError(f"cannot compare: classes differ ({a.classes} vs {b.classes})")
    if a.classes != b.classes:
        raise UserError(
            f"cannot compare: class order differs ({a.classes} vs {b.classes}), so directions "
            "point opposite ways; retrain one with the same --classes order"
        )


def _store_data(probe_dir: ProbeDir, override: str | Path | None):
    path = Path(override) if override else Path(probe_dir.acts)
    if not path.is_file():
        return None, f"transfer onto {probe_dir.path} skipped: activations {path} not found"
    store = ActivationStore(path)
    return (store, select_items(store, _settings(probe_dir))), None


def _transfer(probe_dir: ProbeDir, site: str, method: str, target) -> tuple[float, float]:
    store, data = target
    X = store.load(site, data.rows)
    scores = probe_dir.probe(site, method).decision(X)
    accuracy = float(((scores > 0).astype(int) == data.y).mean())
    return accuracy, auroc(scores, data.y)


def compare_probe_dirs(
    dir_a: str | Path,
    dir_b: str | Path,
    acts_a: str | Path | None = None,
    acts_b: str | Path | None = None,
) -> Comparison:
    """Cosines, transfer and score-head alignment of two probe directories."""
    a, b = ProbeDir(dir_a), ProbeDir(dir_b)
    check_compatible(a, b)
    keys = (
        a.table[["site", "kind", "layer", "method"]]
        .merge(b.table[["site", "kind", "layer", "method"]])
        .drop_duplicates()
    )
    if keys.empty:
        raise UserError(f"{a.path} and {b.path} share no (site, method) to compare")
    notes: list[str] = []
    target_b, note_b = _store_data(b, acts_b)
    target_a, note_a = _store_data(a, acts_a)
    notes += [n for n in (note_b, note_a) if n]
    heads = {"a": a.score_head(), "b": b.score_head()}
    for side, probe_dir in (("a", a), ("b", b)):
        if (
            heads[side] is not None
            and probe_dir.summary["model"].get("random_head_seed") is not None
        ):
            heads[side] = None
            notes.append(
                f"{probe_dir.path}: the score head is a seeded random head; no head cosine"
            )
    sa, sb = a.summary.get("store_settings", {}), b.summary.get("store_settings", {})
    if sa.get("items_digest") != sb.get("items_digest"):
        notes.append(
            "the two stores hold different token sequences (templates "
            f"{sa.get('template')} / {sb.get('template')}); for identical inputs cache the base "
            "model with --as rm --random-head 0, or compare --positions response-last stores"
        )
    rows = []
    try:
        for site, kind, layer, method in keys.itertuples(index=False):
            da, db = a.direction(site, method), b.direction(site, method)
            row = {"site": site, "kind": kind, "layer": int(layer), "method": method}
            row["cosine"] = cosine(da, db)
            row["auroc_a"] = float(
                a.table.query("site == @site and method == @method")["auroc"].iloc[0]
            )
            row["auroc_b"] = float(
                b.table.query("site == @site and method == @method")["auroc"].iloc[0]
            )
            if target_b is not None:
                acc, auc = _transfer(a, site, method, target_b)
                row["transfer_a_on_b_accuracy"], row["transfer_a_on_b_auroc"] = acc, auc
            if target_a is not None:
                acc, auc = _transfer(b, site, method, target_a)
                row["transfer_b_on_a_accuracy"], row["transfer_b_on_a_auroc"] = acc, auc
            for side, direction in (("a", da), ("b", db)):
                head = heads[side]
                if head is not None:
                    row[f"head_cosine_{side}"] = cosine(direction, head["effective"])
                    row[f"head_raw_cosine_{side}"] = cosine(direction, head["weight"])
            rows.append(row)
    finally:
        for target in (target_a, target_b):
            if target is not None:
                target[0].close()
    if heads["a"] is None and heads["b"] is None:
        notes.append("neither model has a score head (both LMs): no head cosines")
    table = pd.DataFrame(rows).sort_values(["kind", "method", "layer"]).reset_index(drop=True)
    return Comparison(str(a.path), str(b.path), table, tuple(notes))

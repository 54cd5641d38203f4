"""How well the attribution screen (linear estimates of patches) agrees with causal patching.

Per patch, the screen's estimated gap change is the category gap (``first - second``, word means
over prompts, ``analyses.stats.contrast``) of the per-item estimates; dividing by the sweep's
``source_gap - clean_gap`` gives the estimated normalised effect. Per site kind:

- ``spearman``: Spearman's rank correlation between the estimated and the causal gap change over
  that site's patches (layers x positions), with a 95 % CI from Fisher's z with the standard error
  ``sqrt(1.06 / (n - 3))`` (Fieller, Hartley and Pearson 1957); n = patches of the site.
- ``top``: the screen's top patch (largest |estimated gap change|) and whether it lies in the
  causal top set, the patches whose |causal gap change| is within ``TOP_TOLERANCE`` (1 %) of the
  largest (patches at and above a changed block often tie to rounding).

Causal patching is the reported result; these numbers say whether the screen would have chosen
the right place to look.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analyses.stats.contrast import CategoryWords, word_means

TOP_TOLERANCE = 0.01
"""A causal patch is 'top' when its |gap change| is at least (1 - TOP_TOLERANCE) x the largest."""


def screen_table(
    estimate: np.ndarray,
    patches,
    responses: list[str],
    design: CategoryWords,
    effects: pd.DataFrame,
) -> pd.DataFrame:
    """One row per patch: the screen's estimated gap change and normalised effect beside the
    causal ``delta_gap`` and ``normalised_effect`` of ``effects`` (the sweep's effects table).
    ``estimate`` is ``[n_patches, N]`` in the order of ``responses`` (the items table)."""
    a = word_means(estimate, responses, design.first)
    b = word_means(estimate, responses, design.second)
    with np.errstate(invalid="ignore"):
        est_gap = np.nanmean(a, axis=-1) - np.nanmean(b, axis=-1)
    rows = []
    for i, spec in enumerate(patches):
        rows.append(
            {
                "site": spec.site,
                "layer": spec.layer,
                "position": spec.position_label,
                "estimated_delta_gap": float(est_gap[i]),
            }
        )
    table = pd.DataFrame(rows)
    keep = ["site", "layer", "position", "delta_gap", "normalised_effect", "clean_gap"]
    keep += ["source_gap"]
    causal = effects[[c for c in keep if c in effects]]
    table = table.merge(causal, on=["site", "layer", "position"], how="left")
    denom = table.get("source_gap", np.nan) - table.get("clean_gap", np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["estimated_normalised_effect"] = np.where(
            np.abs(denom) > 0, table["estimated_delta_gap"] / denom, np.nan
        )
    return table.rename(
        columns={"delta_gap": "causal_delta_gap", "normalised_effect": "causal_normalised_effect"}
    ).drop(columns=[c for c in ("clean_gap", "source_gap") if c in table])


def spearman_with_ci(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> dict:
    """Spearman's rho of ``x`` and ``y`` (pairs with a NaN dropped) with a Fisher-z CI."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    n = int(len(x))
    out = {"rho": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": n}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    rho = float(stats.spearmanr(x, y).statistic)
    out["rho"] = rho
    if n > 3 and abs(rho) < 1:
        z, se = math.atanh(rho), math.sqrt(1.06 / (n - 3))
        q = stats.norm.ppf(0.5 + level / 2)
        out["ci_low"], out["ci_high"] = math.tanh(z - q * se), math.tanh(z + q * se)
    elif abs(rho) == 1:
        out["ci_low"] = out["ci_high"] = rho
    return out


def screen_agreement(table: pd.DataFrame) -> dict:
    """Per site kind: Spearman rho with CI, the screen's top patch, the causal top set, and
    whether the screen's top patch is in it (see the module docstring)."""
    out = {}
    for site, g in table.groupby("site", sort=False):
        g = g.dropna(subset=["estimated_delta_gap", "causal_delta_gap"])
        entry = spearman_with_ci(g["estimated_delta_gap"], g["causal_delta_gap"])
        entry = {"spearman": entry}
        if g.empty:
            out[site] = entry
            continue
        est, causal = g["estimated_delta_gap"].abs(), g["causal_delta_gap"].abs()
        top = g.loc[est.idxmax()]
        cmax = float(causal.max())
        top_set = g[causal >= (1 - TOP_TOLERANCE) * cmax] if cmax > 0 else g.iloc[0:0]
        entry.update(
            screen_top_layer=int(top["layer"]),
            screen_top_position=str(top["position"]),
            screen_top_estimate=float(top["estimated_delta_gap"]),
            causal_top_layers=sorted(int(v) for v in top_set["layer"].unique()),
            causal_top_first_layer=int(top_set["layer"].min()) if len(top_set) else None,
            top_layer_match=bool(
                len(top_set)
                and (
                    (top_set["layer"] == top["layer"]) & (top_set["position"] == top["position"])
                ).any()
            ),
            largest_causal_delta_gap=cmax,
        )
        out[site] = entry
    return out

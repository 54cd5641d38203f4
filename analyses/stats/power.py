"""Power of the model-level family test, by simulation from the fitted variance components.

Per panel, two variance components of the (model, prompt) median ranks are estimated:
``sigma_within`` (prompts within a model, pooled) and ``sigma_between`` (models within a family:
the pooled variance of the model means within each family minus ``sigma_within^2 / n_prompts``,
truncated at 0; it needs a family with two models). When no family has two models it cannot be
estimated (nor can the mixed model's random-intercept variance, which is then confounded with the
family effect): 0 is used, the optimistic bound, with a note.

A model's panel mean is then ``N(delta * [family b], sigma_between^2 + sigma_within^2 /
n_prompts)``; the model-level test (exact permutation over assignments of models to families,
``twosample.split_test``) is run on ``n_sims`` simulated data sets per effect size, at the
Bonferroni level ``alpha / n_panels``. The minimum detectable effect (MDE) is the smallest
``delta`` (median-rank units) with power >= ``target``; ``None`` when no effect reaches it (with
one model per family no model-level test can reject: p is always 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.stats.twosample import split_test

EFFECT_GRID = np.linspace(0.0, 8.0, 33)  # in units of the sd of a model's panel mean


def variance_components(sub: pd.DataFrame) -> tuple[float, float, int]:
    """``(sigma_within, sigma_between, n_prompts)`` of one panel (``sigma_between`` NaN when no
    family has two models)."""
    within = sub.groupby("model")["median_rank"].var(ddof=1)
    n_prompts = int(sub.groupby("model")["prompt_key"].nunique().min())
    s_w = float(np.sqrt(within.mean()))
    means = sub.groupby(["family", "model"])["median_rank"].mean()
    fam_var = means.groupby(level="family").var(ddof=1).dropna()
    sizes = means.groupby(level="family").size().reindex(fam_var.index)
    if fam_var.empty:
        return s_w, math.nan, n_prompts
    pooled = float((fam_var * (sizes - 1)).sum() / (sizes - 1).sum())
    return s_w, math.sqrt(max(pooled - s_w**2 / n_prompts, 0.0)), n_prompts


def power_curve(
    n_a: int, n_b: int, alpha: float, n_sims: int = 400, seed: int = 0, grid=EFFECT_GRID
) -> np.ndarray:
    """Power of the model-level test at each effect in ``grid`` (units: sd of a model mean).

    Designs with more than 5,000 assignments use 1,999 random ones (Monte-Carlo p-values)."""
    is_b = np.arange(n_a + n_b) >= n_a
    noise = np.random.default_rng([seed, 11]).standard_normal((n_sims, n_a + n_b))
    studentise = min(n_a, n_b) >= 2
    out = np.empty(len(grid))
    for k, delta in enumerate(grid):  # the same assignments (seed) at every effect size
        _, p, _, _ = split_test(noise + delta * is_b, is_b, 1999, seed, studentise, 5000)
        out[k] = np.mean(p <= alpha)
    return out


@dataclass(frozen=True)
class PowerRow:
    framing: str
    category: str
    design: str
    n_models_a: int
    n_models_b: int
    n_prompts: int
    sigma_within: float
    sigma_between: float
    sigma_between_source: str
    sd_model_mean: float
    alpha_per_test: float
    target_power: float
    mde: float | None
    observed_model_diff: float
    power_at_observed: float
    n_sims: int
    test: str = "exact permutation over assignments of models to families"
    note: str = ""


def _mde(curve: np.ndarray, scale: float, target: float) -> float | None:
    hit = np.flatnonzero(curve >= target)
    if len(hit) == 0:
        return None
    k = hit[0]
    if k == 0:
        return 0.0
    x0, x1, y0, y1 = EFFECT_GRID[k - 1], EFFECT_GRID[k], curve[k - 1], curve[k]
    return float(scale * (x0 + (target - y0) * (x1 - x0) / max(y1 - y0, 1e-12)))


def power_table(
    med: pd.DataFrame,
    families: tuple[str, str],
    panels: list[tuple[str, str]],
    planned_per_family: int = 5,
    alpha: float = 0.05,
    target: float = 0.8,
    n_sims: int = 400,
    seed: int = 0,
) -> tuple[PowerRow, ...]:
    """Per panel: the MDE of the observed design and of a planned design with
    ``planned_per_family`` models in each family (same prompts, same variance components)."""
    fa, fb = families
    level = alpha / max(len(panels), 1)
    curves: dict[tuple[int, int], np.ndarray] = {}
    rows = []
    for framing, category in panels:
        sub = med[(med["framing"] == framing) & (med["category"] == category)]
        s_w, s_b, n_p = variance_components(sub)
        source = "models within a family"
        if not math.isfinite(s_b):
            s_b, source = 0.0, "not estimable (no family has two models): assumed 0, optimistic"
        scale = math.sqrt(s_b**2 + s_w**2 / max(n_p, 1))
        means = sub.groupby(["model", "family"], observed=True)["median_rank"].mean().reset_index()
        n_a = int((means["family"] == fa).sum())
        n_b = int((means["family"] == fb).sum())
        diff = float(means.loc[means["family"] == fb, "median_rank"].mean()
                     - means.loc[means["family"] == fa, "median_rank"].mean())  # fmt: skip
        for design, (da, db) in (("observed", (n_a, n_b)),
                                 (f"planned: {planned_per_family} per family",
                                  (planned_per_family, planned_per_family))):  # fmt: skip
            if (da, db) not in curves:
                curves[(da, db)] = power_curve(da, db, level, n_sims, seed)
            curve = curves[(da, db)]
            mde = _mde(curve, scale, target)
            at_obs = (
                float(np.interp(abs(diff) / scale, EFFECT_GRID, curve)) if scale > 0 else math.nan
            )
            note = ""
            if mde is None:
                note = (
                    "no effect reaches the target power: with one model per family the test "
                    "cannot reject (p = 1 always)" if min(da, db) == 1 and da + db == 2
                    else "no effect on the grid reaches the target power"
                )  # fmt: skip
            rows.append(PowerRow(framing, category, design, da, db, n_p, s_w, s_b, source, scale,
                                 level, target, mde, diff, at_obs, n_sims, note=note))  # fmt: skip
    return tuple(rows)

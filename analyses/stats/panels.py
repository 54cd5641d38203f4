"""Stage 1's family comparison in each category x framing panel: the paper's view and the models'.

Paper's view (unit: (model, prompt) median ranks, as in the authors' R script): Welch's t between
the two families with its parametric p (MKinfer's ``perm.t.test(...)$p.value`` is exactly this
Welch p; its permutation p is ``$perm.p.value``), Bonferroni over the panels, and the paper's
stars from that corrected p. Beside it, the permutation Welch test on the same units with its
Monte-Carlo standard error (enough draws that its floor after Bonferroni lies below 0.001, or an
exact enumeration), Cohen's d and percentile bootstrap CIs of the difference and of d.

Models' view (unit: the model): the exact permutation test over assignments of models to
families and a cluster-bootstrap CI of the family difference of model means
(``analyses.stats.model_level``), Bonferroni over the panels too.

Differences are ``family_b - family_a`` (Llama - Gemma by default); lower rank = preferred.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.stats.contrast import compare
from analyses.stats.corrections import bonferroni, stars
from analyses.stats.model_level import assignment_test, cluster_bootstrap
from analyses.stats.twosample import draws_for_floor, mc_standard_error, parametric_welch_p

PAPER_TEST = "Welch t, parametric p (the paper's: MKinfer perm.t.test $p.value)"
PAPER_UNIT = "(model, prompt) median rank"
MODEL_UNIT = "model (mean median rank over the panel's prompts)"


@dataclass(frozen=True)
class PanelTest:
    """Both views of one panel (see module docstring). ``t``, ``d``, CIs: family_b - family_a.

    ``p``/``p_bonferroni``/``stars``: the paper's (parametric Welch, Bonferroni over panels);
    ``p_permutation*``: the permutation Welch test on the same units; ``p_model_level*``: the
    exact test over assignments of models to families; ``model_diff*``: the family difference of
    model means with its cluster-bootstrap CI.
    """

    framing: str
    category: str
    family_a: str
    family_b: str
    test: str
    unit: str
    n: int
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    d: float
    d_ci_low: float
    d_ci_high: float
    t: float
    df: float
    p: float
    p_bonferroni: float
    stars: str
    correction: str
    family_of_tests: str
    p_permutation: float
    p_permutation_se: float
    p_permutation_bonferroni: float
    p_permutation_floor_bonferroni: float
    n_permutations: int
    exact: bool
    model_level_test: str
    model_level_unit: str
    n_models_a: int
    n_models_b: int
    model_diff: float
    model_diff_ci_low: float
    model_diff_ci_high: float
    model_level_statistic: float
    p_model_level: float
    p_model_level_se: float
    p_model_level_bonferroni: float
    n_assignments: int
    model_level_note: str


def panel_order(med: pd.DataFrame, categories: Sequence[str]) -> list[tuple[str, str]]:
    """(framing, category) panels: framing positive first, then the categories' order."""
    fr = {"positive": 0, "negative": 1, "none": 2}
    cat = {c: i for i, c in enumerate(categories)}
    pairs = med[["framing", "category"]].drop_duplicates().itertuples(index=False)
    return sorted(((f, c) for f, c in pairs), key=lambda fc: (fr.get(fc[0], 9), cat.get(fc[1], 99)))


def model_means(sub: pd.DataFrame, family_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Per model: mean median rank over the panel's prompts, and whether it is of family b."""
    per_model = sub.groupby(["model", "family"], observed=True)["median_rank"].mean().reset_index()
    return per_model["median_rank"].to_numpy(float), (per_model["family"] == family_b).to_numpy()


def panel_tests(
    med: pd.DataFrame,
    families: tuple[str, str],
    categories: Sequence[str],
    n_permutations: int | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[PanelTest, ...]:
    """Both views of every panel, each panel with its own generator ``(seed, panel index)``.

    ``n_permutations`` None: ``draws_for_floor(n_panels)``, so the Bonferroni-corrected floor of
    the permutation p is below 0.001.
    """
    fa, fb = families
    panels = panel_order(med, categories)
    m = len(panels)
    draws = n_permutations or draws_for_floor(m)
    family = f"{m} panels (framing x category)"
    raw = []
    for i, (framing, category) in enumerate(panels):
        sub = med[(med["framing"] == framing) & (med["category"] == category)]
        a = sub.loc[sub["family"] == fa, "median_rank"].to_numpy(float)
        b = sub.loc[sub["family"] == fb, "median_rank"].to_numpy(float)
        rng = np.random.default_rng([seed, i])
        c = compare(
            b, a, first=fb, second=fa, label=f"{framing}/{category}", value="median_rank",
            unit=PAPER_UNIT, n_permutations=draws, n_bootstrap=n_bootstrap, rng=rng,
        )  # fmt: skip
        values, is_b = model_means(sub, fb)
        ml = assignment_test(values, is_b, rng=rng)
        lo, hi = cluster_bootstrap(values, is_b, n_bootstrap, rng=rng)
        both = is_b.any() and (~is_b).any()
        diff = float(values[is_b].mean() - values[~is_b].mean()) if both else math.nan
        raw.append((framing, category, c, ml, diff, lo, hi))
    p_paper = bonferroni([_welch_p(r[2]) for r in raw])
    p_perm = bonferroni([r[2].test.p for r in raw])
    p_model = bonferroni([r[3].p for r in raw])
    out = []
    for (framing, category, c, ml, diff, lo, hi), pp, pq, pm in zip(
        raw, p_paper, p_perm, p_model, strict=True
    ):
        p_par = _welch_p(c)
        floor = 0.0 if c.exact else min(1.0, m / (1 + c.n_permutations))
        se = 0.0 if c.exact else mc_standard_error(c.test.p, c.n_permutations)
        out.append(
            PanelTest(
                framing=framing,
                category=category,
                family_a=fa,
                family_b=fb,
                test=PAPER_TEST,
                unit=PAPER_UNIT,
                n=c.n_first + c.n_second,
                n_a=c.n_second,
                n_b=c.n_first,
                mean_a=c.mean_second,
                mean_b=c.mean_first,
                diff=c.difference.value,
                ci_low=c.difference.low,
                ci_high=c.difference.high,
                d=c.d.value,
                d_ci_low=c.d.low,
                d_ci_high=c.d.high,
                t=c.test.statistic,
                df=c.test.df,
                p=p_par,
                p_bonferroni=float(pp),
                stars=stars(float(pp)),
                correction="Bonferroni",
                family_of_tests=family,
                p_permutation=c.test.p,
                p_permutation_se=se,
                p_permutation_bonferroni=float(pq),
                p_permutation_floor_bonferroni=floor,
                n_permutations=c.n_permutations,
                exact=c.exact,
                model_level_test=("exact" if ml.exact else "Monte-Carlo") + " permutation over "
                f"assignments of models to families ({ml.statistic_name})",
                model_level_unit=MODEL_UNIT,
                n_models_a=ml.n_a,
                n_models_b=ml.n_b,
                model_diff=diff,
                model_diff_ci_low=lo,
                model_diff_ci_high=hi,
                model_level_statistic=ml.statistic,
                p_model_level=ml.p,
                p_model_level_se=ml.p_se,
                p_model_level_bonferroni=float(pm),
                n_assignments=ml.n_assignments,
                model_level_note=ml.note,
            )  # fmt: skip
        )
    return tuple(out)


def _welch_p(c) -> float:
    """The parametric Welch p of a ``Contrast`` (kept off exact 0)."""
    return parametric_welch_p(c.test.statistic, c.test.df)

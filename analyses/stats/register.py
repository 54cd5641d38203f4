"""The register of every test a ``stats`` run reports: one flat row per test, the same columns.

Each row says what the test is (``section``, ``name``), its unit of analysis and how many units
(``unit``, ``n``), the effect size with its CI (``effect_name``, ``effect``, ``effect_ci_low``,
``effect_ci_high``), the statistic and df, ``p``, and the multiple-comparison ``correction`` with
the ``family`` of tests it ran over (``p_adjusted``). ``summary.json["tests"]`` and ``tests.csv``
hold it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

COLUMNS = ("section", "name", "unit", "n", "effect_name", "effect", "effect_ci_low",
           "effect_ci_high", "statistic", "df", "p", "p_adjusted", "correction", "family")  # fmt: skip


def row(section: str, name: str, unit: str, n, effect_name: str, effect: float,
        ci: tuple[float, float], statistic: float = math.nan, df: float = math.nan,
        p: float = math.nan, p_adjusted: float = math.nan, correction: str = "none",
        family: str = "") -> dict:  # fmt: skip
    """One register row (``p_adjusted`` defaults to ``p`` when nothing was corrected)."""
    if correction == "none" and not math.isfinite(p_adjusted):
        p_adjusted = p
    values = (section, name, unit, n, effect_name, effect, ci[0], ci[1], statistic, df, p,
              p_adjusted, correction, family)  # fmt: skip
    return dict(zip(COLUMNS, values, strict=True))


def stage1_rows(result, random_axis: Iterable = ()) -> list[dict]:
    """Rows for the panels (paper, permutation, model level), both mixed models, the
    random-axis control."""
    out = []
    for p in result.panels:
        label = f"{p.framing}/{p.category}: {p.family_b} - {p.family_a}"
        d = ("Cohen's d (pooled SD), percentile bootstrap CI", p.d, (p.d_ci_low, p.d_ci_high))
        out.append(row("panel, paper's view", f"{label}: {p.test}", p.unit, p.n, *d,
                       p.t, p.df, p.p, p.p_bonferroni, p.correction, p.family_of_tests))  # fmt: skip
        out.append(row("panel, paper's view", f"{label}: permutation Welch t "
                       f"({'exact' if p.exact else f'{p.n_permutations} draws'})", p.unit, p.n,
                       *d, p.t, p.df, p.p_permutation, p.p_permutation_bonferroni, p.correction,
                       p.family_of_tests))  # fmt: skip
        out.append(row("panel, model level", f"{label}: {p.model_level_test}",
                       p.model_level_unit, p.n_models_a + p.n_models_b,
                       "difference of model means (rank), cluster-bootstrap CI", p.model_diff,
                       (p.model_diff_ci_low, p.model_diff_ci_high), p.model_level_statistic,
                       math.nan, p.p_model_level, p.p_model_level_bonferroni, p.correction,
                       p.family_of_tests))  # fmt: skip
    for fit, section in ((result.mixed_model, "mixed model, random intercept"),
                         (result.random_slopes, "mixed model, random slopes")):  # fmt: skip
        if fit is None:
            continue
        unit = f"(model, prompt) median rank; {fit.n_groups} models; df: containment"
        for t in fit.terms:
            out.append(row(section, f"{t.r_term} ({fit.formula} + {fit.random})", unit,
                           fit.n_obs, "coefficient (median rank), t-based CI", t.coef,
                           (t.ci_low, t.ci_high), t.t, t.df, t.p))  # fmt: skip
    for r in random_axis:
        out.append(row("random-axis control", f"{r.framing}: {r.first} - {r.second} family x "
                       f"category effect vs {r.n_splits} random splits of its words", r.unit,
                       r.n_splits, f"family x category effect ({r.effect_unit})", r.effect,
                       (r.effect_ci_low, r.effect_ci_high), p=r.p_random_split))  # fmt: skip
    return out


def stage2_rows(result) -> list[dict]:
    """Rows for the ANOVA terms (partial eta squared) and the post-hoc tests (Cohen's d)."""
    out = []
    n = len(result.median_ranks)
    for a in result.anova:
        if a.term == "Residual":
            continue
        out.append(row("ANOVA (type II)", a.term, "(model, prompt, category) median rank", n,
                       "partial eta squared, noncentral-F CI", a.partial_eta_sq,
                       (a.eta_ci_low, a.eta_ci_high), a.F, a.df, a.p))  # fmt: skip
    for t in result.posthoc:
        out.append(row("post hoc", f"{t.contrast}: {t.level_b} - {t.level_a} in {t.cell}/"
                       f"{t.valence}: {t.test}", t.unit, t.n_a + t.n_b,
                       "Cohen's d (pooled SD), percentile bootstrap CI", t.d,
                       (t.d_ci_low, t.d_ci_high), t.t, t.df, t.p, t.p_bh, t.correction,
                       t.family_of_tests))  # fmt: skip
    return out

"""The paper's Stage 2 on LM log-probs: a three-way ANOVA and Welch post-hoc tests with BH.

Rank single-token lexicon words by log-prob per (model, prompt), take the median rank per
(prompt, category, model, valence), fit the type-II three-way ANOVA
``median_rank ~ category * valence * model`` (OLS), and run Welch post-hoc tests per cell with
Benjamini-Hochberg FDR: between models within each category x valence cell, and between
categories within each model x valence cell. Valence is the prompt's framing.

Effect sizes: partial eta squared with its noncentral-F 95 % CI for every ANOVA term
(``analyses.stats.effect_sizes``); Cohen's d and the mean difference with percentile bootstrap CIs
for every post-hoc test. ``word_match`` records how the words' log-probs were read (``exact``: a
word is kept only if one token decodes to exactly it, the paper's; ``variants``: best of its
case/whitespace variants).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analyses.inputs.lexicon import Lexicon
from analyses.stats.corrections import benjamini_hochberg, floor_p
from analyses.stats.effect_sizes import partial_eta_squared, partial_eta_squared_ci
from analyses.stats.ranking import categorised_scores, check_complete_design, median_ranks
from analyses.stats.stage1 import records
from analyses.stats.twosample import bootstrap_ci, cohens_d, parametric_welch_p, welch_t
from interp.errors import UserError


@dataclass(frozen=True)
class AnovaTerm:
    """One row of the type-II ANOVA table, with partial eta squared and its 95 % CI."""

    term: str
    sum_sq: float
    df: float
    F: float
    p: float
    partial_eta_sq: float = math.nan
    eta_ci_low: float = math.nan
    eta_ci_high: float = math.nan


@dataclass(frozen=True)
class PostHocTest:
    """Welch t-test on per-prompt median ranks within one cell, BH-adjusted within ``contrast``.

    ``contrast == "model"``: ``level_b`` vs ``level_a`` are models, within (category, valence);
    ``contrast == "category"``: they are categories, within (model, valence). ``t`` and ``d``
    are for level_b - level_a.
    """

    contrast: str
    cell: str
    valence: str
    level_a: str
    level_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    t: float
    df: float
    p: float
    p_bh: float
    d: float
    diff: float = math.nan
    diff_ci_low: float = math.nan
    diff_ci_high: float = math.nan
    d_ci_low: float = math.nan
    d_ci_high: float = math.nan
    test: str = "Welch t (parametric)"
    unit: str = "prompt (median rank)"
    correction: str = "Benjamini-Hochberg"
    family_of_tests: str = ""


@dataclass(frozen=True)
class Stage2Result:
    lexicon: str
    models: tuple[str, ...]
    anova: tuple[AnovaTerm, ...]
    posthoc: tuple[PostHocTest, ...]
    median_ranks: pd.DataFrame = field(repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)
    word_match: str = "as scored"

    def summary(self) -> dict[str, Any]:
        return {
            "stage": 2,
            "lexicon": self.lexicon,
            "word_match": self.word_match,
            "models": list(self.models),
            "anova": records(self.anova),
            "posthoc": records(self.posthoc),
            "provenance": self.provenance,
        }


def _posthoc(
    med: pd.DataFrame, contrast: str, cell_col: str, level_col: str, n_bootstrap: int, seed: int
) -> list[PostHocTest]:
    tests = []
    for i, ((cell, valence), g) in enumerate(med.groupby([cell_col, "framing"], sort=True)):
        levels = list(dict.fromkeys(g[level_col]))
        for j, (la, lb) in enumerate(itertools.combinations(levels, 2)):
            a = g.loc[g[level_col] == la, "median_rank"].to_numpy(float)
            b = g.loc[g[level_col] == lb, "median_rank"].to_numpy(float)
            t, df = welch_t(b, a)
            boot = bootstrap_ci(b, a, n_bootstrap, seed=np.random.default_rng([seed, i, j]))
            tests.append(
                PostHocTest(
                    contrast,
                    str(cell),
                    str(valence),
                    str(la),
                    str(lb),
                    len(a),
                    len(b),
                    float(a.mean()),
                    float(b.mean()),
                    t,
                    df,
                    parametric_welch_p(t, df),
                    math.nan,
                    cohens_d(b, a),
                    float(b.mean() - a.mean()),
                    boot.diff_low,
                    boot.diff_high,
                    boot.d_low,
                    boot.d_high,
                )  # fmt: skip
            )
    adj = benjamini_hochberg([t.p for t in tests])
    family = f"{len(tests)} {contrast} contrasts ({cell_col} x valence cells)"
    return [
        PostHocTest(**{**asdict(t), "p_bh": float(q), "family_of_tests": family})
        for t, q in zip(tests, adj, strict=True)
    ]


def stage2(
    scores: pd.DataFrame,
    lexicon: Lexicon,
    single_token_only: bool = True,
    shared_words_only: bool = True,
    provenance: dict[str, Any] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    word_match: str = "as scored",
) -> Stage2Result:
    """The paper's Stage-2 analysis of LM log-probs (see module docstring).

    ``scores``: a score table whose ``score`` is log p(response | prompt) (kind ``lm``). With
    ``single_token_only`` rows without a ``token_id`` (multi-token words) are dropped first.
    With ``shared_words_only`` only responses scored for every model are ranked, so that ranks
    of models with different vocabularies run over the same words and are comparable.
    Valence is the prompt's framing. Needs at least two models.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    if single_token_only:
        scores = scores[scores["token_id"].notna()]
        if scores.empty:
            raise UserError("no single-token responses (token_id) in the score table")
    if shared_words_only:
        per_model = [set(g) for _, g in scores.groupby("model")["response"]]
        shared = set.intersection(*per_model) if per_model else set()
        scores = scores[scores["response"].isin(shared)]
        if scores.empty:
            raise UserError("the models share no scored response: nothing to compare")
    ranked = categorised_scores(scores, lexicon)
    med = median_ranks(ranked)
    check_complete_design(med)
    models = tuple(sorted(med["model"].unique()))
    if len(models) < 2:
        raise UserError(f"Stage 2 compares models; the score table has one ({models[0]})")
    per_cell = med.groupby(["model", "framing", "category"])["prompt_key"].nunique()
    if per_cell.min() < 2:
        raise UserError(
            "Stage 2 needs at least two prompts per valence (framing) for every model: the "
            "ANOVA has no residual variance otherwise"
        )
    terms = [
        t for t, col in (("category", "category"), ("valence", "framing")) if med[col].nunique() > 1
    ]
    data = med.rename(columns={"framing": "valence"})
    formula = "median_rank ~ " + " * ".join(f"C({t})" for t in [*terms, "model"])
    fit = smf.ols(formula, data=data).fit()
    table = anova_lm(fit, typ=2)
    ss_res, df_res = float(table.loc["Residual", "sum_sq"]), float(table.loc["Residual", "df"])
    anova = []
    for idx, row in table.iterrows():
        term = AnovaTerm(
            term=str(idx).replace("C(", "").replace(")", ""),
            sum_sq=float(row["sum_sq"]),
            df=float(row["df"]),
            F=float(row["F"]),
            p=floor_p(float(row["PR(>F)"])),
        )
        if idx != "Residual":
            lo, hi = partial_eta_squared_ci(term.F, term.df, df_res)
            eta = partial_eta_squared(term.sum_sq, ss_res)
            term = AnovaTerm(**{**asdict(term), "partial_eta_sq": eta, "eta_ci_low": lo,
                                "eta_ci_high": hi})  # fmt: skip
        anova.append(term)
    posthoc = _posthoc(med, "model", "category", "model", n_bootstrap, seed) + _posthoc(
        med, "category", "model", "category", n_bootstrap, seed + 1
    )
    return Stage2Result(
        lexicon=lexicon.name,
        models=models,
        anova=tuple(anova),
        posthoc=tuple(posthoc),
        median_ranks=med,
        provenance=dict(provenance or {}),
        word_match=word_match,
    )

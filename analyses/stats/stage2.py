"""The paper's Stage 2 on LM log-probs: a three-way ANOVA and Welch post-hoc tests with BH.

Rank single-token lexicon words by log-prob per (model, prompt), take the median rank per
(prompt, category, model, valence), fit the type-II three-way ANOVA
``median_rank ~ category * valence * model`` (OLS), and run Welch post-hoc tests per cell with
Benjamini-Hochberg FDR: between models within each category x valence cell, and between
categories within each model x valence cell. Valence is the prompt's framing.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.stats.corrections import benjamini_hochberg
from analyses.stats.ranking import categorised_scores, check_complete_design, median_ranks
from analyses.stats.stage1 import records
from analyses.stats.twosample import cohens_d, welch_t
from interp.errors import UserError


@dataclass(frozen=True)
class AnovaTerm:
    """One row of the type-II ANOVA table."""

    term: str
    sum_sq: float
    df: float
    F: float
    p: float


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


@dataclass(frozen=True)
class Stage2Result:
    lexicon: str
    models: tuple[str, ...]
    anova: tuple[AnovaTerm, ...]
    posthoc: tuple[PostHocTest, ...]
    median_ranks: pd.DataFrame = field(repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "stage": 2,
            "lexicon": self.lexicon,
            "models": list(self.models),
            "anova": records(self.anova),
            "posthoc": records(self.posthoc),
            "provenance": self.provenance,
        }


def _posthoc(med: pd.DataFrame, contrast: str, cell_col: str, level_col: str) -> list[PostHocTest]:
    tests = []
    for (cell, valence), g in med.groupby([cell_col, "framing"], sort=True):
        levels = list(dict.fromkeys(g[level_col]))
        for la, lb in itertools.combinations(levels, 2):
            a = g.loc[g[level_col] == la, "median_rank"].to_numpy(float)
            b = g.loc[g[level_col] == lb, "median_rank"].to_numpy(float)
            t, df = welch_t(b, a)
            p = float(2 * sps.t.sf(abs(t), df)) if math.isfinite(t) else math.nan
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
                    p,
                    math.nan,
                    cohens_d(b, a),
                )
            )
    adj = benjamini_hochberg([t.p for t in tests])
    return [PostHocTest(**{**asdict(t), "p_bh": float(q)}) for t, q in zip(tests, adj, strict=True)]


def stage2(
    scores: pd.DataFrame,
    lexicon: Lexicon,
    single_token_only: bool = True,
    shared_words_only: bool = True,
    provenance: dict[str, Any] | None = None,
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
    anova = tuple(
        AnovaTerm(
            term=str(idx).replace("C(", "").replace(")", ""),
            sum_sq=float(row["sum_sq"]),
            df=float(row["df"]),
            F=float(row["F"]),
            p=float(row["PR(>F)"]),
        )
        for idx, row in table.iterrows()
    )
    posthoc = _posthoc(med, "model", "category", "model") + _posthoc(
        med, "category", "model", "category"
    )
    return Stage2Result(
        lexicon=lexicon.name,
        models=models,
        anova=anova,
        posthoc=tuple(posthoc),
        median_ranks=med,
        provenance=dict(provenance or {}),
    )

"""The paper's Stage 1 on reward-model scores: cells, the mixed model and the family panels.

Rank lexicon words within each (model, prompt), take the median rank of each category, then

(a) ``cells``: mean median rank per framing x category x family (mean over prompts within a model,
    then over the models of the family), and the difference between the two families;
(b) ``mixed_model``: ``median_rank ~ family * category * framing + (1 | model)`` (statsmodels
    ``mixedlm``, REML), treatment coding with the reference levels recorded;
(c) ``panels``: in each category x framing panel, a permutation Welch t-test between the two
    families on the (model, prompt) median ranks, Bonferroni-corrected over panels, with Cohen's
    d and percentile bootstrap CIs of the mean difference and of d.

Differences are ``family_b - family_a``; by default the families are sorted by name, so for Gemma
and Llama the difference is Llama - Gemma, as in the paper. Lower median rank = more preferred.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.stats.contrast import compare
from analyses.stats.corrections import bonferroni
from analyses.stats.ranking import categorised_scores, check_complete_design, median_ranks
from interp.errors import UserError
from interp.provenance import json_safe

FRAMING_ORDER = ("positive", "negative", "none")


def records(items: Any) -> list[Any]:
    """Dataclass instances as JSON-safe dicts (for ``summary()`` and CSVs)."""
    return [json_safe(asdict(item)) for item in items]


@dataclass(frozen=True)
class Cell:
    """Mean median rank of one framing x category x family cell (lower = preferred)."""

    framing: str
    category: str
    family: str
    mean_median_rank: float
    n_models: int
    n_prompts: int


@dataclass(frozen=True)
class FamilyDifference:
    """``mean_median_rank(family_b) - mean_median_rank(family_a)`` in one framing x category."""

    framing: str
    category: str
    family_a: str
    family_b: str
    difference: float


@dataclass(frozen=True)
class MixedTerm:
    """One fixed effect of the mixed model: coefficient, 95% Wald CI, p-value."""

    term: str
    coef: float
    se: float
    ci_low: float
    ci_high: float
    p: float


@dataclass(frozen=True)
class MixedModelFit:
    """The mixed model ``median_rank ~ family * category * framing + (1 | model)``."""

    formula: str
    terms: tuple[MixedTerm, ...]
    reference_levels: dict[str, str]
    group_variance: float
    n_obs: int
    n_groups: int
    converged: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PanelTest:
    """Permutation Welch t-test between families in one category x framing panel.

    Units are (model, prompt) median ranks; ``t``, ``d`` and the CIs are for family_b - family_a.
    ``p`` is the permutation p-value, ``p_bonferroni`` is corrected over all panels.
    """

    framing: str
    category: str
    family_a: str
    family_b: str
    n: int
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    t: float
    df: float
    p: float
    p_parametric: float
    p_bonferroni: float
    d: float
    diff: float
    ci_low: float
    ci_high: float
    d_ci_low: float
    d_ci_high: float
    n_permutations: int
    exact: bool


@dataclass(frozen=True)
class Stage1Result:
    """Everything Stage 1 computes; ``median_ranks`` is the tidy table it was computed from."""

    lexicon: str
    families: tuple[str, str]
    cells: tuple[Cell, ...]
    differences: tuple[FamilyDifference, ...]
    mixed_model: MixedModelFit | None
    panels: tuple[PanelTest, ...]
    median_ranks: pd.DataFrame = field(repr=False)
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: ``cells``, ``mixed_model``, ``panels`` and more."""
        mm = self.mixed_model
        return {
            "stage": 1,
            "lexicon": self.lexicon,
            "families": list(self.families),
            "cells": records(self.cells),
            "differences": records(self.differences),
            "mixed_model": records(mm.terms) if mm else [],
            "mixed_model_info": (
                json_safe({k: v for k, v in asdict(mm).items() if k != "terms"}) if mm else None
            ),
            "panels": records(self.panels),
            "provenance": self.provenance,
        }


def _two_families(med: pd.DataFrame, reference_family: str | None) -> tuple[str, str]:
    fams = sorted(med["family"].unique())
    if len(fams) < 2:
        raise UserError(
            f"all models belong to one family ({fams[0]}): no comparison between families is "
            "possible; score models of two base families or set --family MODEL=FAMILY"
        )
    if len(fams) > 2:
        raise UserError(
            f"{len(fams)} families ({', '.join(fams)}): Stage 1 compares exactly two; "
            "merge them with --family MODEL=FAMILY"
        )
    if reference_family is not None:
        if reference_family not in fams:
            raise UserError(f"reference family {reference_family!r} not among {fams}")
        return reference_family, next(f for f in fams if f != reference_family)
    return fams[0], fams[1]


def cells_table(med: pd.DataFrame) -> pd.DataFrame:
    """Mean median rank per framing x category x family: mean over prompts, then over models."""
    per_model = med.groupby(["framing", "category", "family", "model"], observed=True).agg(
        median_rank=("median_rank", "mean"), n_prompts=("prompt_key", "nunique")
    )
    cells = (
        per_model.reset_index()
        .groupby(["framing", "category", "family"], observed=True)
        .agg(
            mean_median_rank=("median_rank", "mean"),
            n_models=("model", "nunique"),
            n_prompts=("n_prompts", "max"),
        )
        .reset_index()
    )
    return cells


def _order(df: pd.DataFrame, categories: tuple[str, ...]) -> pd.DataFrame:
    """Sort rows by framing (positive first), then lexicon category order."""
    fr = {f: i for i, f in enumerate(FRAMING_ORDER)}
    cat = {c: i for i, c in enumerate(categories)}
    key = df["framing"].map(fr).fillna(99) * 10_000 + df["category"].map(cat).fillna(9_999)
    return (
        df.assign(_k=key)
        .sort_values(["_k", *[c for c in ("family",) if c in df]])
        .drop(columns="_k")
    )


def fit_mixed_model(
    med: pd.DataFrame, families: tuple[str, str], categories: tuple[str, ...]
) -> MixedModelFit:
    """``median_rank ~ family * category * framing + (1 | model)`` by REML (statsmodels).

    Reference levels: ``families[0]``, the lexicon's first category, and ``positive`` framing.
    Fit warnings (e.g. a non-positive-definite Hessian) are kept in ``notes``.
    """
    import statsmodels.formula.api as smf

    data = med[["median_rank", "family", "category", "framing", "model"]].copy()
    framings = [f for f in FRAMING_ORDER if f in set(data["framing"])]
    cats = [c for c in categories if c in set(data["category"])]
    data["family"] = pd.Categorical(data["family"], categories=list(families))
    data["category"] = pd.Categorical(data["category"], categories=cats)
    data["framing"] = pd.Categorical(data["framing"], categories=framings)
    data["median_rank"] = data["median_rank"].astype(float)
    terms = ["family"]
    if len(cats) > 1:
        terms.append("category")
    if len(framings) > 1:
        terms.append("framing")
    formula = "median_rank ~ " + " * ".join(terms)
    notes: list[str] = []
    per_family = data.groupby("family", observed=True)["model"].nunique()
    if (per_family < 2).any():
        notes.append(
            "a family has a single model: the family effect is not separable from the model "
            "random intercept; read family terms with caution"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = smf.mixedlm(formula, data, groups=data["model"]).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as err:
            raise UserError(f"mixed model could not be fitted: {err}") from None
    notes.extend(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    ci = fit.conf_int(alpha=0.05)
    rows = []
    for term in fit.fe_params.index:
        rows.append(
            MixedTerm(
                term=str(term),
                coef=float(fit.fe_params[term]),
                se=float(fit.bse_fe[term]),
                ci_low=float(ci.loc[term, 0]),
                ci_high=float(ci.loc[term, 1]),
                p=float(fit.pvalues[term]),
            )
        )
    return MixedModelFit(
        formula=formula + " + (1 | model)",
        terms=tuple(rows),
        reference_levels={
            "family": families[0],
            "category": cats[0],
            "framing": framings[0],
        },
        group_variance=float(np.asarray(fit.cov_re)[0, 0]),
        n_obs=int(fit.nobs),
        n_groups=int(data["model"].nunique()),
        converged=bool(fit.converged),
        notes=tuple(notes),
    )


def panel_tests(
    med: pd.DataFrame,
    families: tuple[str, str],
    categories: tuple[str, ...],
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[PanelTest, ...]:
    """Permutation Welch t-test between families per category x framing panel (Bonferroni).

    Each panel gets its own generator seeded from ``(seed, panel index)`` so results do not
    depend on which other panels exist. The two-group comparison is ``analyses.stats.contrast.compare``.
    """
    fa, fb = families
    raw = []
    panels = _order(
        med[["framing", "category"]].drop_duplicates().reset_index(drop=True), categories
    )
    for i, (framing, category) in enumerate(panels.itertuples(index=False)):
        sub = med[(med["framing"] == framing) & (med["category"] == category)]
        a = sub.loc[sub["family"] == fa, "median_rank"].to_numpy(float)
        b = sub.loc[sub["family"] == fb, "median_rank"].to_numpy(float)
        result = compare(
            b, a, first=fb, second=fa, label=f"{framing}/{category}", value="median_rank",
            unit="(model, prompt)", n_permutations=n_permutations, n_bootstrap=n_bootstrap,
            rng=np.random.default_rng([seed, i]),
        )  # fmt: skip
        p_parametric = float(2 * sps.t.sf(abs(result.test.statistic), result.test.df))
        raw.append((framing, category, result, p_parametric))
    adj = bonferroni([r[2].test.p for r in raw])
    return tuple(
        PanelTest(
            framing=framing,
            category=category,
            family_a=fa,
            family_b=fb,
            n=c.n_first + c.n_second,
            n_a=c.n_second,
            n_b=c.n_first,
            mean_a=c.mean_second,
            mean_b=c.mean_first,
            t=c.test.statistic,
            df=c.test.df,
            p=c.test.p,
            p_parametric=p_par,
            p_bonferroni=float(p_adj),
            d=c.d.value,
            diff=c.difference.value,
            ci_low=c.difference.low,
            ci_high=c.difference.high,
            d_ci_low=c.d.low,
            d_ci_high=c.d.high,
            n_permutations=c.n_permutations,
            exact=c.exact,
        )
        for (framing, category, c, p_par), p_adj in zip(raw, adj, strict=True)
    )


def stage1(
    scores: pd.DataFrame,
    lexicon: Lexicon,
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
    reference_family: str | None = None,
    mixed: bool = True,
    provenance: dict[str, Any] | None = None,
) -> Stage1Result:
    """The paper's Stage-1 analysis of a score table (see module docstring)."""
    ranked = categorised_scores(scores, lexicon)
    med = median_ranks(ranked)
    check_complete_design(med)
    families = _two_families(med, reference_family)
    categories = tuple(c for c in lexicon.category_names if c in set(med["category"]))
    cells_df = _order(cells_table(med), categories)
    cells = tuple(
        Cell(
            r.framing,
            r.category,
            r.family,
            float(r.mean_median_rank),
            int(r.n_models),
            int(r.n_prompts),
        )
        for r in cells_df.itertuples(index=False)
    )
    wide = cells_df.pivot_table(
        index=["framing", "category"], columns="family", values="mean_median_rank"
    )
    diffs_df = _order(wide.reset_index(), categories)
    differences = tuple(
        FamilyDifference(
            r["framing"],
            r["category"],
            families[0],
            families[1],
            float(r[families[1]] - r[families[0]]),
        )
        for _, r in diffs_df.iterrows()
    )
    mm = fit_mixed_model(med, families, categories) if mixed else None
    panels = panel_tests(med, families, categories, n_permutations, n_bootstrap, seed)
    return Stage1Result(
        lexicon=lexicon.name,
        families=families,
        cells=cells,
        differences=differences,
        mixed_model=mm,
        panels=panels,
        median_ranks=med,
        provenance=dict(provenance or {}),
    )

"""The paper's statistics: Stage 1 (reward models), Stage 2 (LM log-probs), cross-model agreement.

Stage 1 (Christian et al. 2026, RMs): rank lexicon words within each (model, prompt), take the
median rank of each category, then

(a) ``cells``: mean median rank per framing x category x family (mean over prompts within a model,
    then over the models of the family), and the difference between the two families;
(b) ``mixed_model``: ``median_rank ~ family * category * framing + (1 | model)`` (statsmodels
    ``mixedlm``, REML), treatment coding with the reference levels recorded;
(c) ``panels``: in each category x framing panel, a permutation Welch t-test between the two
    families on the (model, prompt) median ranks, Bonferroni-corrected over panels, with Cohen's
    d and percentile bootstrap CIs of the mean difference and of d.

Stage 2 (LM log-probs): rank single-token lexicon words by log-prob per (model, prompt), median
rank per (prompt, category, model, valence), type-II three-way ANOVA
``median_rank ~ category * valence * model`` (OLS), and Welch post-hoc tests per cell with
Benjamini-Hochberg FDR: between models within each category x valence cell, and between
categories within each model x valence cell.

Cross-model agreement (FAccT paper): Kendall's tau and Spearman's rho between two models' scores on
their shared responses (decoded strings), per prompt.

All differences are ``family_b - family_a`` (``model_b - model_a``); by default the families are
sorted by name, so for Gemma and Llama the difference is Llama - Gemma, as in the paper. Lower
median rank = more preferred.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analyses.errors import UserError
from analyses.lexicons import Lexicon
from analyses.provenance import json_safe
from analyses.ranking import categorised_scores, check_complete_design, median_ranks
from analyses.stats_tests import (
    benjamini_hochberg,
    bonferroni,
    bootstrap_ci,
    cohens_d,
    permutation_welch_test,
    welch_t,
)

FRAMING_ORDER = ("positive", "negative", "none")


# ---------------------------------------------------------------------- results
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
            "cells": _records(self.cells),
            "differences": _records(self.differences),
            "mixed_model": _records(mm.terms) if mm else [],
            "mixed_model_info": (
                json_safe({k: v for k, v in asdict(mm).items() if k != "terms"}) if mm else None
            ),
            "panels": _records(self.panels),
            "provenance": self.provenance,
        }


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
            "anova": _records(self.anova),
            "posthoc": _records(self.posthoc),
            "provenance": self.provenance,
        }


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of two models' scores on their shared responses for one prompt."""

    prompt_key: str
    model_a: str
    model_b: str
    n_shared: int
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float


def _records(items: Any) -> list[Any]:
    """Dataclass instances as JSON-safe dicts (for ``summary()``)."""
    return [json_safe(asdict(item)) for item in items]


# ---------------------------------------------------------------------- stage 1
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
    depend on which other panels exist.
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
        rng = np.random.default_rng([seed, i])
        test = permutation_welch_test(b, a, n_permutations=n_permutations, seed=rng)
        boot = bootstrap_ci(b, a, n_bootstrap=n_bootstrap, seed=rng)
        raw.append((framing, category, a, b, test, boot))
    adj = bonferroni([r[4].p for r in raw])
    out = []
    for (framing, category, a, b, test, boot), p_adj in zip(raw, adj, strict=True):
        out.append(
            PanelTest(
                framing=framing,
                category=category,
                family_a=fa,
                family_b=fb,
                n=len(a) + len(b),
                n_a=len(a),
                n_b=len(b),
                mean_a=float(np.mean(a)) if len(a) else math.nan,
                mean_b=float(np.mean(b)) if len(b) else math.nan,
                t=test.t,
                df=test.df,
                p=test.p,
                p_parametric=test.p_parametric,
                p_bonferroni=float(p_adj),
                d=cohens_d(b, a),
                diff=float(np.mean(b) - np.mean(a)) if len(a) and len(b) else math.nan,
                ci_low=boot.diff_low,
                ci_high=boot.diff_high,
                d_ci_low=boot.d_low,
                d_ci_high=boot.d_high,
                n_permutations=test.n_permutations,
                exact=test.exact,
            )
        )
    return tuple(out)


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


# ---------------------------------------------------------------------- stage 2
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


# ------------------------------------------------------------------- agreement
def cross_model_agreement(scores: pd.DataFrame, min_shared: int = 3) -> tuple[Agreement, ...]:
    """Kendall's tau-b and Spearman's rho between every pair of models, per prompt.

    Pairs are matched on the ``response`` string (the decoded token); prompts with fewer than
    ``min_shared`` shared responses are skipped.
    """
    out = []
    for key, g in scores.groupby("prompt_key", sort=True):
        wide = g.pivot_table(index="response", columns="model", values="score", aggfunc="max")
        for ma, mb in itertools.combinations(sorted(wide.columns), 2):
            pair = wide[[ma, mb]].dropna()
            if len(pair) < min_shared:
                continue
            tau = sps.kendalltau(pair[ma], pair[mb])
            rho = sps.spearmanr(pair[ma], pair[mb])
            out.append(
                Agreement(
                    str(key),
                    ma,
                    mb,
                    len(pair),
                    float(tau.statistic),
                    float(tau.pvalue),
                    float(rho.statistic),
                    float(rho.pvalue),
                )
            )
    return tuple(out)


# ------------------------------------------------------------------- writing
def _records_csv(rows, path: Path) -> Path:
    pd.DataFrame([asdict(r) for r in rows]).to_csv(path, index=False)
    return path


def write_stage1(result: Stage1Result, out_dir: str | Path) -> list[Path]:
    """``summary.json`` plus ``cells.csv``, ``differences.csv``, ``mixed_model.csv``,
    ``panels.csv`` and ``median_ranks.csv`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_text(json.dumps(result.summary(), indent=2) + "\n")
    paths = [summary]
    paths.append(_records_csv(result.cells, out / "cells.csv"))
    paths.append(_records_csv(result.differences, out / "differences.csv"))
    if result.mixed_model is not None:
        paths.append(_records_csv(result.mixed_model.terms, out / "mixed_model.csv"))
    paths.append(_records_csv(result.panels, out / "panels.csv"))
    result.median_ranks.to_csv(out / "median_ranks.csv", index=False)
    paths.append(out / "median_ranks.csv")
    return paths


def write_stage2(result: Stage2Result, out_dir: str | Path) -> list[Path]:
    """``summary.json`` plus ``anova.csv``, ``posthoc.csv`` and ``median_ranks.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.json"
    summary.write_text(json.dumps(result.summary(), indent=2) + "\n")
    paths = [
        summary,
        _records_csv(result.anova, out / "anova.csv"),
        _records_csv(result.posthoc, out / "posthoc.csv"),
    ]
    result.median_ranks.to_csv(out / "median_ranks.csv", index=False)
    paths.append(out / "median_ranks.csv")
    return paths

"""The paper's Stage 1 on reward-model scores: cells, the mixed models and the family panels.

Rank lexicon words within each (model, prompt) (a ``Coding`` may first recode the categories, e.g.
the authors' MFD coding), take the median rank of each category, then

(a) ``cells``: mean median rank per framing x category x family (mean over prompts within a model,
    then over the models of the family), and the difference between the two families;
(b) ``mixed_model``: ``median_rank ~ family * category * framing + (1 | model)`` (REML) with t
    tests on nlme's containment df, and the random-slopes companion ``(1 + category | model)``
    (``analyses.stats.mixed_model``);
(c) ``panels``: per category x framing panel, the paper's Welch test (parametric p, Bonferroni,
    stars) with the permutation test beside it, and the model-level tests
    (``analyses.stats.panels``).

Differences are ``family_b - family_a``; by default the families are sorted by name, so for Gemma
and Llama the difference is Llama - Gemma, as in the paper. Lower median rank = more preferred.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from analyses.inputs.lexicon import Lexicon
from analyses.stats.coding import Coding, plain_coding
from analyses.stats.mixed_model import MixedModelFit, factor_levels, fit_mixed_model
from analyses.stats.panels import PanelTest, panel_tests
from analyses.stats.ranking import categorised_scores, check_complete_design, median_ranks
from interp.errors import UserError
from interp.provenance import json_safe

FRAMING_ORDER = ("positive", "negative", "none")
VIEWS = {
    "paper": (
        "prompt-level: every (model, prompt) median rank is a unit, as in the paper; stars are the "
        "paper's (parametric Welch p, Bonferroni over panels). Prompts of one model are not "
        "independent, so these p-values overstate the evidence about families."
    ),
    "model_level": (
        "model-level: the model is the unit (family is a property of a model); exact permutation "
        "over assignments of models to families, cluster bootstrap over models, mixed models with "
        "containment df. These are the honest tests of a family difference."
    ),
}


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
    random_slopes: MixedModelFit | None = None
    coding: dict[str, Any] = field(default_factory=dict)
    ranked: pd.DataFrame | None = field(default=None, repr=False)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: ``cells``, ``mixed_model`` (terms with df), ``panels`` (stars,
        ``p_model_level``), the random-slopes model, the coding and what each view means."""
        return {
            "stage": 1,
            "lexicon": self.lexicon,
            "coding": self.coding,
            "families": list(self.families),
            "views": VIEWS,
            "cells": records(self.cells),
            "differences": records(self.differences),
            "mixed_model": records(self.mixed_model.terms) if self.mixed_model else [],
            "mixed_model_info": _fit_info(self.mixed_model),
            "mixed_model_random_slopes": (
                records(self.random_slopes.terms) if self.random_slopes else []
            ),
            "mixed_model_random_slopes_info": _fit_info(self.random_slopes),
            "panels": records(self.panels),
            "provenance": self.provenance,
        }


def _fit_info(fit: MixedModelFit | None) -> dict | None:
    return json_safe({k: v for k, v in asdict(fit).items() if k != "terms"}) if fit else None


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


def stage1(
    scores: pd.DataFrame,
    lexicon: Lexicon,
    n_permutations: int | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
    reference_family: str | None = None,
    mixed: bool = True,
    provenance: dict[str, Any] | None = None,
    coding: Coding | None = None,
    reference: Mapping[str, str] | None = None,
    random_slopes: bool = True,
) -> Stage1Result:
    """The paper's Stage-1 analysis of a score table, with the model-level tests beside it.

    ``coding`` recodes the lexicon's categories (default: as they are); ``reference`` picks
    reference levels of the mixed models (``family``, ``category``, ``framing``; default R's);
    ``reference_family`` is the family subtracted in differences (and the mixed models'
    reference family). ``n_permutations`` None: enough draws for a Bonferroni floor below 0.001.
    """
    coding = coding or plain_coding(lexicon)
    lexicon = coding.lexicon
    ranked = categorised_scores(scores, lexicon, coding)
    med = median_ranks(ranked)
    check_complete_design(med)
    reference = dict(reference or {})
    if reference_family is not None:
        if reference.get("family", reference_family) != reference_family:
            raise UserError("--reference family=... and --reference-family disagree")
        reference["family"] = reference_family
    families = _two_families(med, reference.get("family"))
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
    levels = factor_levels(med, {**reference, "family": families[0]})
    mm = fit_mixed_model(med, levels) if mixed else None
    slopes = fit_mixed_model(med, levels, random_slopes=True) if mixed and random_slopes else None
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
        random_slopes=slopes,
        coding=coding.describe(),
        ranked=ranked,
    )

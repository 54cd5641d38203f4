"""Specification curve: the same contrast under every defensible analysis choice, side by side.

Choices (a *specification* is one of each):

- ``lexicon``: each word list given (e.g. the paper's nouns, the expanded dictionary, Big Two
  version a or b);
- ``pronouns``: kept or dropped (only for lexicons that have the Big Two pronoun entries);
- ``word_forms``: ``exact`` (a response counts only when it already is the stripped, lowercase
  word) or ``merged`` (case/whitespace variants merged, best score kept; ``ranking.word_forms``);
- ``prompts``: one framing (never pooled: the effect can reverse with framing) and one
  concision style (``one``, ``single``, ``please`` or ``all``).

The contrast is the per-(model, prompt) category gap ``first - second`` of median ranks, as a share
of the ranked words (``random_axis.category_gaps``; negative: the first category is preferred),
averaged over prompts within a model: one row per model, and with two families the family
difference ``family_b - family_a`` of the models' gaps (the family x category interaction). CIs:
percentile bootstrap over prompts (the same resampled prompts for every model).
``p_model_level``: the exact test over assignments of models to families (family rows only).
A sign that flips between specifications is the thing to look for.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.inputs.lexicon import Lexicon
from analyses.stats.contrast import CategoryPair
from analyses.stats.model_level import assignment_test
from analyses.stats.random_axis import (
    category_gaps,
    family_ci,
    prompt_bootstrap,
    prompt_grid,
    rank_matrix,
)
from analyses.stats.ranking import categorised_scores, word_forms
from interp.errors import UserError

CONCISION = ("all", "one", "single", "please")


@dataclass(frozen=True)
class Specification:
    lexicon: str
    pronouns: str
    word_forms: str
    framing: str
    concision: str

    @property
    def label(self) -> str:
        return f"{self.lexicon} | pronouns {self.pronouns} | {self.word_forms} | {self.framing}/{self.concision}"


def _concision(key: str) -> str:
    tail = str(key).rsplit("_", 1)[-1]
    return tail if tail in CONCISION else "all"


def specifications(
    lexicons: Sequence[tuple[str, Lexicon]], scores: pd.DataFrame
) -> list[tuple[Specification, Lexicon]]:
    """Every specification the lexicons and the table's prompts allow."""
    framings = [f for f in ("positive", "negative", "none") if f in set(scores["framing"])]
    prompts = [
        (framing, style)
        for framing in framings
        for style in ("all", *sorted(set(
            scores.loc[scores["framing"] == framing, "prompt_key"].map(_concision)) - {"all"},
            key=CONCISION.index))
    ]  # fmt: skip
    out = []
    for label, lex in lexicons:
        variants = [("kept", lex)]
        dropped = lex.drop_pronouns()
        if dropped.digest() != lex.digest():
            variants.append(("dropped", dropped))
        for (pron, lx), forms, (framing, style) in itertools.product(
            variants, ("exact", "merged"), prompts
        ):
            out.append((Specification(label, pron, forms, framing, style), lx))
    return out


def _effects(ranked: pd.DataFrame, pair: CategoryPair, families, n_bootstrap, rng) -> list[dict]:
    matrix = rank_matrix(ranked)
    by_word = ranked.groupby("response")["category"].agg(set)
    col = {w: i for i, w in enumerate(matrix.words)}
    first = [col[w] for w, c in by_word.items() if pair.first in c and pair.second not in c]
    second = [col[w] for w, c in by_word.items() if pair.second in c and pair.first not in c]
    if len(first) < 2 or len(second) < 2:
        raise UserError(f"fewer than two words in {pair.first} or {pair.second}")
    gap = category_gaps(matrix.ranks, np.array(first), np.array(second))
    g, fam = prompt_grid(gap, matrix.units)  # [M, P]
    boot = prompt_bootstrap(g, n_bootstrap, rng)  # [B, M]
    means = g.mean(axis=1)
    base = {"n_first": len(first), "n_second": len(second), "n_prompts": g.shape[1],
            "n_models": g.shape[0]}  # fmt: skip
    rows = []
    for j, model in enumerate(fam.index):
        lo, hi = np.quantile(boot[:, j], [0.025, 0.975])
        rows.append(base | {"contrast": str(model), "estimate": float(means[j]),
                            "ci_low": float(lo), "ci_high": float(hi), "p_model_level": np.nan})  # fmt: skip
    if families is not None and set(fam) >= set(families):
        b = (fam == families[1]).to_numpy()
        a = (fam == families[0]).to_numpy()
        lo, hi = family_ci(boot, fam, families)
        ml = assignment_test(means[a | b], b[a | b], rng=rng)
        rows.append(base | {"contrast": f"{families[1]} - {families[0]}",
                            "estimate": float(means[b].mean() - means[a].mean()),
                            "ci_low": float(lo), "ci_high": float(hi), "p_model_level": ml.p})  # fmt: skip
    return rows


def specification_curve(
    scores: pd.DataFrame,
    lexicons: Sequence[tuple[str, Lexicon]],
    pair: CategoryPair,
    families: tuple[str, str] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[str]]:
    """The specification table (one row per specification and contrast) and the
    specifications that could not be computed, with the reason."""
    rows, skipped = [], []
    for i, (spec, lex) in enumerate(specifications(lexicons, scores)):
        sub = scores[scores["framing"] == spec.framing]
        if spec.concision != "all":
            sub = sub[sub["prompt_key"].map(_concision) == spec.concision]
        sub = word_forms(sub, spec.word_forms)
        try:
            ranked = categorised_scores(sub, lex)
            found = _effects(ranked, pair, families, n_bootstrap, np.random.default_rng([seed, i]))
        except UserError as err:
            skipped.append(f"{spec.label}: {err}")
            continue
        for r in found:
            rows.append({"spec": spec.label, **spec.__dict__, **r,
                         "unit": "share of ranked words (median rank gap first - second)"})  # fmt: skip
    table = pd.DataFrame(rows)
    if not table.empty:
        table["sign"] = np.sign(table["estimate"]).astype(int)
    return table, skipped

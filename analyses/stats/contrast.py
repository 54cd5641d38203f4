"""The one category contrast of the suite: first category minus second, compared over words.

Sign convention, everywhere: ``first - second`` (default ``Agency - Communion``), so a positive
value means the first category's words score higher. A word that belongs to both categories is
left out of both (the groups never overlap). The unit of inference is the word: each word's item
values (one per prompt) are first averaged over the prompts of the subset being compared.

- ``CategoryPair``: the two categories (``--gap``, ``--categories``, ``--classes`` all parse
  with ``CategoryPair.parse``).
- ``category_words``: the words of each category among the scored responses.
- ``word_means``: item values ``[..., N]`` averaged per word ``[..., n_words]`` (NaN-aware).
- ``compare``: two groups of values: the difference of means and Cohen's d with percentile
  bootstrap CIs, and a permutation Welch t-test (the same generator feeds both).
- ``contrast_by``: ``compare`` per subset of a tidy table (e.g. per framing and pooled), with
  Bonferroni correction over the subsets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analyses.stats.corrections import bonferroni
from analyses.stats.twosample import bootstrap_ci, cohens_d, permutation_welch_test
from interp.errors import UserError
from interp.evidence import Estimate, Test

CORRECTIONS = ("bonferroni", "none")


@dataclass(frozen=True)
class CategoryPair:
    """Two different category names; contrasts are ``first - second``."""

    first: str
    second: str

    def __post_init__(self) -> None:
        if not self.first or not self.second or self.first == self.second:
            raise UserError(f"need two different categories, got {self.first!r}, {self.second!r}")

    @classmethod
    def parse(cls, text: str, option: str = "--gap") -> CategoryPair:
        """``"Agency,Communion"`` -> ``CategoryPair("Agency", "Communion")``."""
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
            raise UserError(
                f"{option} {text!r}: give two different categories, e.g. Agency,Communion"
            )
        return cls(parts[0], parts[1])

    @property
    def label(self) -> str:
        return f"{self.first} - {self.second}"

    def __iter__(self):
        return iter((self.first, self.second))


@dataclass(frozen=True)
class CategoryWords:
    """The words of each category of ``pair`` (words in both categories are left out)."""

    pair: CategoryPair
    first: tuple[str, ...]
    second: tuple[str, ...]

    @property
    def n(self) -> dict[str, int]:
        return {self.pair.first: len(self.first), self.pair.second: len(self.second)}


def category_words(
    categories: pd.DataFrame,
    pair: CategoryPair,
    words: Sequence[str] | None = None,
    min_words: int = 2,
) -> CategoryWords:
    """Words of each category among ``words`` (default: every word of ``categories``).

    ``categories`` has one row per (``response``, ``category``). Raises ``UserError`` when a
    category has fewer than ``min_words`` words.
    """
    cats = categories[["response", "category"]].drop_duplicates()
    by_word = cats.groupby("response")["category"].agg(set)
    order = list(dict.fromkeys(words if words is not None else cats["response"]))
    a, b = pair.first, pair.second
    in_a = tuple(w for w in order if a in by_word.get(w, set()) and b not in by_word.get(w, set()))
    in_b = tuple(w for w in order if b in by_word.get(w, set()) and a not in by_word.get(w, set()))
    if len(in_a) < min_words or len(in_b) < min_words:
        present = ", ".join(sorted(set(cats["category"]))) or "none"
        raise UserError(
            f"the contrast {pair.label} needs at least {min_words} words in each category; found "
            f"{len(in_a)} and {len(in_b)} (categories present: {present})"
        )
    return CategoryWords(pair, in_a, in_b)


def word_means(values: np.ndarray, responses: Sequence[str], words: Sequence[str]) -> np.ndarray:
    """Average item values per word: ``values`` ``[..., N]`` (item ``i`` answers ``responses[i]``)
    -> ``[..., len(words)]``; NaN items are skipped, a word without items is NaN."""
    col = {w: i for i, w in enumerate(words)}
    sel = pd.Series(list(responses)).map(col)
    keep = sel.notna().to_numpy()
    idx = sel[keep].astype(int).to_numpy()
    v = np.asarray(values, dtype=np.float64)[..., keep]
    total = np.zeros((*v.shape[:-1], len(words)))
    count = np.zeros((*v.shape[:-1], len(words)))
    ok = ~np.isnan(v)
    np.add.at(total.T, idx, np.where(ok, v, 0.0).T)
    np.add.at(count.T, idx, ok.T.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


@dataclass(frozen=True)
class Contrast:
    """``first - second`` on one subset (``label``) of ``value``: means, the difference and
    Cohen's d with bootstrap CIs, and the permutation Welch test."""

    label: str
    first: str
    second: str
    value: str
    n_first: int
    n_second: int
    mean_first: float
    mean_second: float
    difference: Estimate
    d: Estimate
    test: Test
    n_permutations: int
    exact: bool
    n_prompts: int | None = None

    def row(self, by: str = "label") -> dict:
        """One flat table row (the columns of every contrast CSV in the suite); the subset's
        name goes in column ``by`` (e.g. ``framing``)."""
        return {
            by: self.label,
            "first": self.first,
            "second": self.second,
            "value": self.value,
            "unit": self.test.unit,
            "n_first": self.n_first,
            "n_second": self.n_second,
            "n_prompts": self.n_prompts,
            "mean_first": self.mean_first,
            "mean_second": self.mean_second,
            "difference": self.difference.value,
            "difference_ci_low": self.difference.low,
            "difference_ci_high": self.difference.high,
            "d": self.d.value,
            "d_ci_low": self.d.low,
            "d_ci_high": self.d.high,
            "t": self.test.statistic,
            "df": self.test.df,
            "p": self.test.p,
            "p_adjusted": self.test.p_adjusted,
            "correction": self.test.correction,
            "test": self.test.name,
            "n_permutations": self.n_permutations,
            "exact": self.exact,
        }

    def text(self) -> str:
        """One line: difference with CI, t, p (and adjusted p), d, n."""
        return (
            f"{self.value} [{self.label}] {self.first} - {self.second} = "
            f"{self.difference.value:+.3g} (95% CI {self.difference.low:+.3g}.."
            f"{self.difference.high:+.3g}), t={self.test.statistic:.2f}, p={self.test.p:.3g}, "
            f"p_adj={self.test.p_adjusted:.3g} ({self.test.correction}), d={self.d.value:+.2f}, "
            f"n={self.n_first}+{self.n_second} {self.test.unit}s"
        )


def compare(
    x: np.ndarray,
    y: np.ndarray,
    *,
    first: str,
    second: str,
    label: str = "all",
    value: str = "score",
    unit: str = "word",
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    rng: np.random.Generator | int = 0,
    n_prompts: int | None = None,
) -> Contrast:
    """``x`` (the first group's values) against ``y`` (the second's): see the module docstring."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    test = permutation_welch_test(x, y, n_permutations=n_permutations, seed=rng)
    boot = bootstrap_ci(x, y, n_bootstrap=n_bootstrap, seed=rng)
    diff = float(np.mean(x) - np.mean(y)) if len(x) and len(y) else math.nan
    how = f"percentile bootstrap, each group resampled, {n_bootstrap} resamples"
    sizes = len(x) + len(y)
    name = "permutation Welch t" + (" (exact)" if test.exact else f", {test.n_permutations} draws")
    return Contrast(
        label=label,
        first=first,
        second=second,
        value=value,
        n_first=len(x),
        n_second=len(y),
        mean_first=float(np.mean(x)) if len(x) else math.nan,
        mean_second=float(np.mean(y)) if len(y) else math.nan,
        difference=Estimate(diff, boot.diff_low, boot.diff_high, boot.confidence, how, unit, sizes),
        d=Estimate(cohens_d(x, y), boot.d_low, boot.d_high, boot.confidence, how, unit, sizes),
        test=Test(name, test.t, test.p, test.df, test.p, "none", "", unit, sizes),
        n_permutations=test.n_permutations,
        exact=test.exact,
        n_prompts=n_prompts,
    )


def _corrected(contrasts: list[Contrast], correction: str) -> tuple[Contrast, ...]:
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r}: use one of {CORRECTIONS}")
    if correction == "none":
        return tuple(contrasts)
    adjusted = bonferroni([c.test.p for c in contrasts])
    family = f"{len(contrasts)} subsets ({', '.join(c.label for c in contrasts)})"
    return tuple(
        replace(
            c, test=replace(c.test, p_adjusted=float(q), correction="Bonferroni", family=family)
        )
        for c, q in zip(contrasts, adjusted, strict=True)
    )


def contrast_by(
    table: pd.DataFrame,
    words: CategoryWords,
    *,
    value: str = "score",
    by: str = "framing",
    subsets: Sequence[str] | None = None,
    pooled: str | None = "all",
    correction: str = "bonferroni",
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[Contrast, ...]:
    """``compare`` the two categories' word means within each subset of ``table[by]``.

    ``table`` holds item values: columns ``response``, ``by`` and ``value`` (and ``prompt_key``
    for the prompt count). Subsets are ``subsets`` (default: the values of ``by`` present, in
    order of appearance) and, when ``pooled`` names it, all rows together. Subset ``i`` uses the
    generator ``default_rng([seed, i])``, so a result does not depend on which other subsets
    exist; p-values are corrected over the subsets (``correction``).
    """
    names = list(subsets) if subsets is not None else list(dict.fromkeys(table[by]))
    parts = [(name, table[table[by] == name]) for name in names]
    if pooled is not None:
        parts.append((pooled, table))
    out = []
    for i, (name, sub) in enumerate(parts):
        means = sub.groupby("response")[value].mean()
        x = means.reindex(list(words.first)).dropna().to_numpy()
        y = means.reindex(list(words.second)).dropna().to_numpy()
        n_prompts = int(sub["prompt_key"].nunique()) if "prompt_key" in sub else None
        out.append(
            compare(
                x,
                y,
                first=words.pair.first,
                second=words.pair.second,
                label=str(name),
                value=value,
                n_permutations=n_permutations,
                n_bootstrap=n_bootstrap,
                rng=np.random.default_rng([seed, i]),
                n_prompts=n_prompts,
            )  # fmt: skip
        )
    return _corrected(out, correction)

"""One model's category preference over prompts, and how much of an RM's preference its base shares.

Sign convention (``analyses.stats.contrast``): ``first - second`` everywhere.

- ``rank_gaps``: within each prompt the lexicon words are ranked by score (``analyses.stats.
  ranking``: rank 1 = highest score, ties averaged) and each category's median rank is taken;
  the *median-rank gap* of a prompt is ``median_rank(first) - median_rank(second)``, so a
  negative gap means the first category is preferred. Unit of inference: the prompt. The mean
  gap over a framing's prompts gets a percentile bootstrap CI over prompts, ``d_z`` (mean / SD)
  as the standardised effect, and a two-sided sign-flip randomisation test (exact when all
  ``2^n`` sign patterns fit in the draw budget); Bonferroni over the framings.
- ``preference_correlations``: Spearman's rho between two models' word preferences (each word's
  score averaged over the framing's prompts). Unit: the word. CI: percentile bootstrap over
  words; p: permutation test (one model's word values shuffled); Bonferroni over the framings.
- ``gap_shares``: the *share of the RM's gap the base already shows*: ``d_base / d_rm``, the
  ratio of the two models' standardised category gaps (Cohen's d of word means, so reward units
  and nats cancel). 1: the base shows the whole gap; 0: none of it; < 0: the opposite
  preference; > 1: more than the RM. CI: percentile bootstrap over words (within category, the
  same resampled words for both models). Undefined when the RM's gap is zero.
- ``wilson_interval``: a binomial proportion with its Wilson score interval (held-out accuracy).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.stats.contrast import CategoryWords
from analyses.stats.corrections import bonferroni
from analyses.stats.ranking import categorised_scores, median_ranks
from analyses.stats.twosample import cohens_d
from interp.evidence import Estimate, Test


def _subsets(table: pd.DataFrame, by: str, pooled: str | None) -> list[tuple[str, pd.DataFrame]]:
    names = [f for f in ("positive", "negative", "none") if f in set(table[by])]
    parts = [(name, table[table[by] == name]) for name in names]
    if pooled is not None and len(names) != 1:
        parts.append((pooled, table))
    return parts


def _quantiles(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def _bonferroni_family(tests: list, attr: str) -> list:
    """Replace each item's ``attr`` test with its Bonferroni-adjusted copy over the list."""
    adjusted = bonferroni([getattr(t, attr).p for t in tests])
    family = f"{len(tests)} framings ({', '.join(t.label for t in tests)})"
    return [
        replace(t, **{attr: replace(getattr(t, attr), p_adjusted=float(q), correction="Bonferroni",
                                    family=family)})
        for t, q in zip(tests, adjusted)
    ]  # fmt: skip


def sign_flip_test(
    values, n_permutations: int, rng: np.random.Generator
) -> tuple[float, int, bool]:
    """Two-sided sign-flip test of mean(values) = 0: ``(p, draws, exact)``."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0 or np.allclose(v, 0.0):
        return 1.0, 0, True
    observed = abs(v.mean())
    tol = 1e-12 * max(observed, 1.0)
    if 2**n <= n_permutations:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))
        null = np.abs((signs * v).mean(axis=1))
        return float(np.mean(null >= observed - tol)), len(signs), True
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, n))
    null = np.abs((signs * v).mean(axis=1))
    return float((1 + np.sum(null >= observed - tol)) / (1 + n_permutations)), n_permutations, False


@dataclass(frozen=True)
class RankGap:
    """Mean over prompts of ``median_rank(first) - median_rank(second)`` (< 0: first preferred)."""

    label: str
    first: str
    second: str
    gap: Estimate
    d_z: float
    test: Test
    per_prompt: tuple[float, ...]


def rank_gaps(
    scores: pd.DataFrame, lexicon: Lexicon, words: CategoryWords, *, by: str = "framing",
    pooled: str | None = "all", n_permutations: int = 10_000, n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[RankGap, ...]:  # fmt: skip
    """Median-rank gaps per framing (and pooled) of one model's score table (module docstring)."""
    ranked = categorised_scores(scores.drop(columns=["category"], errors="ignore"), lexicon)
    med = median_ranks(ranked)
    wide = med.pivot_table(index=["prompt_key", by], columns="category", values="median_rank")
    a, b = words.pair.first, words.pair.second
    wide = wide.reset_index()
    wide["gap"] = wide[a] - wide[b]
    out = []
    for i, (name, sub) in enumerate(_subsets(wide, by, pooled)):
        rng = np.random.default_rng([seed, 7, i])
        v = sub["gap"].to_numpy(dtype=float)
        n = len(v)
        boot = v[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1) if n else np.array([])
        lo, hi = _quantiles(boot) if n > 1 else (math.nan, math.nan)
        p, draws, exact = sign_flip_test(v, n_permutations, rng)
        how = f"percentile bootstrap over prompts, {n_bootstrap} resamples"
        sd = float(np.std(v, ddof=1)) if n > 1 else math.nan
        name_test = "sign-flip test of the mean gap" + (
            f" (exact, {draws} sign patterns)" if exact else f", {draws} draws"
        )
        out.append(
            RankGap(
                label=str(name),
                first=a,
                second=b,
                gap=Estimate(float(v.mean()) if n else math.nan, lo, hi, 0.95, how, "prompt", n),
                d_z=float(v.mean() / sd) if sd and sd > 0 else math.nan,
                test=Test(
                    name_test,
                    float(v.mean()) if n else math.nan,
                    p,
                    unit="prompt",
                    n=n,
                    p_adjusted=p,
                ),
                per_prompt=tuple(float(x) for x in v),
            )  # fmt: skip
        )
    return tuple(_bonferroni_family(out, "test"))


@dataclass(frozen=True)
class Correlation:
    """Spearman's rho between two models' word preferences on one subset."""

    label: str
    rho: Estimate
    test: Test


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(sps.spearmanr(x, y).statistic)


def _word_values(table: pd.DataFrame, words: list[str]) -> pd.Series:
    return table.groupby("response")["score"].mean().reindex(words)


def preference_correlations(
    first: pd.DataFrame, second: pd.DataFrame, words: list[str], *, by: str = "framing",
    pooled: str | None = "all", n_permutations: int = 10_000, n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[Correlation, ...]:  # fmt: skip
    """Spearman's rho of the two score tables' word means per framing (module docstring)."""
    out = []
    other = dict(_subsets(second, by, pooled))
    for i, (name, sub) in enumerate(_subsets(first, by, pooled)):
        rng = np.random.default_rng([seed, 11, i])
        both = pd.DataFrame(
            {"x": _word_values(sub, words), "y": _word_values(other[name], words)}
        ).dropna()
        x, y = both["x"].to_numpy(), both["y"].to_numpy()
        n = len(x)
        rho = _spearman(x, y)
        idx = rng.integers(0, n, size=(n_bootstrap, n)) if n else np.zeros((0, 0), int)
        boot = np.array([_spearman(x[j], y[j]) for j in idx])
        lo, hi = _quantiles(boot)
        null = np.array([_spearman(x, rng.permutation(y)) for _ in range(n_permutations)])
        extreme = np.sum(np.abs(np.nan_to_num(null)) >= abs(rho) - 1e-12)
        p = float((1 + extreme) / (1 + n_permutations)) if not math.isnan(rho) else math.nan
        how = f"percentile bootstrap over words, {n_bootstrap} resamples"
        out.append(
            Correlation(
                str(name),
                Estimate(rho, lo, hi, 0.95, how, "word", n),
                Test(
                    f"permutation test of Spearman's rho, {n_permutations} draws",
                    rho,
                    p,
                    p_adjusted=p,
                    unit="word",
                    n=n,
                ),
            )  # fmt: skip
        )
    return tuple(_bonferroni_family(out, "test"))


@dataclass(frozen=True)
class GapShare:
    """``d_base / d_rm`` on one subset, with the two standardised gaps."""

    label: str
    share: Estimate
    d_base: float
    d_rm: float


def gap_shares(
    base: pd.DataFrame, rm: pd.DataFrame, words: CategoryWords, *, by: str = "framing",
    pooled: str | None = "all", n_bootstrap: int = 2000, seed: int = 0,
) -> tuple[GapShare, ...]:  # fmt: skip
    """Share of the RM's standardised gap its base already shows, per framing (module docstring)."""
    out = []
    rm_parts = dict(_subsets(rm, by, pooled))
    for i, (name, sub) in enumerate(_subsets(base, by, pooled)):
        rng = np.random.default_rng([seed, 13, i])
        values = []
        for table in (sub, rm_parts[name]):
            values.append(
                (_word_values(table, list(words.first)).to_numpy(),
                 _word_values(table, list(words.second)).to_numpy())
            )  # fmt: skip
        (ba, bb), (ra, rb) = values
        d_base, d_rm = cohens_d(ba, bb), cohens_d(ra, rb)
        share = d_base / d_rm if d_rm and not math.isnan(d_rm) else math.nan
        ia = rng.integers(0, len(ba), size=(n_bootstrap, len(ba)))
        ib = rng.integers(0, len(bb), size=(n_bootstrap, len(bb)))
        boot = np.array([cohens_d(ba[x], bb[y]) / cohens_d(ra[x], rb[y]) for x, y in zip(ia, ib)])
        lo, hi = _quantiles(boot)
        how = (
            f"percentile bootstrap over words within category ({n_bootstrap} resamples, the same "
            "words for both models)"
        )
        n = int(np.sum(~np.isnan(ba)) + np.sum(~np.isnan(bb)))
        out.append(GapShare(str(name), Estimate(share, lo, hi, 0.95, how, "word", n), d_base, d_rm))
    return tuple(out)


def wilson_interval(successes: float, n: int, level: float = 0.95) -> Estimate:
    """The proportion ``successes / n`` with its Wilson score interval (ties may count 1/2)."""
    if n <= 0:
        return Estimate(math.nan, level=level, method="Wilson score interval", n=n)
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, centre - half, centre + half, level, "Wilson score interval", "pair", n)

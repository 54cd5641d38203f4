"""Random-axis control: would any two groups of words show a family difference this large?

The effect is the family x category interaction of Stage 1, per framing: for each (model, prompt)
the median rank of the first category's words minus the second's, divided by the number of words
ranked in that (model, prompt) (so axes with different word counts share one scale: a share of
the ranked list); averaged over the framing's prompts within a model, then over the models of each
family; ``family_b - family_a``. Negative: family b ranks the first category relatively higher
(prefers it more) than family a does.

- ``random_split_null``: the same effect for ``n_splits`` random splits of the same words (the two
  categories' words pooled) into two pseudo-categories of the observed sizes, on the same ranks.
  The observed effect's percentile in that distribution, and the share of splits at least as
  extreme (two-sided, ``(1 + #) / (1 + n_splits)``).
- ``axis_effects``: the same effect for other value axes (every pair of categories of other
  lexicons, or of the same lexicon) among the scored responses, each ranked within its own
  lexicon's words, placed in the random-split distribution of the observed pair.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.stats.contrast import CategoryPair


@dataclass(frozen=True)
class RankMatrix:
    """Ranks of every word in every (model, prompt): ``ranks`` ``[n_units, n_words]`` normalised
    by the number of words ranked in the unit; ``units`` (model, family, prompt_key, framing)."""

    units: pd.DataFrame
    words: tuple[str, ...]
    ranks: np.ndarray


def rank_matrix(ranked: pd.DataFrame) -> RankMatrix:
    """From ``categorised_scores`` output (one row per response and category)."""
    one = ranked.drop_duplicates(["model", "prompt_key", "response"])
    wide = one.pivot_table(
        index=["model", "family", "prompt_key", "framing"], columns="response", values="rank"
    )
    n_ranked = one.groupby(["model", "family", "prompt_key", "framing"])["n_ranked"].first()
    values = wide.to_numpy(float) / n_ranked.reindex(wide.index).to_numpy(float)[:, None]
    return RankMatrix(wide.index.to_frame(index=False), tuple(wide.columns), values)


def model_means_of(gap: np.ndarray, units: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """``gap`` ``[..., n_units]`` -> per-model means ``[..., n_models]`` and each model's family."""
    codes, models = pd.factorize(units["model"])
    fam = units.groupby("model")["family"].first().reindex(models)
    counts = np.bincount(codes)
    sums = np.zeros((*gap.shape[:-1], len(models)))
    for j in range(len(models)):
        sums[..., j] = gap[..., codes == j].sum(axis=-1)
    return sums / counts, fam


def family_effect(gap: np.ndarray, units: pd.DataFrame, families: tuple[str, str]):
    """``gap`` ``[..., n_units]`` -> family_b - family_a of per-model means (over the units)."""
    means, fam = model_means_of(gap, units)
    b = (fam == families[1]).to_numpy()
    a = (fam == families[0]).to_numpy()
    return means[..., b].mean(axis=-1) - means[..., a].mean(axis=-1)


def prompt_grid(gap: np.ndarray, units: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """Per-unit ``gap`` as a ``[n_models, n_prompts]`` grid and each model's family."""
    grid = units.assign(gap=gap).pivot_table(index="model", columns="prompt_key", values="gap")
    fam = units.groupby("model")["family"].first().reindex(grid.index)
    return grid.to_numpy(float), fam


def prompt_bootstrap(grid: np.ndarray, n_bootstrap: int, rng) -> np.ndarray:
    """Model means ``[n_bootstrap, n_models]`` of ``grid`` ``[n_models, n_prompts]`` over prompts
    resampled with replacement (the same resampled prompts for every model)."""
    n = grid.shape[1]
    weights = rng.multinomial(n, np.full(n, 1 / n), size=n_bootstrap)
    return (weights @ grid.T) / weights.sum(axis=1, keepdims=True)


def family_ci(boot: np.ndarray, fam: pd.Series, families, confidence: float = 0.95):
    """Percentile CI of ``family_b - family_a`` from bootstrap model means ``[B, n_models]``."""
    b = (fam == families[1]).to_numpy()
    a = (fam == families[0]).to_numpy()
    diff = boot[:, b].mean(axis=1) - boot[:, a].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(diff, [alpha, 1 - alpha])
    return float(lo), float(hi)


def category_gaps(ranks: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per unit: median normalised rank of the ``first`` columns minus that of ``second``."""
    return np.nanmedian(ranks[:, first], axis=1) - np.nanmedian(ranks[:, second], axis=1)


def split_gaps(ranks: np.ndarray, splits: np.ndarray, n_first: int, block: int = 128) -> np.ndarray:
    """``category_gaps`` for many splits at once: ``splits`` ``[n_splits, n]`` holds column
    indices, the first ``n_first`` of each row are the first pseudo-category. ``[n_splits, U]``."""
    median = np.nanmedian if np.isnan(ranks).any() else np.median
    out = np.empty((len(splits), ranks.shape[0]))
    for start in range(0, len(splits), block):
        part = splits[start : start + block]
        a = median(ranks[:, part[:, :n_first]], axis=2)
        b = median(ranks[:, part[:, n_first:]], axis=2)
        out[start : start + block] = (a - b).T
    return out


@dataclass(frozen=True)
class RandomAxis:
    """The observed pair's effect in one framing against random splits of its words."""

    framing: str
    first: str
    second: str
    n_first: int
    n_second: int
    effect: float
    effect_ci_low: float
    effect_ci_high: float
    n_models: int
    n_prompts: int
    n_splits: int
    null_mean: float
    null_sd: float
    null_q025: float
    null_q975: float
    percentile: float
    p_random_split: float
    unit: str = "random split of the pair's words (ranks held fixed)"
    effect_unit: str = "share of ranked words; CI: percentile bootstrap over prompts"


def random_split_null(
    matrix: RankMatrix,
    words: tuple[Sequence[str], Sequence[str]],
    pair: CategoryPair,
    families: tuple[str, str],
    n_splits: int = 1000,
    seed: int = 0,
    n_bootstrap: int = 1000,
) -> tuple[tuple[RandomAxis, ...], dict[str, np.ndarray]]:
    """Per framing, the observed effect of ``pair`` and its random-split distribution
    (returned too, by framing, for placing other axes)."""
    col = {w: i for i, w in enumerate(matrix.words)}
    first = np.array([col[w] for w in words[0] if w in col])
    second = np.array([col[w] for w in words[1] if w in col])
    pool = np.concatenate([first, second])
    rng = np.random.default_rng([seed, 7])
    splits = np.array([rng.permutation(pool) for _ in range(n_splits)])
    out, nulls = [], {}
    for framing in dict.fromkeys(matrix.units["framing"]):
        rows = (matrix.units["framing"] == framing).to_numpy()
        r, units = matrix.ranks[rows], matrix.units[rows]
        gap = category_gaps(r, first, second)
        observed = float(family_effect(gap, units, families))
        grid, fam = prompt_grid(gap, units)
        lo, hi = family_ci(prompt_bootstrap(grid, n_bootstrap, rng), fam, families)
        null = family_effect(split_gaps(r, splits, len(first)), units, families)
        nulls[framing] = null
        out.append(
            RandomAxis(
                framing=str(framing),
                first=pair.first,
                second=pair.second,
                n_first=len(first),
                n_second=len(second),
                effect=observed,
                effect_ci_low=lo,
                effect_ci_high=hi,
                n_models=grid.shape[0],
                n_prompts=grid.shape[1],
                n_splits=n_splits,
                null_mean=float(null.mean()),
                null_sd=float(null.std(ddof=1)),
                null_q025=float(np.quantile(null, 0.025)),
                null_q975=float(np.quantile(null, 0.975)),
                percentile=float(100 * np.mean(null <= observed)),
                p_random_split=float(
                    (1 + np.sum(np.abs(null) >= abs(observed) - 1e-12)) / (1 + n_splits)
                ),
            )  # fmt: skip
        )
    return tuple(out), nulls


@dataclass(frozen=True)
class AxisEffect:
    """The same effect for another pair of categories (another value axis)."""

    lexicon: str
    framing: str
    first: str
    second: str
    n_first: int
    n_second: int
    effect: float
    percentile_in_random_splits: float
    is_observed_pair: bool


def axis_effects(
    label: str,
    ranked: pd.DataFrame,
    families: tuple[str, str],
    nulls: dict[str, np.ndarray],
    observed: CategoryPair | None = None,
    min_words: int = 5,
    order: Sequence[str] = (),
) -> list[AxisEffect]:
    """The effect for every pair of categories in ``ranked`` with ``min_words`` exclusive words
    each (both orders are the same axis: one is reported, in ``order``, e.g. the lexicon's)."""
    matrix = rank_matrix(ranked)
    col = {w: i for i, w in enumerate(matrix.words)}
    by_word = ranked.groupby("response")["category"].agg(set)
    present = list(dict.fromkeys(ranked["category"]))
    cats = [c for c in order if c in present] + [c for c in present if c not in order]
    out = []
    for c1, c2 in itertools.combinations(cats, 2):
        w1 = [col[w] for w, cs in by_word.items() if c1 in cs and c2 not in cs]
        w2 = [col[w] for w, cs in by_word.items() if c2 in cs and c1 not in cs]
        if len(w1) < min_words or len(w2) < min_words:
            continue
        same = observed is not None and {c1, c2} == {observed.first, observed.second}
        if same and c1 != observed.first:
            c1, c2, w1, w2 = c2, c1, w2, w1
        for framing in dict.fromkeys(matrix.units["framing"]):
            rows = (matrix.units["framing"] == framing).to_numpy()
            gap = category_gaps(matrix.ranks[rows], np.array(w1), np.array(w2))
            effect = float(family_effect(gap, matrix.units[rows], families))
            null = nulls.get(framing)
            pct = float(100 * np.mean(null <= effect)) if null is not None else float("nan")
            out.append(AxisEffect(label, str(framing), c1, c2, len(w1), len(w2), effect, pct, same))
    return out

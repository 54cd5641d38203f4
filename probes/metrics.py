"""Accuracy and AUROC with confidence intervals from a cluster bootstrap over words.

Items of one word (the same response under different prompts) are not independent, so the
bootstrap resamples *words* (groups), stratified by class when every word has one class. Both
metrics are written as functions of per-group weights ``c`` (how often each word is drawn):

- accuracy = ``c . correct_g / c . n_g`` (``correct_g``: correct items of group g);
- AUROC = ``c K c' / ((c . P)(c . N))`` where ``K[g, h]`` counts pairs (positive item of g,
  negative item of h) ranked correctly (ties count 1/2), ``P``/``N`` positives/negatives per group.

``K`` is computed once, so thousands of replicates cost a few matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interp.evidence import Estimate


def auroc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``y`` (1 = positive); ties count 1/2."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def pair_counts(scores: np.ndarray, y: np.ndarray, group_index: np.ndarray, n_groups: int):
    """``K`` ``[G, G]``, positives ``P`` and negatives ``N`` per group (see module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(bool)
    pos_scores, pos_groups = scores[y], group_index[y]
    K = np.zeros((n_groups, n_groups), dtype=np.float64)
    for h in np.unique(group_index[~y]):
        neg = np.sort(scores[(~y) & (group_index == h)])
        below = np.searchsorted(neg, pos_scores, side="left")
        ties = np.searchsorted(neg, pos_scores, side="right") - below
        K[:, h] = np.bincount(pos_groups, weights=below + 0.5 * ties, minlength=n_groups)
    P = np.bincount(group_index, weights=y.astype(float), minlength=n_groups)
    N = np.bincount(group_index, weights=(~y).astype(float), minlength=n_groups)
    return K, P, N


def group_bootstrap_weights(
    group_labels: np.ndarray | None, n_groups: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Replicate counts ``[n_boot, G]``: words drawn with replacement (within class if given)."""
    if group_labels is None:
        return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    counts = np.zeros((n_boot, n_groups), dtype=np.int64)
    for label in np.unique(group_labels):
        members = np.flatnonzero(group_labels == label)
        draws = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), n_boot)
        counts[:, members] = draws
    return counts


@dataclass(frozen=True)
class Scored:
    """Accuracy and AUROC of out-of-fold decision scores, each with a word-bootstrap interval."""

    accuracy: Estimate
    auroc: Estimate


def score_with_ci(
    scores: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Scored:
    """Accuracy (decision ``score > 0`` predicts class 1) and AUROC with cluster-bootstrap CIs."""
    y = np.asarray(y).astype(int)
    _, group_index = np.unique(groups, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    correct = ((np.asarray(scores) > 0).astype(int) == y).astype(float)
    correct_g = np.bincount(group_index, weights=correct, minlength=n_groups)
    size_g = np.bincount(group_index, minlength=n_groups).astype(float)
    K, P, N = pair_counts(scores, y, group_index, n_groups)
    pure = np.all((P == 0) | (N == 0))
    group_labels = (P > 0).astype(int) if pure else None
    rng = np.random.default_rng(seed)
    acc_point = float(correct.mean())
    auc_point = auroc(scores, y)
    if n_boot <= 0:
        nan = float("nan")
        return Scored(Estimate(acc_point, nan, nan, level), Estimate(auc_point, nan, nan, level))
    c = group_bootstrap_weights(group_labels, n_groups, n_boot, rng).astype(np.float64)
    acc = (c @ correct_g) / (c @ size_g)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.einsum("rg,gh,rh->r", c, K, c) / ((c @ P) * (c @ N))
    tail = (1 - level) / 2 * 100
    a_lo, a_hi = np.nanpercentile(acc, [tail, 100 - tail])
    u_lo, u_hi = np.nanpercentile(auc, [tail, 100 - tail])
    return Scored(
        Estimate(acc_point, float(a_lo), float(a_hi), level),
        Estimate(auc_point, float(u_lo), float(u_hi), level),
    )

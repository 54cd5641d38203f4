"""The patching contrast's test: category labels permuted among words.

The gap change of a patch is a two-group comparison of words, so the null distribution comes from
shuffling which words are in which category. Checked against brute-force enumeration, for its
level on skewed changes over 600 simulated data sets (where the old sign-flip test of centred
changes, written out here as the reference, is anti-conservative), and for p-value resolution
below the Bonferroni threshold of a large sweep.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from analyses.stats.patch_effects import permutation_p, splits_for


def test_label_permutation_equals_brute_force():
    rng = np.random.default_rng(3)
    changes = rng.normal(size=(3, 9)) + np.r_[np.full(4, 0.7), np.zeros(5)]
    changes[2, 1] = np.nan  # a word missing in one patch: tested on the words it has
    p, used, exact = permutation_p(changes, 4, n_permutations=10_000, seed=0)
    assert exact and used == math.comb(9, 4)
    for row, got in zip(changes, p, strict=True):
        ok = ~np.isnan(row)
        first = [i for i in range(4) if ok[i]]
        words = np.flatnonzero(ok)
        x = row[ok]
        obs = abs(row[first].mean() - row[[i for i in range(4, 9)]].mean())
        count = total = 0
        for idx in itertools.combinations(range(len(words)), len(first)):
            mask = np.zeros(len(words), bool)
            mask[list(idx)] = True
            count += abs(x[mask].mean() - x[~mask].mean()) >= obs - 1e-12
            total += 1
        assert got == pytest.approx(count / total)


def _sign_flip(change: np.ndarray, na: int, n_flips: int, rng) -> np.ndarray:
    """The previous test (reference): centred word changes with random signs."""
    nb = change.shape[1] - na
    w = np.r_[np.full(na, 1 / na), np.full(nb, -1 / nb)]
    centred = change - change.mean(axis=1, keepdims=True)
    observed = np.abs((centred * w).sum(axis=1))
    flips = rng.choice([-1.0, 1.0], size=(n_flips, len(w)))
    null = np.abs((centred * w) @ flips.T)
    return (1 + (null >= observed[:, None] - 1e-12).sum(axis=1)) / (1 + n_flips)


def test_nominal_level_on_skewed_changes_where_sign_flip_is_not():
    n_sets, na, nb = 600, 8, 60
    rng = np.random.default_rng(11)
    changes = rng.lognormal(0.0, 1.5, size=(n_sets, na + nb))  # same distribution: the null
    p, used, exact = permutation_p(changes, na, n_permutations=999, seed=1)
    assert not exact and used == 999
    se = math.sqrt(0.05 * 0.95 / n_sets)
    assert abs(np.mean(p <= 0.05) - 0.05) < 3 * se
    flip = _sign_flip(changes, na, 999, rng)
    assert np.mean(flip <= 0.05) > 0.05 + 2 * se  # the old test over-rejects here
    # and the new test finds a real difference
    shifted = changes + np.r_[np.full(na, 15.0), np.zeros(nb)]
    assert np.mean(permutation_p(shifted[:100], na, 999, 1)[0] <= 0.05) > 0.8


def test_resolution_stays_below_the_sweep_threshold():
    for n_patches in (1, 30, 300):
        draws = splits_for(1000, n_patches)
        assert n_patches / (1 + draws) < 0.05  # smallest Bonferroni-corrected p
    assert splits_for(10_000, 4) == 10_000  # a larger request is kept
    changes = np.random.default_rng(0).normal(size=(300, 40)) + np.r_[np.full(20, 5.0),
                                                                      np.zeros(20)]  # fmt: skip
    p, used, _ = permutation_p(changes, 20, splits_for(500, 300), seed=0)
    assert used == splits_for(500, 300) and np.all(p * 300 < 0.05)

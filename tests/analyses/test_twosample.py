"""Statistical building blocks against scipy/statsmodels references and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from analyses.stats.corrections import benjamini_hochberg, bonferroni
from analyses.stats.twosample import bootstrap_ci, cohens_d, permutation_welch_test, welch_t


def _abs_welch(a, b, axis=-1):
    return np.abs(sps.ttest_ind(a, b, equal_var=False, axis=axis).statistic)


def test_welch_t_matches_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 13), rng.normal(0.4, 3, 9)
    t, df = welch_t(x, y)
    ref = sps.ttest_ind(x, y, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-12)
    assert df == pytest.approx(ref.df, rel=1e-12)
    assert math.isnan(welch_t([1.0], [2.0, 3.0])[0])
    assert math.isnan(welch_t([1.0, 1.0], [2.0, 2.0])[0])  # zero variance: undefined


def test_permutation_hand_computed():
    # C(6,3) = 20 splits; only the observed split and its mirror reach |t| of the observed
    res = permutation_welch_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], n_permutations=100)
    assert res.exact and res.n_permutations == 20
    assert res.p == pytest.approx(2 / 20)
    assert res.t == pytest.approx(-3 / math.sqrt(2 / 3))


def test_exact_permutation_matches_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 7), rng.normal(1, 2, 6)
    res = permutation_welch_test(x, y, n_permutations=10_000)
    ref = sps.permutation_test(
        (x, y), _abs_welch, n_resamples=np.inf, alternative="greater", vectorized=True
    )
    assert res.exact and res.n_permutations == math.comb(13, 7)
    assert res.p == pytest.approx(ref.pvalue, abs=1e-12)
    assert res.p_parametric == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue)


def test_random_permutation_fixed_seed():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 9), rng.normal(0.9, 1.5, 8)
    a = permutation_welch_test(x, y, n_permutations=4000, seed=123)
    b = permutation_welch_test(x, y, n_permutations=4000, seed=123)
    c = permutation_welch_test(x, y, n_permutations=4000, seed=7)
    assert not a.exact and a == b
    assert a.p != c.p  # another seed draws other splits
    exact = permutation_welch_test(x, y, n_permutations=10**6)  # C(17,9) = 24310 splits
    assert exact.exact
    se = math.sqrt(exact.p * (1 - exact.p) / 4000)
    assert abs(a.p - exact.p) < 4 * se
    # the (1 + k) / (1 + n) convention: p is never 0
    far = permutation_welch_test(np.arange(30.0), np.arange(30.0) + 100, n_permutations=500)
    assert far.p == pytest.approx(1 / 501)


def test_cohens_d_hand_computed():
    assert cohens_d([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(-3.0)
    # unequal sizes: pooled variance ((3-1)*1 + (2-1)*0.5) / 3 = 5/6
    assert cohens_d([1.0, 2.0, 3.0], [1.0, 2.0]) == pytest.approx(0.5 / math.sqrt(5 / 6))


def test_bootstrap_ci():
    rng = np.random.default_rng(3)
    x, y = rng.normal(5, 1, 40), rng.normal(3, 1, 40)
    a = bootstrap_ci(x, y, n_bootstrap=3000, seed=1)
    assert a == bootstrap_ci(x, y, n_bootstrap=3000, seed=1)
    assert a.diff_low < x.mean() - y.mean() < a.diff_high
    assert 1.0 < a.diff_low and a.diff_high < 3.0
    assert a.d_low < cohens_d(x, y) < a.d_high
    # close to the normal-theory interval of a difference in means
    se = math.sqrt(x.var(ddof=1) / 40 + y.var(ddof=1) / 40)
    assert a.diff_high - a.diff_low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bonferroni_and_bh_hand_values():
    assert bonferroni([0.01, 0.04, 0.5]).tolist() == pytest.approx([0.03, 0.12, 1.0])
    assert benjamini_hochberg([0.01, 0.02, 0.03, 0.04, 0.05]).tolist() == pytest.approx([0.05] * 5)
    # step-up: 0.04*3/2 = 0.06 > 0.045*3/3, so the monotone minimum gives 0.045
    assert benjamini_hochberg([0.001, 0.045, 0.04]).tolist() == pytest.approx([0.003, 0.045, 0.045])
    nan = benjamini_hochberg([0.01, np.nan, 0.02])
    assert np.isnan(nan[1]) and nan[0] == pytest.approx(0.02) and nan[2] == pytest.approx(0.02)
    assert bonferroni([0.2, np.nan]).tolist()[0] == pytest.approx(0.2)


def test_corrections_match_statsmodels_and_scipy():
    p = np.random.default_rng(4).uniform(0, 0.2, 25)
    assert bonferroni(p) == pytest.approx(multipletests(p, method="bonferroni")[1])
    assert benjamini_hochberg(p) == pytest.approx(multipletests(p, method="fdr_bh")[1])
    assert benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p, method="bh"))


def test_welch_df_with_one_constant_group_matches_scipy():
    x, y = [3.0, 3.0, 3.0, 3.0], [1.0, 2.5, 4.0, 0.5, 2.0]
    t, df = welch_t(x, y)
    ref = sps.ttest_ind(x, y, equal_var=False)
    assert t == pytest.approx(ref.statistic) and df == pytest.approx(ref.df) and df == 4.0
    assert permutation_welch_test(x, y).p_parametric == pytest.approx(ref.pvalue)

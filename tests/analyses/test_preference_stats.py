"""``analyses.stats.preference`` against slow, obviously correct references written here."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.stats.contrast import CategoryPair, category_words
from analyses.stats.preference import (
    gap_shares,
    preference_correlations,
    rank_gaps,
    sign_flip_test,
    wilson_interval,
)
from tests.helpers import AGENCY, COMMUNION, WORD_CATEGORIES

PAIR = CategoryPair("Agency", "Communion")
PROMPTS = [("best_ever_one", "positive"), ("greatest_world_one", "positive"),
           ("good_time_one", "positive"), ("worst_ever_one", "negative"),
           ("bad_world_one", "negative")]  # fmt: skip


def _table(seed: int = 0, shift: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for key, framing in PROMPTS:
        for w in AGENCY + COMMUNION:
            bonus = shift if w in AGENCY else 0.0
            rows.append({"model": "m", "family": "f", "kind": "rm", "prompt_key": key,
                         "prompt": key, "framing": framing, "response": w, "token_id": -1,
                         "score": float(rng.normal() + bonus)})  # fmt: skip
    return pd.DataFrame(rows)


def _design():
    return category_words(WORD_CATEGORIES, PAIR)


def _lexicon():
    return Lexicon("toy", "test", "1", {"Agency": AGENCY, "Communion": COMMUNION})


def test_sign_flip_exact_equals_enumeration():
    v = np.array([0.3, -1.2, 2.0, 0.7, 1.1])
    p, draws, exact = sign_flip_test(v, 10_000, np.random.default_rng(0))
    means = [abs(np.mean(np.array(s) * v)) for s in itertools.product((-1, 1), repeat=5)]
    assert exact and draws == 32
    assert p == pytest.approx(np.mean(np.array(means) >= abs(v.mean()) - 1e-12))


def test_sign_flip_sampled_is_close_to_exact():
    v = np.random.default_rng(3).normal(0.4, 1.0, size=14)
    p_exact, _, exact = sign_flip_test(v, 2**14, np.random.default_rng(0))
    p_mc, draws, mc_exact = sign_flip_test(v, 4000, np.random.default_rng(1))
    assert exact and not mc_exact and draws == 4000
    assert abs(p_exact - p_mc) < 0.03


def test_rank_gaps_equal_a_hand_computation():
    table = _table()
    gaps = {g.label: g for g in rank_gaps(table, _lexicon(), _design(), n_permutations=1000,
                                           n_bootstrap=200)}  # fmt: skip
    per_prompt = {}
    for key, g in table.groupby("prompt_key"):
        ranks = g.set_index("response")["score"].rank(ascending=False)
        per_prompt[key] = ranks[list(AGENCY)].median() - ranks[list(COMMUNION)].median()
    positive = [per_prompt[k] for k, f in PROMPTS if f == "positive"]
    assert gaps["positive"].gap.value == pytest.approx(np.mean(positive))
    assert gaps["all"].gap.value == pytest.approx(np.mean(list(per_prompt.values())))
    assert gaps["positive"].test.n == 3 and gaps["all"].test.n == 5
    assert gaps["all"].gap.unit == "prompt"
    assert gaps["positive"].test.correction == "Bonferroni"
    raw = gaps["negative"].test.p
    assert gaps["negative"].test.p_adjusted == pytest.approx(min(1.0, 3 * raw))


def test_preference_correlation_equals_scipy_and_is_significant_when_it_should_be():
    rm = _table(seed=1, shift=0.0)
    base = rm.assign(score=rm["score"] * 2.0 + 0.01 * np.arange(len(rm)) % 0.3)
    words = list(AGENCY + COMMUNION)
    out = {c.label: c for c in preference_correlations(base, rm, words, n_permutations=500,
                                                        n_bootstrap=300)}  # fmt: skip
    means_rm = rm.groupby("response")["score"].mean()[words]
    means_base = base.groupby("response")["score"].mean()[words]
    expected = sps.spearmanr(means_base, means_rm).statistic
    assert out["all"].rho.value == pytest.approx(expected)
    assert out["all"].rho.low <= out["all"].rho.value <= out["all"].rho.high
    assert out["all"].test.p < 0.01 and out["all"].rho.n == 12
    unrelated = _table(seed=9, shift=0.0)
    other = {c.label: c for c in preference_correlations(unrelated, rm, words,
                                                          n_permutations=500, n_bootstrap=100)}  # fmt: skip
    assert other["all"].test.p > out["all"].test.p


def test_gap_share_is_one_for_a_copy_and_minus_one_for_a_mirror():
    rm = _table(seed=2, shift=1.0)
    same = {s.label: s for s in gap_shares(rm, rm, _design(), n_bootstrap=200)}
    mirror = {s.label: s for s in gap_shares(rm.assign(score=-rm["score"]), rm, _design(),
                                              n_bootstrap=200)}  # fmt: skip
    assert same["all"].share.value == pytest.approx(1.0)
    assert same["all"].share.low == pytest.approx(1.0) and same["all"].share.high == pytest.approx(
        1.0
    )
    assert mirror["all"].share.value == pytest.approx(-1.0)


def test_gap_share_equals_ratio_of_cohens_d():
    rm, base = _table(seed=4, shift=1.0), _table(seed=5, shift=0.3)
    share = {s.label: s for s in gap_shares(base, rm, _design(), n_bootstrap=50)}["positive"]

    def d(table):
        m = table[table["framing"] == "positive"].groupby("response")["score"].mean()
        a, c = m[list(AGENCY)], m[list(COMMUNION)]
        pooled = np.sqrt(((len(a) - 1) * a.var() + (len(c) - 1) * c.var()) / (len(a) + len(c) - 2))
        return (a.mean() - c.mean()) / pooled

    assert share.d_base == pytest.approx(d(base)) and share.d_rm == pytest.approx(d(rm))
    assert share.share.value == pytest.approx(d(base) / d(rm))


def test_wilson_interval_equals_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    est = wilson_interval(36, 60)
    low, high = proportion_confint(36, 60, alpha=0.05, method="wilson")
    assert est.value == pytest.approx(0.6)
    assert est.low == pytest.approx(low) and est.high == pytest.approx(high)

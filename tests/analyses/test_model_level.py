"""Model-level inference on synthetic multi-model designs built here (the released sample has two
models, which allows no model-level test): brute-force enumeration, nlme's df rule, the
random-slopes fit, a planted family effect recovered, and the nominal rate under the null."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.stats.mixed_model import factor_levels, fit_mixed_model
from analyses.stats.model_level import assignment_test
from analyses.stats.stage1 import stage1
from analyses.stats.twosample import split_test

POSITIVE = ("best", "greatest", "good")


@pytest.mark.parametrize("sizes", [(3, 3), (2, 4), (1, 3), (4, 6)])
def test_assignment_test_equals_brute_force(sizes):
    n_a, n_b = sizes
    rng = np.random.default_rng(sum(sizes))
    values = rng.normal(size=n_a + n_b) + np.r_[np.zeros(n_a), np.full(n_b, 0.8)]
    is_b = np.r_[np.zeros(n_a, bool), np.ones(n_b, bool)]

    def stat(mask):
        a, b = values[~mask], values[mask]
        if min(len(a), len(b)) >= 2:
            return sps.ttest_ind(b, a, equal_var=False).statistic
        return b.mean() - a.mean()

    observed = abs(stat(is_b))
    count = total = 0
    for idx in itertools.combinations(range(n_a + n_b), n_b):
        mask = np.zeros(n_a + n_b, bool)
        mask[list(idx)] = True
        count += abs(stat(mask)) >= observed - 1e-9
        total += 1
    res = assignment_test(values, is_b)
    assert res.exact and res.n_assignments == total == math.comb(n_a + n_b, n_b)
    assert res.p == pytest.approx(count / total)
    assert res.statistic == pytest.approx(stat(is_b))
    assert res.p_se == 0.0


def test_two_models_give_p_one_and_monte_carlo_has_a_standard_error():
    res = assignment_test([3.0, 7.0], [False, True])
    assert res.p == 1.0 and res.n_assignments == 2 and "one model per family" in res.note
    rng = np.random.default_rng(0)
    values = rng.normal(size=30) + np.r_[np.zeros(15), np.full(15, 1.0)]
    mc = assignment_test(values, np.arange(30) >= 15, max_enumerate=1000, n_draws=4000)
    assert not mc.exact and mc.n_assignments == 4000
    assert mc.p >= 1 / 4001
    assert mc.p_se == pytest.approx(math.sqrt(mc.p * (1 - mc.p) / 4000))


def synthetic_med(n_models=10, n_prompts=8, family_effect=0.0, slope_sd=0.0, seed=0):
    """Median-rank-like table: models x prompts x 2 categories x 2 framings, 5 models per family."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(n_models):
        fam = "Gemma" if m < n_models // 2 else "Llama"
        u, slope = rng.normal(0, 2), rng.normal(0, slope_sd)
        for framing in ("positive", "negative"):
            for p in range(n_prompts):
                for cat in ("Agency", "Communion"):
                    shift = (family_effect if fam == "Llama" else 0.0) * (cat == "Agency")
                    y = 50 + u + (slope if cat == "Agency" else 0.0) - shift + rng.normal(0, 3)
                    rows.append((f"{fam}-{m}", fam, f"{framing[:3]}{p}", framing, cat, y))
    return pd.DataFrame(rows, columns=["model", "family", "prompt_key", "framing", "category",
                                       "median_rank"])  # fmt: skip


def test_containment_df_on_ten_models():
    import statsmodels.formula.api as smf

    med = synthetic_med(family_effect=2.0)
    fit = fit_mixed_model(med, factor_levels(med))
    terms = {t.term: t for t in fit.terms}
    n_obs, n_models = len(med), 10
    assert terms["family[T.Llama]"].df == n_models - 2 == 8
    assert terms["family[T.Llama]"].stratum == "model"
    for name, t in terms.items():
        if name != "family[T.Llama]":
            assert t.df == n_obs - n_models - 6 and t.stratum == "residual", name
    data = med.copy()
    for col, levels in (("family", ["Gemma", "Llama"]), ("category", ["Agency", "Communion"]),
                        ("framing", ["positive", "negative"])):  # fmt: skip
        data[col] = pd.Categorical(data[col], categories=levels)
    ref = smf.mixedlm("median_rank ~ family * category * framing", data, groups=data["model"])
    ref = ref.fit(reml=True)
    t = terms["family[T.Llama]"]
    assert t.coef == pytest.approx(ref.fe_params["family[T.Llama]"], rel=1e-6)
    tval = ref.fe_params["family[T.Llama]"] / ref.bse_fe["family[T.Llama]"]
    assert t.p == pytest.approx(2 * sps.t.sf(abs(tval), 8), rel=1e-5)
    # a Wald z (statsmodels' own p) is smaller than the t on 8 df: the df matter
    assert ref.pvalues["family[T.Llama]"] < t.p


def test_random_slopes_fit_and_its_df():
    import statsmodels.formula.api as smf

    med = synthetic_med(slope_sd=4.0, seed=3)  # models differ in their own category slopes
    levels = factor_levels(med)
    slopes = fit_mixed_model(med, levels, random_slopes=True)
    intercept = fit_mixed_model(med, levels)
    assert slopes.random == "(1 + category | model)" and slopes.converged
    by = {t.term: t for t in slopes.terms}
    key = "family[T.Llama]:category[T.Communion]"
    assert by[key].df == 8 and by[key].stratum == "model"
    assert by["category[T.Communion]"].df == 8
    assert by["framing[T.negative]"].stratum == "residual"
    data = med.copy()
    for col, lv in levels.items():
        data[col] = pd.Categorical(data[col], categories=lv)
    ref = smf.mixedlm("median_rank ~ family * category * framing", data, groups=data["model"],
                      re_formula="~category").fit(reml=True)  # fmt: skip
    assert by[key].coef == pytest.approx(ref.fe_params[key], rel=1e-5)
    assert by[key].se == pytest.approx(ref.bse_fe[key], rel=1e-4)
    # with real slope variance, the random-intercept model is overconfident about the interaction
    assert {t.term: t for t in intercept.terms}[key].se < by[key].se


def _words_lexicon(n=20) -> Lexicon:
    return Lexicon("toy", "s", "1", {"Agency": [f"ag{i}" for i in range(n)],
                                     "Communion": [f"co{i}" for i in range(n)]})  # fmt: skip


def planted_scores(effect: float, n_models=10, seed=0) -> pd.DataFrame:
    """RM scores of 10 models (5 per family), 12 prompts, 40 words; Llama models add ``effect``
    to agency words (model-specific noise on the category preference too)."""
    rng = np.random.default_rng(seed)
    lex = _words_lexicon()
    keys = [f"{a}_{s}_one" for a in ("best", "greatest", "worst", "bad")
            for s in ("ever", "world", "time")]  # fmt: skip
    word_effect = {w: rng.normal() for ws in lex.categories.values() for w in ws}
    rows = []
    for m in range(n_models):
        fam = "Gemma" if m < n_models // 2 else "Llama"
        own = rng.normal(0, 0.3)
        for key in keys:
            framing = "positive" if key.startswith(POSITIVE) else "negative"
            for cat, ws in lex.categories.items():
                bonus = (effect if fam == "Llama" else 0.0) + own if cat == "Agency" else 0.0
                for w in ws:
                    score = word_effect[w] + bonus + rng.normal(0, 1)
                    rows.append((f"{fam}-{m}", fam, "rm", key, "", framing, w, None, score))
    return pd.DataFrame(rows, columns=["model", "family", "kind", "prompt_key", "prompt",
                                       "framing", "response", "token_id", "score"])  # fmt: skip


def test_planted_family_effect_is_recovered_by_both_views():
    res = stage1(planted_scores(2.0), _words_lexicon(), n_bootstrap=200, seed=1)
    for p in res.panels:
        assert p.p_bonferroni < 0.001 and p.stars == "***"  # the paper's view
        assert p.p_model_level == pytest.approx(2 / 252)  # the most extreme 5/5 assignment
        assert p.p_model_level_bonferroni < 0.05
        assert p.model_diff_ci_low * p.model_diff_ci_high > 0  # cluster-bootstrap CI excludes 0
        assert (p.model_diff < 0) == (p.category == "Agency")  # Llama ranks agency higher
    slopes = {t.term: t for t in res.random_slopes.terms}
    assert slopes["family[T.Llama]:category[T.Communion]"].p < 0.01
    assert {t.term: t for t in res.mixed_model.terms}["family[T.Llama]"].df == 8


def test_model_level_test_is_nominal_under_the_null_and_the_prompt_level_one_is_not():
    """400 null data sets (no family effect, models differ): the exact test over assignments
    rejects at its nominal size; the paper's prompt-level Welch test does not."""
    n_sets, n_models, n_prompts = 400, 10, 27
    rng = np.random.default_rng(42)
    model_effect = rng.normal(0, 2.0, size=(n_sets, n_models, 1))
    y = 50 + model_effect + rng.normal(0, 3.0, size=(n_sets, n_models, n_prompts))
    is_b = np.arange(n_models) >= 5
    _, p, n_splits, exact = split_test(y.mean(axis=2), is_b)  # all 252 assignments
    assert exact and n_splits == 252
    size = 12 / 252  # exact size of the 5/5 test at 0.05: the 12 most extreme of 252
    rate = float(np.mean(p <= 0.05))
    assert abs(rate - size) < 3 * math.sqrt(size * (1 - size) / n_sets)
    prompt_level = sps.ttest_ind(y[:, is_b].reshape(n_sets, -1), y[:, ~is_b].reshape(n_sets, -1),
                                 axis=1, equal_var=False).pvalue  # fmt: skip
    assert np.mean(prompt_level <= 0.05) > 0.3  # prompts of one model are not independent


@pytest.mark.slow
def test_mixed_model_family_test_is_nominal_under_the_null():
    """Slow (about a minute: 200 REML fits): the random-intercept model's family t on
    containment df rejects at about 5 % when there is no family effect."""
    rejections = []
    for seed in range(200):
        med = synthetic_med(n_prompts=6, seed=100 + seed)
        med = med[med["framing"] == "positive"]
        fit = fit_mixed_model(med, factor_levels(med))
        rejections.append({t.term: t for t in fit.terms}["family[T.Llama]"].p <= 0.05)
    assert abs(np.mean(rejections) - 0.05) < 3 * math.sqrt(0.05 * 0.95 / 200)

"""Random-axis control, specification curve, power and effect sizes, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.stats.contrast import CategoryPair
from analyses.stats.effect_sizes import partial_eta_squared_ci
from analyses.stats.power import power_curve, power_table
from analyses.stats.random_axis import axis_effects, random_split_null, rank_matrix
from analyses.stats.ranking import categorised_scores, median_ranks, word_forms
from analyses.stats.specification import specification_curve
from tests.analyses.test_model_level import _words_lexicon, planted_scores

PAIR = CategoryPair("Agency", "Communion")


def hand_effect(ranked: pd.DataFrame, first: set, second: set, framing: str) -> float:
    """Llama - Gemma of the per-(model, prompt) median normalised rank gap, plain pandas."""
    one = ranked.drop_duplicates(["model", "prompt_key", "response"])
    one = one[one["framing"] == framing].assign(r=lambda d: d["rank"] / d["n_ranked"])
    rows = []
    for (model, fam, _key), g in one.groupby(["model", "family", "prompt_key"]):
        gap = g.loc[g["response"].isin(first), "r"].median() - g.loc[
            g["response"].isin(second), "r"].median()  # fmt: skip
        rows.append((model, fam, gap))
    df = pd.DataFrame(rows, columns=["model", "family", "gap"])
    per_model = df.groupby(["model", "family"])["gap"].mean().groupby("family").mean()
    return float(per_model["Llama"] - per_model["Gemma"])


@pytest.fixture(scope="module")
def planted():
    scores = planted_scores(1.5, seed=4)
    return scores, categorised_scores(scores, _words_lexicon())


def test_random_axis_observed_effect_and_a_split_by_hand(planted):
    scores, ranked = planted
    lex = _words_lexicon()
    first, second = lex.words("Agency"), lex.words("Communion")
    ra, nulls = random_split_null(rank_matrix(ranked), (first, second), PAIR, ("Gemma", "Llama"),
                                  n_splits=300, seed=2)  # fmt: skip
    for r in ra:
        assert r.effect == pytest.approx(hand_effect(ranked, set(first), set(second), r.framing))
        assert r.effect < 0  # planted: Llama prefers agency words
        assert r.percentile < 2.5 and r.p_random_split < 0.05  # beyond any random split
        assert r.effect_ci_low < r.effect < r.effect_ci_high
        assert abs(r.null_mean) < 3 * r.null_sd / math.sqrt(r.n_splits) + 0.01
    # a random split of the same words is an axis with no planted effect: not extreme
    rng = np.random.default_rng(0)
    words = np.array(first + second)
    perm = rng.permutation(len(words))
    shuffled = Lexicon("shuffled", "s", "1", {"Agency": list(words[perm[:20]]),
                                              "Communion": list(words[perm[20:]])})  # fmt: skip
    other = axis_effects("shuffled", categorised_scores(scores, shuffled), ("Gemma", "Llama"),
                         nulls)  # fmt: skip
    assert len(other) == 2
    for a in other:
        hand = hand_effect(categorised_scores(scores, shuffled), set(shuffled.words("Agency")),
                           set(shuffled.words("Communion")), a.framing)  # fmt: skip
        assert a.effect == pytest.approx(hand)
        assert 2.5 < a.percentile_in_random_splits < 97.5


def _variant_scores() -> tuple[pd.DataFrame, Lexicon]:
    """One family per model (2 models), responses with case/space variants and pronoun words."""
    rng = np.random.default_rng(1)
    lex = Lexicon("big2like", "s", "1", {
        "Agency": ["power", "success", "strength", "victory", "skill"],
        "Communion": ["love", "care", "trust", "warmth", "we", "us", "our*"]})  # fmt: skip
    words = ["power", "success", "strength", "victory", "skill", "love", "care", "trust",
             "warmth", "we", "us", "ours"]  # fmt: skip
    rows = []
    for model, fam in (("g", "Gemma"), ("l", "Llama")):
        for key in ("best_ever_one", "best_world_single", "worst_ever_one", "worst_time_please"):
            framing = "positive" if key.startswith("best") else "negative"
            for w in words:
                for form in (w, " " + w.capitalize()):
                    bump = 4.0 if (fam == "Llama" and form.startswith(" ")) else 0.0
                    rows.append((model, fam, "rm", key, "", framing, form, None,
                                 rng.normal() + bump * (w in ("love", "care", "trust"))))  # fmt: skip
    cols = ["model", "family", "kind", "prompt_key", "prompt", "framing", "response",
            "token_id", "score"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols), lex


def test_specification_curve_choices_and_a_row_by_hand():
    scores, lex = _variant_scores()
    table, skipped = specification_curve(scores, [("big2like", lex)], PAIR, ("Gemma", "Llama"),
                                         n_bootstrap=200)  # fmt: skip
    assert not skipped
    assert set(table["pronouns"]) == {"kept", "dropped"}
    assert set(table["word_forms"]) == {"exact", "merged"}
    assert set(table["concision"]) == {"all", "one", "single", "please"}
    assert len(table) == 2 * 2 * (3 + 3) * 3  # pronouns x forms x (framing, style) x contrasts
    assert set(table["framing"]) == {"positive", "negative"}
    fam = table[table["contrast"] == "Llama - Gemma"]
    assert fam["p_model_level"].eq(1.0).all()  # two models
    # one specification by hand: merged forms, pronouns dropped, positive prompts, all styles
    row = fam[(fam["word_forms"] == "merged") & (fam["pronouns"] == "dropped")
              & (fam["framing"] == "positive") & (fam["concision"] == "all")].iloc[0]  # fmt: skip
    merged = word_forms(scores[scores["framing"] == "positive"], "merged")
    dropped = lex.drop_pronouns()
    ranked = categorised_scores(merged, dropped)
    hand = hand_effect(ranked, set(dropped.words("Agency")), set(dropped.words("Communion")),
                       "positive")  # fmt: skip
    assert row["estimate"] == pytest.approx(hand)
    assert row["n_second"] == 4  # pronoun entries dropped
    assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    # merging the variants changes the answer here (Llama's " Love" forms score higher)
    exact = fam[(fam["word_forms"] == "exact") & (fam["pronouns"] == "dropped")
                & (fam["framing"] == "positive") & (fam["concision"] == "all")].iloc[0]  # fmt: skip
    assert exact["estimate"] != pytest.approx(row["estimate"])


def test_word_forms():
    df = pd.DataFrame({"model": "m", "prompt_key": "p", "response": ["Love", " love", "love", "x"],
                       "score": [1.0, 3.0, 2.0, 0.0]})  # fmt: skip
    assert word_forms(df, "exact")["response"].tolist() == ["love", "x"]
    merged = word_forms(df, "merged").set_index("response")["score"]
    assert merged.to_dict() == {"love": 3.0, "x": 0.0}


def test_power_curve_size_and_mde():
    curve = power_curve(5, 5, 0.05, n_sims=1000, seed=0)
    assert abs(curve[0] - 12 / 252) < 3 * math.sqrt(0.05 * 0.95 / 1000)  # size at delta = 0
    assert np.all(np.diff(curve) > -0.05) and curve[-1] > 0.99
    assert power_curve(1, 1, 0.05, n_sims=100).max() == 0.0  # one model per family: never
    med = median_ranks(categorised_scores(planted_scores(0.5, seed=2), _words_lexicon()))
    panels = [("positive", "Agency"), ("negative", "Agency")]
    rows = power_table(med, ("Gemma", "Llama"), panels, planned_per_family=10, n_sims=300)
    observed = [r for r in rows if r.design == "observed"]
    planned = [r for r in rows if r.design.startswith("planned")]
    assert all(r.n_models_a == 5 and r.alpha_per_test == 0.025 for r in observed)
    assert all(r.mde is not None and p.mde < r.mde for r, p in zip(observed, planned))
    sub = med[(med["framing"] == "positive") & (med["category"] == "Agency")]
    within = sub.groupby("model")["median_rank"].var(ddof=1).mean()
    assert observed[0].sigma_within == pytest.approx(math.sqrt(within))


def test_partial_eta_squared_ci_inverts_the_noncentral_f():
    f, df1, df2 = 6.0, 2, 40
    lo, hi = partial_eta_squared_ci(f, df1, df2)
    to_lam = lambda eta: eta / (1 - eta) * (df1 + df2 + 1)  # noqa: E731
    assert sps.ncf.cdf(f, df1, df2, to_lam(lo)) == pytest.approx(0.975, abs=1e-6)
    assert sps.ncf.cdf(f, df1, df2, to_lam(hi)) == pytest.approx(0.025, abs=1e-6)
    assert partial_eta_squared_ci(0.2, 2, 40)[0] == 0.0  # F too small: the lower bound is 0

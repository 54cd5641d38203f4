"""Implicit reward (MWLR): arithmetic, vocabulary join, merges, category test, end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from analyses.inputs.lexicon import Lexicon
from analyses.runs.implicit_reward import ImplicitRewardSettings, run_implicit_reward
from analyses.stats.contrast import CategoryPair
from analyses.stats.implicit_reward import (
    category_contrasts,
    dedupe_by_string,
    join_distributions,
    lexicon_word_means,
    mwlr,
)
from interp.errors import UserError


def test_mwlr_hand_values():
    p, q = 0.2, 0.05
    expected = 0.5 * (p + q) * (math.log(q) - math.log(p))
    assert mwlr(np.log([p]), np.log([q]))[0] == pytest.approx(expected)
    assert expected < 0  # model 1 likes it more
    assert mwlr(np.log([0.3]), np.log([0.3]))[0] == 0.0
    # antisymmetric in the two models
    assert mwlr(np.log([q]), np.log([p]))[0] == pytest.approx(-expected)


def test_dedupe_keeps_highest_logprob():
    df = dedupe_by_string(["a", "b", "a", "c", "b"], np.array([-3.0, -1.0, -2.0, -5.0, -1.0]))
    rows = {r.response: (r.logprob, r.token_id) for r in df.itertuples()}
    assert rows == {"a": (-2.0, 2), "b": (-1.0, 1), "c": (-5.0, 3)}  # tie on b keeps lower id


def test_join_on_decoded_string():
    strings_p = ["Love", " love", "war", "x", "Love"]
    logp = np.log([0.4, 0.1, 0.2, 0.05, 0.25])
    strings_q = [" love", "war", "Love", "peace"]
    logq = np.log([0.3, 0.1, 0.2, 0.4])
    t = join_distributions(strings_p, logp, strings_q, logq).set_index("response")
    assert set(t.index) == {"Love", " love", "war"}  # x and peace are in one vocabulary only
    assert t.loc["Love", "logp"] == pytest.approx(math.log(0.4))  # the higher duplicate
    assert t.loc["Love", "token_id_p"] == 0 and t.loc["Love", "token_id_q"] == 2
    assert t.loc["war", "log_ratio"] == pytest.approx(math.log(0.1 / 0.2))
    assert t.loc["war", "mwlr"] == pytest.approx(0.5 * 0.3 * math.log(0.5))


def test_merge_variants_mean_and_sum():
    strings_p, logp = ["Love", " love", "war"], np.log([0.4, 0.1, 0.2])
    strings_q, logq = [" love", "Love", "war"], np.log([0.3, 0.2, 0.1])
    mean = join_distributions(strings_p, logp, strings_q, logq, merge="mean").set_index("response")
    assert set(mean.index) == {"love", "war"}
    assert mean.loc["love", "n_variants"] == 2
    assert mean.loc["love", "logp"] == pytest.approx((math.log(0.4) + math.log(0.1)) / 2)
    assert mean.loc["love", "token_id_p"] == 0 and mean.loc["love", "token_id_q"] == 0
    # the paper's Fig 3: the mean of the variants' MWLR values, not MWLR of the mean log-probs
    variants = [mwlr(np.log([0.4]), np.log([0.2]))[0], mwlr(np.log([0.1]), np.log([0.3]))[0]]
    assert mean.loc["love", "mwlr"] == pytest.approx(np.mean(variants))
    of_means = mwlr(np.array([mean.loc["love", "logp"]]), np.array([mean.loc["love", "logq"]]))[0]
    assert mean.loc["love", "mwlr"] != pytest.approx(of_means)
    assert mean.loc["love", "log_ratio"] == pytest.approx(
        np.mean([math.log(0.2 / 0.4), math.log(0.3 / 0.1)])
    )
    total = join_distributions(strings_p, logp, strings_q, logq, merge="sum").set_index("response")
    assert total.loc["love", "logp"] == pytest.approx(math.log(0.5))
    assert total.loc["love", "logq"] == pytest.approx(math.log(0.5))
    assert total.loc["love", "mwlr"] == pytest.approx(0.0)
    assert total.loc["war", "logq"] == pytest.approx(math.log(0.1))
    with pytest.raises(UserError, match="merge"):
        join_distributions(strings_p, logp, strings_q, logq, merge="max")


def _synthetic_table(shift: float, n_prompts: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_prompts):
        framing = "positive" if k % 2 == 0 else "negative"
        for i in range(12):
            rows.append((f"p{k}", framing, f" agen{chr(97 + i)}", rng.normal(0, 1)))
            rows.append((f"p{k}", framing, f"Comm{chr(97 + i)}", rng.normal(shift, 1)))
        rows.append((f"p{k}", framing, "the", 5.0))
    return pd.DataFrame(rows, columns=["prompt_key", "framing", "response", "mwlr"])


LEX = Lexicon("toy", "test", "1", {"Agency": ["agen*"], "Communion": ["comm*"]})


PAIR = CategoryPair("Agency", "Communion")


def _contrasts(table, pair=PAIR):
    return category_contrasts(lexicon_word_means(table, LEX), pair, n_permutations=2000)


def test_category_contrast_detects_a_planted_difference():
    res = {c.label: c for c in _contrasts(_synthetic_table(1.5))}
    assert set(res) == {"positive", "negative", "all"}
    for c in res.values():
        assert c.n_first == c.n_second == 12  # words, each averaged over its framing's prompts
        # one sign convention: first - second = Agency - Communion, and Communion was raised
        assert c.difference.value < 0 and c.difference.high < 0 and c.d.value < -1
        assert c.test.p_adjusted < 0.01 and c.test.unit == "word"
    assert res["all"].test.p_adjusted == pytest.approx(min(1.0, 3 * res["all"].test.p))
    flipped = {
        c.label: c for c in _contrasts(_synthetic_table(1.5), CategoryPair("Communion", "Agency"))
    }
    assert flipped["all"].difference.value == pytest.approx(-res["all"].difference.value)
    null = _contrasts(_synthetic_table(0.0))
    assert all(c.test.p_adjusted > 0.05 for c in null)


def test_category_contrast_errors():
    with pytest.raises(UserError, match="Power"):
        _contrasts(_synthetic_table(0.0), CategoryPair("Agency", "Power"))
    one = _synthetic_table(0.0)
    one = one[~one["response"].str.startswith("Comm") | (one["response"] == "Commb")]
    with pytest.raises(UserError, match="at least 2 words"):
        _contrasts(one)


def test_run_implicit_reward_on_tiny_models(tiny_llama_lm, tiny_gemma_lm, tmp_path):
    lexicon = tmp_path / "toy.json"
    lexicon.write_text(
        json.dumps(
            {
                # the tiny tokenizers know few whole words: toy categories from those
                "Agency": ["best", "greatest", "word*", "world", "achiev*"],
                "Communion": ["love*", "kind*", "thing", "time", "compassion*"],
            }
        )
    )  # fmt: skip
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "best_ever_one: What, in one word, is the best thing ever?\n"
        "good_world_one: What, in one word, is the most good thing in the world?\n"
        "worst_ever_one: What, in one word, is the worst thing ever?\n"
        "bad_time_one: What, in one word, is the most bad thing of all time?\n"
    )
    out = tmp_path / "ir"
    run = run_implicit_reward(
        ImplicitRewardSettings(
            model_1=tiny_llama_lm, model_2=tiny_gemma_lm, out=out, prompts=str(prompts),
            lexicon=str(lexicon), permutations=200, bootstrap=100, top_k=5,
        )
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_1"] == tiny_llama_lm and summary["merge"] == "sum"
    assert summary["stage2"]["word_match"] == "variants"
    assert "Table 1" not in summary["top_bottom"]  # greatest_ever_one is not among these prompts
    anova = {a["term"]: a for a in summary["stage2"]["anova"]}
    assert 0 <= anova["category"]["eta_ci_low"] <= anova["category"]["partial_eta_sq"]
    assert {c["framing"] for c in summary["comparison"]} == {"positive", "negative", "all"}
    assert set(summary["comparison_other_merges"]) == {"none", "mean"}
    table = pd.read_parquet(out / "implicit_reward.parquet")
    assert table["prompt_key"].nunique() == 4
    # every row obeys the definition
    expected = (
        0.5 * (np.exp(table["logp"]) + np.exp(table["logq"])) * (table["logq"] - table["logp"])
    )
    assert np.allclose(table["mwlr"], expected)
    # per prompt, the joined strings carry at most the probability mass of each model
    mass = table.groupby("prompt_key")[["logp", "logq"]].agg(lambda s: np.exp(s).sum())
    assert (mass <= 1 + 1e-5).all().all()
    names = {p.name for p in run.files}
    assert {"top_bottom.png", "top_bottom.svg", "mwlr_lollipop.png", "split_violins.png",
            "anova.csv", "lm_scores.parquet"} <= names  # fmt: skip
    assert summary["provenance"]["models"][0]["fingerprint"]
    assert summary["stage2"]["anova"][0]["term"] == "category"


def test_mean_merge_on_a_synthetic_check():
    """Three variants with very different probabilities: averaging log-probs first dilutes the
    frequent variant (the issue's -0.21 against the paper's -0.25 is this effect)."""
    strings = [" Freedom", "Freedom", "freedom", "x"]
    logp = np.log([0.50, 0.02, 0.01, 0.47])
    logq = np.log([0.10, 0.05, 0.04, 0.81])
    mean = join_distributions(strings, logp, strings, logq, merge="mean").set_index("response")
    by_variant = mwlr(logp[:3], logq[:3])
    assert mean.loc["freedom", "mwlr"] == pytest.approx(by_variant.mean())
    assert mean.loc["freedom", "mwlr"] < mwlr(logp[:3].mean(), logq[:3].mean())


def test_the_empty_string_is_dropped():
    from analyses.stats.implicit_reward import VocabularyJoin

    strings_p, strings_q = ["", "a", "b"], ["b", "", "a"]
    logp, logq = np.log([0.5, 0.3, 0.2]), np.log([0.1, 0.6, 0.3])
    for merge in ("none", "mean", "sum"):
        t = join_distributions(strings_p, logp, strings_q, logq, merge=merge)
        assert "" not in set(t["response"]) and len(t) == 2
    assert "" not in set(VocabularyJoin.build(strings_p, strings_q).strings)


def test_stage2_exact_match_keeps_only_exact_tokens():
    from types import SimpleNamespace

    from analyses.inputs.lexicon import Lexicon
    from analyses.inputs.prompts import paper_prompts
    from analyses.stats.implicit_reward import lexicon_logprob_scores

    vocab = ["love", " Love", "power", " power", "Power", "care"]

    class Tok:
        def __len__(self):
            return len(vocab)

        def batch_decode(self, ids):
            return [vocab[i[0]] for i in ids]

    loaded = SimpleNamespace(tokenizer=Tok(), name="m", family="Llama")
    lex = Lexicon("t", "s", "1", {"Agency": ["power"], "Communion": ["love", "care"]})
    logprobs = np.log(np.array([[0.1, 0.3, 0.05, 0.2, 0.15, 0.2]]))
    prompts = paper_prompts()[:1]
    variants = lexicon_logprob_scores(loaded, prompts, logprobs, lex, "variants")
    exact = lexicon_logprob_scores(loaded, prompts, logprobs, lex, "exact")
    v = variants.set_index("response")
    e = exact.set_index("response")
    assert v.loc["love", "token_id"] == 1 and v.loc["power", "token_id"] == 3  # best variant
    assert e.loc["love", "token_id"] == 0 and e.loc["power", "token_id"] == 2  # exact tokens
    assert e.loc["love", "score"] == pytest.approx(math.log(0.1))
    with pytest.raises(UserError, match="word match"):
        lexicon_logprob_scores(loaded, prompts, logprobs, lex, "fuzzy")


@pytest.mark.parametrize("merge", ["none", "mean", "sum"])
def test_vectorised_join_equals_reference(merge):
    from analyses.stats.implicit_reward import VocabularyJoin, joined_table

    rng = np.random.default_rng(0)
    pieces = ["love", " love", "Love", " LOVE", "war", " war", "peace", "x", " ", "a", "A"]
    strings_p = [pieces[i] for i in rng.integers(0, len(pieces), 40)]
    strings_q = [pieces[i] for i in rng.integers(0, len(pieces), 25)] + ["only-q"]
    logp = np.log(rng.dirichlet(np.ones(40), size=3))
    logq = np.log(rng.dirichlet(np.ones(26), size=3))

    class P:
        def __init__(self, key):
            self.key, self.framing = key, "positive"

    prompts = [P("a"), P("b"), P("c")]
    join = VocabularyJoin.build(strings_p, strings_q)
    fast = joined_table(prompts, (strings_p, strings_q), (logp, logq), merge, join)
    for i, prompt in enumerate(prompts):
        ref = join_distributions(strings_p, logp[i], strings_q, logq[i], merge)
        got = fast[fast["prompt_key"] == prompt.key]
        ref = ref.sort_values("response").reset_index(drop=True)
        got = got.sort_values("response").reset_index(drop=True)
        assert got["response"].tolist() == ref["response"].tolist()
        for col in ("logp", "logq", "log_ratio", "mwlr"):
            assert np.allclose(got[col], ref[col], rtol=1e-12, atol=1e-15), col
        for col in ("token_id_p", "token_id_q"):
            assert got[col].tolist() == ref[col].tolist(), col


def test_cli_implicit_reward_rejects_bad_categories(tmp_path):
    from click.testing import CliRunner

    from cli import main

    res = CliRunner().invoke(
        main,
        ["implicit-reward", "--model-1", "a", "--model-2", "b", "--out", str(tmp_path),
         "--categories", "Agency"],
    )  # fmt: skip
    assert res.exit_code == 2 and "two different categories" in res.output


@pytest.mark.slow
@pytest.mark.embedded
def test_implicit_reward_on_the_embedded_pair(tmp_path, shared_dir):
    raw = json.loads(
        (shared_dir / "lexicons" / "big-two-osf" / "bigtwo_osf_versions.json").read_text()
    )
    lexicon = tmp_path / "big2a.json"
    lexicon.write_text(json.dumps({"Agency": raw["big2a_agen"], "Communion": raw["big2a_comm"]}))
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(
        "greatest_ever_one: What, in one word, is the greatest thing ever?\n"
        "best_time_single: What, in a single word, is the best thing of all time?\n"
        "worst_world_please: What is the worst thing in the world? Please answer in one word only.\n"
        "bad_ever_one: What, in one word, is the most bad thing ever?\n"
    )
    run = run_implicit_reward(
        ImplicitRewardSettings(
            model_1="smollm2-135m-instruct", model_2="gemma3-270m", out=tmp_path / "out",
            prompts=str(prompts), lexicon=str(lexicon), permutations=500, bootstrap=200,
            no_figures=True,
        )
    )  # fmt: skip
    s = run.summary
    assert s["n_joined_strings_per_prompt"] > 10_000  # the two vocabularies share many strings
    assert {c["framing"] for c in s["comparison"]} == {"positive", "negative", "all"}
    assert all(c["n_first"] > 50 and c["n_second"] > 50 for c in s["comparison"])
    terms = {a["term"] for a in s["stage2"]["anova"]}
    assert {"category", "model", "category:model"} <= terms


def test_table_one_defaults_to_greatest_ever_one_unmerged():
    from analyses.inputs.lexicon import Lexicon
    from analyses.runs.implicit_reward import _top_bottom

    none = pd.DataFrame({"prompt_key": ["greatest_ever_one"] * 3 + ["worst_ever_one"] * 3,
                         "response": [" Love", "love", "!"] * 2,
                         "mwlr": [0.3, -0.1, 0.05, 9.0, 9.0, 9.0], "log_ratio": 0.0})  # fmt: skip
    merged = none.assign(response=none["response"].str.strip().str.lower())
    lex = Lexicon("t", "s", "1", {"Communion": ["love"]})
    rows, how = _top_bottom({"none": none, "sum": merged}, "sum", "greatest_ever_one", lex)
    assert "Table 1" in how and rows["word"].tolist() == [" Love", "love", "!"]  # every string
    assert rows["mwlr"].tolist() == [0.3, -0.1, 0.05]  # that prompt only
    rows, how = _top_bottom({"none": none, "sum": merged}, "sum", "all", lex)
    assert "averaged over every prompt" in how and set(rows["word"]) == {"love"}

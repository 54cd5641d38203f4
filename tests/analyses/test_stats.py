"""Stage 1 / Stage 2 / agreement, checked against independent computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from analyses.inputs.lexicon import Lexicon
from analyses.inputs.lexicon_formats import read_lexicon_file
from analyses.inputs.paper_scores import import_paper_scores
from analyses.inputs.score_table import write_score_table
from analyses.runs.stats import StatsSettings, run_stats
from analyses.stats.agreement import cross_model_agreement
from analyses.stats.stage1 import stage1
from analyses.stats.stage2 import stage2
from interp.errors import UserError

POSITIVE = ("best", "greatest", "good")


@pytest.fixture(scope="module")
def paper(shared_dir):
    folder = shared_dir / "paper-data" / "reward_model_scores_sample"
    files = sorted(folder.glob("big2_rewards_*.csv"))
    nouns = shared_dir / "paper-data" / "corpora" / "dict_big2_nouns.csv"
    return files, nouns


@pytest.fixture(scope="module")
def independent_median_ranks(paper) -> pd.DataFrame:
    """Plain pandas, straight from the released files: no project code involved."""
    files, nouns_path = paper
    nouns = pd.read_csv(nouns_path).rename(columns={"token_decoded": "response"})
    frames = []
    for f in files:
        model = f.stem.removeprefix("big2_rewards_")
        long = pd.read_csv(f).melt(id_vars="response", var_name="prompt", value_name="score")
        long["model"] = model
        long["family"] = "Gemma" if "gemma" in model.lower() else "Llama"
        frames.append(long)
    df = pd.concat(frames).merge(nouns, on="response")  # dictionary words only
    df["rank"] = df.groupby(["model", "prompt"])["score"].rank(ascending=False, method="average")
    df["framing"] = np.where(df["prompt"].str.startswith(POSITIVE), "positive", "negative")
    return (
        df.groupby(["model", "family", "prompt", "framing", "Category"])["rank"]
        .median()
        .rename("median_rank")
        .reset_index()
    )


@pytest.fixture(scope="module")
def stats_out(paper, tmp_path_factory):
    files, nouns = paper
    tmp = tmp_path_factory.mktemp("stats")
    scores = tmp / "scores.parquet"
    write_score_table(import_paper_scores(files), scores, {"test": True})
    out = tmp / "out"
    run = run_stats(
        StatsSettings(
            scores=scores, lexicon=str(nouns), out=out, permutations=2000, bootstrap=500, seed=5
        )
    )
    return run, json.loads((out / "summary.json").read_text()), scores


def test_cells_table_equals_independent_computation(stats_out, independent_median_ranks):
    _, summary, _ = stats_out
    med = independent_median_ranks
    expected = (
        med.groupby(["framing", "Category", "family", "model"])["median_rank"]
        .mean()
        .groupby(["framing", "Category", "family"])
        .mean()
    )
    got = {
        (c["framing"], c["category"], c["family"]): c["mean_median_rank"] for c in summary["cells"]
    }
    assert len(got) == len(expected) == 8
    for key, value in expected.items():
        assert got[key] == value, key  # exact
    # the Llama - Gemma differences
    for d in summary["differences"]:
        k = (d["framing"], d["category"])
        assert d["difference"] == pytest.approx(expected[(*k, "Llama")] - expected[(*k, "Gemma")])
    # the released data show the paper's direction: Llama ranks agency higher than Gemma does
    pos_agency = {c["family"]: c["mean_median_rank"] for c in summary["cells"]
                  if c["framing"] == "positive" and c["category"] == "Agency"}  # fmt: skip
    assert pos_agency["Llama"] < pos_agency["Gemma"]


def test_summary_shape_and_provenance(stats_out):
    run, summary, scores = stats_out
    assert set(summary) >= {"cells", "mixed_model", "panels", "provenance"}
    assert set(summary["cells"][0]) >= {"framing", "category", "family", "mean_median_rank"}
    assert set(summary["mixed_model"][0]) >= {"term", "coef", "ci_low", "ci_high", "p"}
    assert set(summary["panels"][0]) >= {"framing", "category", "t", "p", "p_bonferroni", "d", "n"}
    prov = summary["provenance"]
    import hashlib

    assert prov["inputs"][0]["sha256"] == hashlib.sha256(scores.read_bytes()).hexdigest()
    assert prov["lexicon"]["name"] == "dict_big2_nouns" and prov["seed"] == 5
    assert prov["tool_version"] and prov["scores_provenance"]["test"] is True
    assert (
        prov["scores_provenance"]["rows"] > 0
    )  # the table's own row count and digest travel along
    names = {p.name for p in run.files}
    assert {"cells.csv", "mixed_model.csv", "panels.csv", "agreement.csv"} <= names
    assert {"median_rank_violins.png", "median_rank_violins.svg"} <= names
    cells_csv = pd.read_csv(run.out / "cells.csv")
    assert cells_csv["mean_median_rank"].tolist() == [
        c["mean_median_rank"] for c in summary["cells"]
    ]


def test_panels_against_scipy(stats_out, independent_median_ranks):
    _, summary, _ = stats_out
    med = independent_median_ranks
    assert len(summary["panels"]) == 4
    for p in summary["panels"]:
        sub = med[(med["framing"] == p["framing"]) & (med["Category"] == p["category"])]
        llama = sub.loc[sub["family"] == "Llama", "median_rank"]
        gemma = sub.loc[sub["family"] == "Gemma", "median_rank"]
        ref = sps.ttest_ind(llama, gemma, equal_var=False)
        assert p["t"] == pytest.approx(ref.statistic, rel=1e-10)
        assert p["n"] == 54
        assert p["p"] == pytest.approx(ref.pvalue, rel=1e-9)  # the paper's: parametric Welch
        assert p["p_bonferroni"] == pytest.approx(min(1.0, 4 * p["p"]))
        assert p["p_permutation"] >= 1 / 2001 and p["n_permutations"] == 2000
        assert p["p_permutation_bonferroni"] == pytest.approx(min(1.0, 4 * p["p_permutation"]))
        pooled = math.sqrt((26 * llama.var() + 26 * gemma.var()) / 52)
        assert p["d"] == pytest.approx((llama.mean() - gemma.mean()) / pooled)
        assert p["ci_low"] < llama.mean() - gemma.mean() < p["ci_high"]


def test_mixed_model_against_direct_statsmodels(stats_out, independent_median_ranks):
    import statsmodels.formula.api as smf

    _, summary, _ = stats_out
    med = independent_median_ranks.rename(columns={"Category": "category"})
    med["framing"] = pd.Categorical(med["framing"], ["positive", "negative"])
    fit = smf.mixedlm("median_rank ~ family * category * framing", med, groups=med["model"]).fit(
        reml=True
    )
    got = {t["term"]: t for t in summary["mixed_model"]}
    assert set(got) == set(fit.fe_params.index)
    for term, coef in fit.fe_params.items():
        assert got[term]["coef"] == pytest.approx(coef, rel=1e-6, abs=1e-6)
        if got[term]["df"] < 1:  # the family term with one model per family
            assert got[term]["ci_low"] is None and got[term]["p"] is None
            continue
        half = sps.t.ppf(0.975, got[term]["df"]) * fit.bse_fe[term]  # t-based, containment df
        assert got[term]["ci_low"] == pytest.approx(coef - half, rel=1e-5, abs=1e-5)
        assert got[term]["ci_high"] == pytest.approx(coef + half, rel=1e-5, abs=1e-5)
    info = summary["mixed_model_info"]
    assert info["reference_levels"] == {"family": "Gemma", "category": "Agency",
                                        "framing": "positive"}  # fmt: skip
    assert any("single model" in n for n in info["notes"])


def test_same_seed_same_panels(paper):
    files, nouns = paper
    table = import_paper_scores(files)
    lex = read_lexicon_file(nouns)
    a = stage1(table, lex, n_permutations=300, n_bootstrap=100, seed=1, mixed=False)
    b = stage1(table, lex, n_permutations=300, n_bootstrap=100, seed=1, mixed=False)
    assert a.panels == b.panels


def test_single_family_and_missing_prompts_are_clear_errors(paper, tmp_path):
    files, nouns = paper
    lex = read_lexicon_file(nouns)
    one = import_paper_scores(
        files,
        {
            m: "Llama"
            for m in (
                "Skywork_Skywork-Reward-Gemma-2-27B",
                "Skywork_Skywork-Reward-Llama-3.1-8B-v0.2",
            )
        },
    )
    with pytest.raises(UserError, match="one family"):
        stage1(one, lex, n_permutations=10, n_bootstrap=10)
    table = import_paper_scores(files)
    gap = table[~((table["model"].str.contains("Llama")) & (table["prompt_key"] == "bad_ever_one"))]
    with pytest.raises(UserError, match="no scores for prompt.*bad_ever_one"):
        stage1(gap, lex, n_permutations=10, n_bootstrap=10)
    nothing = Lexicon("x", "s", "1", {"A": ["qqq*"]})
    with pytest.raises(UserError, match="no response .* belongs to lexicon x"):
        stage1(table, nothing)


def _synthetic_rm_scores(lexicon: Lexicon, favoured: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """Two families x 3 models; each family adds +1 to the scores of its favoured category."""
    rng = np.random.default_rng(seed)
    words = {c: [p.rstrip("*") for p in ps][:40] for c, ps in lexicon.categories.items()}
    rows = []
    for fam in ("Gemma", "Llama"):
        for m in range(3):
            for key in ("best_ever_one", "good_time_please", "worst_ever_one", "bad_world_one"):
                seen = set()
                for ws in words.values():
                    for w in ws:
                        if w in seen:
                            continue
                        seen.add(w)
                        bonus = 1.0 if favoured.get(fam) in lexicon.match(w) else 0.0
                        rows.append((f"{fam}-{m}", fam, "rm", key, "", key.startswith(("best", "good")),
                                     w, None, rng.normal() + bonus))  # fmt: skip
    df = pd.DataFrame(rows, columns=["model", "family", "kind", "prompt_key", "prompt",
                                     "framing", "response", "token_id", "score"])  # fmt: skip
    df["framing"] = np.where(df["framing"], "positive", "negative")
    return df


def test_stage1_on_mfd2_recovers_a_planted_effect(shared_dir):
    mfd = read_lexicon_file(shared_dir / "lexicons" / "moral-foundations-emfdscore" / "mfd2.0.dic")
    mfd = mfd.subset(["care.virtue", "fairness.virtue", "sanctity.vice"])
    scores = _synthetic_rm_scores(mfd, {"Llama": "care.virtue"})
    res = stage1(scores, mfd, n_permutations=1000, n_bootstrap=200, seed=0, mixed=False)
    panels = {(p.framing, p.category): p for p in res.panels}
    assert len(panels) == 6
    for framing in ("positive", "negative"):
        care = panels[(framing, "care.virtue")]
        assert care.t < 0 and care.p_bonferroni < 0.05  # Llama ranks care words higher
        assert panels[(framing, "sanctity.vice")].t > 0  # so the other words drop


def _synthetic_lm_scores(seed: int = 0) -> tuple[pd.DataFrame, Lexicon]:
    """Balanced design: 2 models x 6 prompts (3 per valence) x 2 categories x 8 words."""
    rng = np.random.default_rng(seed)
    lex = Lexicon("toy", "s", "1", {"Agency": [f"a{i}" for i in range(8)],
                                    "Communion": [f"c{i}" for i in range(8)]})  # fmt: skip
    rows = []
    for model, shift in (("m1", 0.0), ("m2", 1.5)):
        for key in ("best_ever_one", "best_world_one", "good_time_one",
                    "worst_ever_one", "bad_world_one", "terrible_time_one"):  # fmt: skip
            framing = "positive" if key.startswith(POSITIVE) else "negative"
            for cat, words in lex.categories.items():
                for i, w in enumerate(words):
                    bonus = shift if (cat == "Agency") else 0.0
                    rows.append((model, "Llama", "lm", key, "", framing, w, i,
                                 -5 + bonus + rng.normal()))  # fmt: skip
    df = pd.DataFrame(rows, columns=["model", "family", "kind", "prompt_key", "prompt",
                                     "framing", "response", "token_id", "score"])  # fmt: skip
    return df, lex


def test_stage2_anova_matches_hand_computation():
    scores, lex = _synthetic_lm_scores()
    res = stage2(scores, lex)
    med = res.median_ranks
    assert len(med) == 2 * 6 * 2
    # balanced design: SS of a main effect = n_per_level * sum((level mean - grand mean)^2)
    y = med["median_rank"].to_numpy()
    grand = y.mean()
    cell_means = med.groupby(["category", "framing", "model"])["median_rank"].transform("mean")
    ss_res = float(((y - cell_means) ** 2).sum())
    df_res = len(y) - 8
    anova = {a.term: a for a in res.anova}
    for term, col in (("category", "category"), ("valence", "framing"), ("model", "model")):
        means = med.groupby(col)["median_rank"].mean()
        ss = float((len(y) / len(means)) * ((means - grand) ** 2).sum())
        assert anova[term].sum_sq == pytest.approx(ss, rel=1e-9, abs=1e-9)
        assert anova[term].F == pytest.approx((ss / 1) / (ss_res / df_res), rel=1e-9)
    assert anova["Residual"].df == df_res
    # the planted effect: m2 ranks agency words higher -> the category x model interaction
    assert anova["category:model"].p < 0.01


def test_stage2_posthoc_welch_and_bh():
    from analyses.stats.corrections import benjamini_hochberg

    scores, lex = _synthetic_lm_scores()
    res = stage2(scores, lex)
    med = res.median_ranks
    model_tests = [p for p in res.posthoc if p.contrast == "model"]
    assert len(model_tests) == 4  # 2 categories x 2 valences, one model pair each
    for p in model_tests:
        sub = med[(med["category"] == p.cell) & (med["framing"] == p.valence)]
        b = sub.loc[sub["model"] == p.level_b, "median_rank"]
        a = sub.loc[sub["model"] == p.level_a, "median_rank"]
        ref = sps.ttest_ind(b, a, equal_var=False)
        assert p.t == pytest.approx(ref.statistic) and p.p == pytest.approx(ref.pvalue)
    assert [p.p_bh for p in model_tests] == pytest.approx(
        benjamini_hochberg([p.p for p in model_tests]).tolist()
    )
    agency_m2 = [p for p in model_tests if p.cell == "Agency"]
    assert all(p.level_b == "m2" and p.t < 0 for p in agency_m2)  # lower rank = preferred
    with pytest.raises(UserError, match="compares models"):
        stage2(scores[scores["model"] == "m1"], lex)
    one_each = scores[scores["prompt_key"].isin(["best_ever_one", "worst_ever_one"])]
    with pytest.raises(UserError, match="two prompts per valence"):
        stage2(one_each, lex)


def test_cross_model_agreement():
    rows = []
    for i, w in enumerate(["a", "b", "c", "d", "e"]):
        rows.append(("m1", "p", w, float(i)))
        rows.append(("m2", "p", w, float(i) ** 3))  # same order
        rows.append(("m3", "p", w, -float(i)))  # reversed
    rows.append(("m1", "p", "only-in-m1", 99.0))
    df = pd.DataFrame(rows, columns=["model", "prompt_key", "response", "score"])
    res = {(a.model_a, a.model_b): a for a in cross_model_agreement(df)}
    assert res[("m1", "m2")].n_shared == 5
    assert res[("m1", "m2")].kendall_tau == pytest.approx(1.0)
    assert res[("m1", "m3")].spearman_rho == pytest.approx(-1.0)
    x, y = np.array([1.0, 2, 3, 4, 5]), np.array([2.0, 1, 4, 3, 5])
    df2 = pd.DataFrame({"model": ["a"] * 5 + ["b"] * 5, "prompt_key": "p",
                        "response": list("vwxyz") * 2, "score": np.r_[x, y]})  # fmt: skip
    (agr,) = cross_model_agreement(df2)
    assert agr.kendall_tau == pytest.approx(sps.kendalltau(x, y).statistic)
    assert agr.spearman_rho == pytest.approx(sps.spearmanr(x, y).statistic)


def test_cli_import_and_stats(paper, tmp_path):
    from cli import main

    files, nouns = paper
    runner = CliRunner()
    scores = tmp_path / "s.parquet"
    res = runner.invoke(main, ["import-scores", *map(str, files), "--out", str(scores)])
    assert res.exit_code == 0, res.output
    assert "2 models" in res.output
    res = runner.invoke(main, ["stats", "--scores", str(scores), "--lexicon", str(nouns),
                               "--out", str(tmp_path / "o"), "--permutations", "200",
                               "--bootstrap", "50", "--no-figures"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Llama - Gemma" in res.output and "model level (1+1 models): p=1" in res.output
    one = tmp_path / "one.parquet"
    res = runner.invoke(main, ["import-scores", *map(str, files), "--out", str(one),
                               "--family", "Skywork_Skywork-Reward-Gemma-2-27B=Llama"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["stats", "--scores", str(one), "--lexicon", str(nouns),
                               "--out", str(tmp_path / "o2")])  # fmt: skip
    assert res.exit_code == 2
    assert "error:" in res.output and "one family" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(main, ["stats", "--scores", str(one), "--lexicon", "nope",
                               "--out", str(tmp_path / "o3")])  # fmt: skip
    assert res.exit_code == 2 and "neither a file nor a named source" in res.output


def test_stage2_ranks_only_words_shared_by_all_models():
    scores, lex = _synthetic_lm_scores()
    extra = (
        scores[scores["model"] == "m2"]
        .drop_duplicates("prompt_key")
        .assign(response="a_only_in_m2", score=100.0)
    )
    lex2 = Lexicon(
        "toy", "s", "1", {**lex.categories, "Agency": (*lex.categories["Agency"], "a_only*")}
    )
    with_extra = pd.concat([scores, extra], ignore_index=True)
    a = stage2(scores, lex).median_ranks
    b = stage2(with_extra, lex2).median_ranks
    pd.testing.assert_frame_equal(a, b)  # the unshared word changes no rank
    c = stage2(with_extra, lex2, shared_words_only=False).median_ranks
    assert not c.equals(a)


def test_cli_lexicons(tmp_path, shared_dir):
    from cli import main

    runner = CliRunner()
    dicx = shared_dir / "lexicons" / "big-two-taters" / "big_two_agency_communion.dicx"
    words = tmp_path / "w.txt"
    words.write_text("achievement\nkindness\ntable\n")
    res = runner.invoke(main, ["lexicons", "show", str(dicx), "--words", str(words)])
    assert res.exit_code == 0, res.output
    assert "Agency" in res.output and "158 patterns" in res.output
    res = runner.invoke(main, ["lexicons", "list"])
    assert res.exit_code == 0 and "big2-taters" in res.output and "mfd2" in res.output
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    res = runner.invoke(main, ["lexicons", "show", str(empty)])
    assert res.exit_code == 2 and "no category" in res.output and "Traceback" not in res.output
    none = tmp_path / "none.txt"
    none.write_text("table\nchair\n")
    res = runner.invoke(main, ["lexicons", "show", str(dicx), "--words", str(none)])
    assert res.exit_code == 2 and "matches any word" in res.output


def test_stage2_run_writes_the_register_and_a_specification_curve(tmp_path):
    scores, lex = _synthetic_lm_scores()
    path = tmp_path / "lm.parquet"
    write_score_table(scores, path, {})
    lexicon = tmp_path / "toy.json"
    lexicon.write_text(json.dumps({c: list(p) for c, p in lex.categories.items()}))
    out = tmp_path / "out"
    run_stats(StatsSettings(scores=path, lexicon=str(lexicon), out=out, bootstrap=200))
    summary = json.loads((out / "summary.json").read_text())
    tests = pd.read_csv(out / "tests.csv")
    anova = tests[tests["section"] == "ANOVA (type II)"]
    assert set(anova["name"]) == {
        "category",
        "valence",
        "model",
        "category:valence",
        "category:model",
        "valence:model",
        "category:valence:model",
    }
    assert anova["effect"].between(0, 1).all() and (anova["effect_ci_low"] <= anova["effect"]).all()
    posthoc = tests[tests["section"] == "post hoc"]
    assert (posthoc["correction"] == "Benjamini-Hochberg").all() and posthoc[
        "effect_ci_low"
    ].notna().all()
    spec = pd.read_csv(out / "specification.csv")
    assert set(spec["contrast"]) == {"m1", "m2"}  # one family: each model's own gap
    # m2 adds 1.5 nats to agency words: its agency words rank higher (negative gap)
    m2 = spec[(spec["contrast"] == "m2") & (spec["concision"] == "all")]
    assert (m2["estimate"] < 0).all()
    assert summary["pair"] == "Agency - Communion" and (out / "specification_curve.png").exists()

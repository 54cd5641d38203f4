"""Training dynamics: the paper's formats and token handling, checked against re-implementations of
its Fig 4 (R) and Fig 5 (Python) steps written out here, and its released rank results."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from analyses.inputs.training_scores import (
    PAPER_MANIFEST,
    paper_token_norm,
    read_checkpoint_scores,
    read_rank_results,
)
from analyses.runs.training_dynamics import TrainingDynamicsSettings, run_training_dynamics
from analyses.stats.contrast import CategoryPair
from analyses.stats.training_dynamics import final_checkpoints
from interp.errors import UserError

TOKENS = ["power", " Power", "POWER ", "success", " success", "skill", "lo\u00efve", "love",
          " Love", "care", " care", "trust", "warmth", "table", "", "zebra", " skill"]  # fmt: skip
DICT = pd.DataFrame({
    "DicTerm": ["power", "success", "skill", "love", "care", "trust", "warmth", "loive"],
    "Agency": ["X", "X", "X", None, None, None, None, None],
    "Communion": [None, None, "X", "X", "X", "X", "X", "X"],
})  # fmt: skip


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name in ("greatest_ever_one_across_checkpoints_llama", "gemma_run"):
        wide = pd.DataFrame({"token_decoded": TOKENS})
        for step in (500, 1000, 2000):
            wide[f"step-{step}"] = rng.normal(size=len(TOKENS))
        wide["unrelated"] = 1.0
        paths[name] = tmp_path / f"{name}.parquet"
        wide.to_parquet(paths[name], index=False)
    dict_path = tmp_path / "dict_expanded.csv"
    DICT.to_csv(dict_path, index=False)
    token_list = tmp_path / "token_intersection.csv"
    pd.DataFrame({"token_decoded": [t for t in TOKENS if t not in ("zebra", " skill")]}).to_csv(
        token_list
    )
    return paths, dict_path, token_list


def r_fig4(path, token_list) -> pd.DataFrame:
    """The R script's Fig 4 steps on one file, in pandas."""
    wide = pd.read_parquet(path)
    long = wide.melt(id_vars="token_decoded", value_vars=[c for c in wide if c.startswith("step-")],
                     var_name="checkpoint", value_name="score")  # fmt: skip
    keep = set(pd.read_csv(token_list, keep_default_na=False)["token_decoded"])
    long = long[long["token_decoded"].isin(keep)]
    long["checkpoint"] = long["checkpoint"].str.replace("step-", "").astype(int)
    long = long[long["token_decoded"].str.len() > 0]
    clean = long["token_decoded"].map(lambda t: re.sub(r"[^\x20-\x7E\x09\x0A\x0D]", "", t))
    long["token_norm"] = clean.str.strip().str.lower()
    joined = long.merge(DICT, left_on="token_norm", right_on="DicTerm")
    joined = joined.melt(id_vars=["checkpoint", "token_decoded", "score"],
                         value_vars=["Agency", "Communion"], var_name="Category")  # fmt: skip
    joined = joined[joined["value"] == "X"]
    joined["rank"] = joined.groupby("checkpoint")["score"].rank(ascending=False)
    return joined.groupby(["checkpoint", "Category"])["rank"].median()


def py_fig5(path) -> pd.DataFrame:
    """The authors' generate_figure_5 steps (nouns-style dictionary: one category per word)."""
    df = pd.read_parquet(path)
    df["token_norm"] = (df["token_decoded"].str.encode("ascii", errors="ignore")
                        .str.decode("ascii").str.strip().str.lower())  # fmt: skip
    df = df[df["token_norm"].str.len() > 0]
    nouns = DICT.assign(Category=np.where(DICT["Agency"] == "X", "Agency", "Communion"))
    df = df.merge(nouns[["DicTerm", "Category"]], left_on="token_norm", right_on="DicTerm")
    steps = sorted([c for c in df if c.startswith("step-")], key=lambda c: int(c.split("-")[1]))
    grouped = df.groupby("token_norm").agg({**{c: "mean" for c in steps}, "Category": "first"})
    change = grouped[steps[0]].rank(ascending=False) - grouped[steps[-1]].rank(ascending=False)
    return change


def test_checkpoint_medians_and_rank_changes_match_the_papers_steps(files, tmp_path):
    paths, dict_path, token_list = files
    nouns = tmp_path / "nouns.csv"
    pd.DataFrame({"Category": np.where(DICT["Agency"] == "X", "Agency", "Communion"),
                  "token_decoded": DICT["DicTerm"]}).to_csv(nouns, index=False)  # fmt: skip
    out = tmp_path / "out"
    run = run_training_dynamics(TrainingDynamicsSettings(
        checkpoint_scores=tuple(str(p) for p in paths.values()), lexicon=str(dict_path),
        rank_change_lexicon=str(nouns), token_list=str(token_list), out=out, top_k=3,
    ))  # fmt: skip
    med = pd.read_csv(out / "checkpoint_median_ranks.csv")
    assert set(med["checkpoint"]) == {500, 1000, 2000}  # an axis, not prompts
    assert set(med["framing"]) == {"positive"} and set(med["prompt_key"]) == {"greatest_ever_one"}
    for name, path in paths.items():
        expected = r_fig4(path, token_list)
        got = med[med["run"] == name].set_index(["checkpoint", "category"])["median_rank"]
        pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(),
                                       check_names=False)  # fmt: skip
    assert set(med.loc[med["run"] == "gemma_run", "family"]) == {"Gemma"}
    assert set(med.loc[med["run"].str.contains("llama"), "family"]) == {"Llama"}
    gaps = pd.read_csv(out / "checkpoint_gaps.csv")
    row = gaps[(gaps["run"] == "gemma_run") & (gaps["checkpoint"] == 1000)].iloc[0]
    assert row["rank_gap"] == pytest.approx(
        row["median_rank_Agency"] - row["median_rank_Communion"]
    )
    changes = pd.read_csv(out / "rank_changes.csv")
    for name, path in paths.items():
        expected = py_fig5(path)
        got = changes[changes["run"] == name].set_index("word")["rank_change"]
        pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(),
                                       check_names=False)  # fmt: skip
    names = {p.name for p in run.files}
    assert {"training_checkpoints.png", "rank_changes_gemma_run.png", "summary.json"} <= names
    summary = json.loads((out / "summary.json").read_text())
    assert summary["provenance"]["inputs"][0]["sha256"]


def test_released_rank_results_and_the_manifest(shared_dir, tmp_path):
    folder = shared_dir / "paper-data" / "training_rank_results_sample"
    paths = sorted(folder.glob("rank_results_*.csv"))
    frames = [read_rank_results(p)[0] for p in paths]
    results = pd.concat(frames, ignore_index=True)
    final = final_checkpoints(results, PAPER_MANIFEST, CategoryPair("Agency", "Communion"))
    for path in paths:
        raw = pd.read_csv(path)
        for model, g in raw.groupby("model_id"):
            last = g[g["checkpoint"] == g["checkpoint"].max()].set_index("Category")["sum_value"]
            row = final[(final["file"] == path.name) & (final["run"] == model)].iloc[0]
            assert row["Agency"] == last["Agency"] and row["Communion"] == last["Communion"]
            assert row["rank_gap"] == last["Agency"] - last["Communion"]
            assert row["checkpoint"] == g["checkpoint"].max()
    sky = final[final["file"] == "rank_results_sky_80k.csv"]
    assert set(sky["data_source"]) == {"skywork"} and set(sky["data_size"]) == {77}
    assert set(final["family"]) == {"Gemma", "Llama", "Qwen"}  # Qwen has base_model NA
    run = run_training_dynamics(TrainingDynamicsSettings(
        rank_results=tuple(map(str, paths)), out=tmp_path / "o", no_figures=True))  # fmt: skip
    assert "rank_results_uf_54.csv" in run.headline()


def test_duplicates_identical_files_and_errors(tmp_path):
    rows = pd.DataFrame({"model_id": ["gemma-x"] * 4, "Category": ["Agency", "Communion"] * 2,
                         "checkpoint": [1000, 1000, 2000, 2000], "base_model": "Gemma",
                         "sum_value": [10.0, 12.0, 9.0, 13.0]})  # fmt: skip
    a = tmp_path / "rank_results_a.csv"
    pd.concat([rows, rows]).to_csv(a)
    b = tmp_path / "rank_results_b.csv"
    b.write_bytes(a.read_bytes())
    table, dropped = read_rank_results(a)
    assert dropped == 4 and len(table) == 4
    run = run_training_dynamics(TrainingDynamicsSettings(
        rank_results=(str(a), str(b)), out=tmp_path / "o", no_figures=True))  # fmt: skip
    notes = run.summary["notes"]
    assert any("byte-identical" in n for n in notes) and any(
        "not in the manifest" in n for n in notes
    )
    with pytest.raises(UserError, match="checkpoint-scores"):
        TrainingDynamicsSettings(out=tmp_path)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"token_decoded": ["a"], "score": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(UserError, match="step-N"):
        read_checkpoint_scores(bad)


def test_paper_token_norm():
    assert paper_token_norm(" Caf\u00e9 ") == "caf"
    assert paper_token_norm("\tLove\n") == "love"
    assert paper_token_norm(None) == "" and paper_token_norm("\u4e2d") == ""

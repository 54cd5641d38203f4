"""Bad input for the statistics commands (``stats``, ``implicit-reward``): refused with exit 2 and
one ``error:`` line, no traceback, no output folder; NaN/inf scores refused by default with the
count per model and prompt, or dropped on request and counted in the summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from analyses.inputs.score_table import write_score_table
from tests.cli.badfiles import bad_files, check_case
from tests.helpers import refusal

ST = ["stats", "--scores", "{scores}", "--lexicon", "{lexicon.json}", "--permutations", "50",
      "--bootstrap", "20", "--no-figures", "--out", "{out}"]  # fmt: skip
STATS_CASES = [
    (["stats", "--scores", "{all-nan}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "96 of 96 scores are NaN or infinite"),
    (["stats", "--scores", "{some-nan}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "3 of 96 scores are NaN or infinite (m1 / best_ever_one: 2, m2 / worst_ever_one: 1)"),
    (["stats", "--scores", "{with-inf}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "1 of 96 scores are NaN or infinite"),
    (["stats", "--scores", "{all-nan}", "--drop-nonfinite", "--lexicon", "{lexicon.json}", "--out", "{out}"], "every score is NaN or infinite"),
    (["stats", "--scores", "{missing}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "score table not found"),
    (["stats", "--scores", "{good.yaml}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "unknown table format '.yaml'"),
    (["stats", "--scores", "{dir}/none.parquet", "--lexicon", "{lexicon.json}", "--out", "{out}"], "not found"),
    (["stats", "--scores", "{not.parquet}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "not a readable Parquet file"),
    (["stats", "--scores", "{truncated-table}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "truncated"),
    (["stats", "--scores", "{words.csv}", "--lexicon", "{lexicon.json}", "--out", "{out}"], "missing column"),
    (["stats", "--scores", "{scores}", "--lexicon", "{empty.csv}", "--out", "{out}"], "is empty"),
    (["stats", "--scores", "{scores}", "--lexicon", "{latin1.csv}", "--out", "{out}"], "not UTF-8"),
    (["stats", "--scores", "{scores}", "--lexicon", "{nonstring-lexicon.json}", "--out", "{out}"], "holds something other than text"),
    (["stats", "--scores", "{scores}", "--lexicon", "{broken.dic}", "--out", "{out}"], "not a category code"),
    (["stats", "--scores", "{scores}", "--lexicon", "no-such-lexicon", "--out", "{out}"], "neither a file nor a named source"),
    ([*ST, "--model", "m9"], "model(s) not in"),
    ([*ST, "--permutations", "0"], "x>=1"),
    ([*ST, "--bootstrap", "-5"], "x>=1"),
    ([*ST, "--seed", "-1"], "x>=0"),
    ([*ST, "--stage", "3"], "'3' is not one of"),
    ([*ST, "--encoding", "nope"], "unknown text encoding"),
    (["stats", "--scores", "{scores}", "--lexicon", "{lexicon.json}", "--out", "{a-file}/o"], "is a file, not a folder"),
]  # fmt: skip
IR = ["implicit-reward", "--model-1", "{lm}", "--model-2", "{lm}", "--lexicon", "{lexicon.json}",
      "--out", "{out}"]  # fmt: skip
IMPLICIT_CASES = [
    ([*IR, "--top-k", "0"], "x>=1"),
    ([*IR, "--categories", "Agency,Agency"], "two different categories"),
    ([*IR, "--merge", "max"], "'max' is not one of"),
    ([*IR, "--prompts", "{null.yaml}"], "is null"),
    ([*IR, "--lexicon", "{latin1.csv}"], "not UTF-8"),
    ([*IR, "--device", "cuda"], "CUDA is not available"),
    ([*IR, "--permutations", "-3"], "x>=1"),
    (["implicit-reward", "--model-1", "{lm}", "--model-2", "nope/nope-nope!", "--lexicon", "{lexicon.json}", "--out", "{out}"], "cannot load"),
]  # fmt: skip


def _table(nan_at=(), inf_at=()) -> pd.DataFrame:
    """4 models (2 families) x 4 prompts x 6 words = 96 rows of seeded random scores."""
    rng = np.random.default_rng(0)
    rows = []
    for m, fam in (("m1", "Llama"), ("m2", "Gemma"), ("m3", "Llama"), ("m4", "Gemma")):
        for key in ("best_ever_one", "greatest_ever_one", "worst_ever_one", "terrible_ever_one"):
            framing = "negative" if key.startswith(("worst", "terrible")) else "positive"
            for w in ("power", "success", "victory", "love", "care", "family"):
                rows.append(dict(model=m, family=fam, kind="rm", prompt_key=key, prompt="?",
                                 framing=framing, response=w, token_id=None,
                                 score=float(rng.normal())))  # fmt: skip
    df = pd.DataFrame(rows)
    for at in nan_at:
        df.loc[at, "score"] = np.nan
    for at in inf_at:
        df.loc[at, "score"] = np.inf
    return df


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_llama_lm):
    root = tmp_path_factory.mktemp("bad-stats")
    found = bad_files(root / "files")
    found["lm"] = tiny_llama_lm
    found["scores"] = write_score_table(_table(), root / "scores.parquet")
    found["all-nan"] = write_score_table(_table(nan_at=range(96)), root / "all-nan.csv")
    found["some-nan"] = write_score_table(_table(nan_at=(0, 3, 37)), root / "some-nan.parquet")
    found["with-inf"] = write_score_table(_table(inf_at=(5,)), root / "with-inf.parquet")
    full = write_score_table(_table(), root / "full.csv").read_text()
    found["truncated-table"] = root / "truncated.csv"
    found["truncated-table"].write_text(full[: len(full) * 2 // 3])
    return found


@pytest.mark.parametrize("args, expected", STATS_CASES, ids=[c[1][:40] for c in STATS_CASES])
def test_stats_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "stats-out")


@pytest.mark.parametrize("args, expected", IMPLICIT_CASES, ids=[c[1][:30] for c in IMPLICIT_CASES])
def test_implicit_reward_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "implicit-out")


def test_nonfinite_scores_dropped_on_request_are_counted(paths, tmp_path):
    from cli import main

    out = tmp_path / "dropped"
    args = ["stats", "--scores", str(paths["some-nan"]), "--lexicon", str(paths["lexicon.json"]),
            "--permutations", "50", "--bootstrap", "20", "--no-figures", "--drop-nonfinite",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "dropped 3 NaN/infinite score(s)" in result.output
    record = json.loads((out / "summary.json").read_text())["provenance"]["nonfinite_scores"]
    assert record["n_nonfinite"] == 3 and record["dropped"] and record["n_rows"] == 96
    assert record["per_model_prompt"] == {"m1 / best_ever_one": 2, "m2 / worst_ever_one": 1}


def test_a_stats_folder_holds_exactly_one_run(paths, tmp_path):
    """A rerun into a folder with an older run is refused without --overwrite; with it, the
    folder holds only the new run's files (the old figures do not linger beside them)."""
    from cli import main

    out = tmp_path / "stats-out"
    base = ["stats", "--scores", str(paths["scores"]), "--lexicon", str(paths["lexicon.json"]),
            "--permutations", "50", "--bootstrap", "20", "--out", str(out)]  # fmt: skip
    assert CliRunner().invoke(main, base).exit_code == 0
    with_figures = sorted(p.name for p in out.iterdir())
    assert any(n.endswith(".png") for n in with_figures)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    line = refusal(CliRunner().invoke(main, [*base, "--no-figures"]))
    assert "already holds a run" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    result = CliRunner().invoke(main, [*base, "--no-figures", "--overwrite"])
    assert result.exit_code == 0, result.output
    after = sorted(p.name for p in out.iterdir())
    assert not any(n.endswith((".png", ".svg")) for n in after)
    assert set(after) < set(with_figures)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left

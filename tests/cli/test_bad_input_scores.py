"""Bad input for the score-table commands (``score``, ``merge-shards``, ``import-scores``): each is
refused with exit 2 and one ``error:`` line, no traceback, and leaves no output behind."""

from __future__ import annotations

import shutil

import pytest

from tests.cli.badfiles import bad_files, check_case

S = ["score", "--model", "{lm}", "--prompt-keys", "best_ever_one", "--out", "{out}"]
SCORE_CASES = [
    # responses files
    ([*S, "--responses", "{latin1-words.txt}"], "not UTF-8 (byte 0xe9 at 3); re-save as UTF-8 or pass --encoding latin-1"),
    ([*S, "--responses", "{latin1.csv}"], "not UTF-8 (byte 0xe9"),
    ([*S, "--responses", "{empty.csv}"], "is empty"),
    ([*S, "--responses", "{blank.txt}"], "only blank lines"),
    ([*S, "--responses", "{header-only.csv}"], "no words to score"),
    ([*S, "--responses", "{truncated.csv}"], "truncated"),
    ([*S, "--responses", "{extra-field.csv}"], "every row needs 2 fields"),
    ([*S, "--responses", "{no-word-column.csv}"], "no word column"),
    ([*S, "--responses", "{missing}"], "neither a file nor a named source"),
    ([*S, "--responses", "{a-folder}"], "is a folder"),
    ([*S, "--responses", "{words.csv}", "--encoding", "klingon"], "unknown text encoding"),
    # prompts files
    ([*S, "--responses", "{words.csv}", "--prompts", "{latin1.yaml}"], "not UTF-8 (byte 0xe9 at"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{nested.yaml}"], "prompt 'best_ever_one' is dict"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{null.yaml}"], "prompt 'best_ever_one' is null"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{duplicate.yaml}"], "duplicate key 'best_ever_one'"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{number.yaml}"], "is int, expected the prompt's text"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{list-of-maps.yaml}"], "item 0 is dict"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{broken.yaml}"], "not valid YAML (line"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{scalar.yaml}"], "expected a mapping key -> prompt"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{empty.yaml}"], "is empty"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{broken.json}"], "not valid JSON (line 1"),
    ([*S, "--responses", "{words.csv}", "--prompts", "{missing}"], "not a file and not a built-in set"),
    (["score", "--model", "{lm}", "--responses", "{words.csv}", "--prompt-keys", "nope", "--out", "{out}"], "prompt keys not found"),
    # models and devices
    ([*S, "--responses", "{words.csv}", "--model", "no-such-model"], "unknown model"),
    ([*S, "--responses", "{words.csv}", "--model", "{a-folder}"], "not a model folder"),
    ([*S, "--responses", "{words.csv}", "--model", "{corrupt}"], "cannot load"),
    ([*S, "--responses", "{words.csv}", "--device", "bogus"], "not a device name"),
    ([*S, "--responses", "{words.csv}", "--device", "cuda"], "CUDA is not available"),
    ([*S, "--responses", "{words.csv}", "--device", "cuda:7"], "CUDA is not available"),
    ([*S, "--responses", "{words.csv}", "--dtype", "int8"], "unknown dtype"),
    ([*S, "--responses", "{words.csv}", "--revision", "main"], "is a local folder"),
    ([*S, "--responses", "{words.csv}", "--as", "rm"], "no trained reward head"),
    ([*S, "--responses", "{words.csv}", "--random-head", "-1"], "x>=0"),
    ([*S, "--responses", "{words.csv}", "--as", "judge"], "'judge' is not one of"),
    # numbers
    ([*S, "--responses", "{words.csv}", "--batch-size", "0"], "x>=1"),
    ([*S, "--responses", "{words.csv}", "--batch-size", "-1"], "x>=1"),
    ([*S, "--responses", "{words.csv}", "--batch-size", "two"], "is not a valid integer"),
    ([*S, "--responses", "vocab", "--shard", "3/2"], "--shard 3/2"),
    ([*S, "--responses", "vocab", "--shard", "0/2"], "--shard 0/2"),
    ([*S, "--responses", "vocab", "--shard", "x"], "--shard"),
]  # fmt: skip
OUT_CASES = [
    ("{dir}/o.xlsx", ".xlsx is not an output format here"),
    ("{dir}/scores", "no extension is not an output format"),
    ("{a-file}/o.parquet", "is a file, not a folder"),
]
MERGE_CASES = [
    (["merge-shards", "--out", "{out}"], "no shard files given"),
    (["merge-shards", "{missing}", "--out", "{out}"], "not found"),
    (["merge-shards", "{not.parquet}", "--out", "{out}"], "not a readable Parquet file"),
    (["merge-shards", "{truncated.csv}", "--out", "{out}"], "truncated"),
    (["merge-shards", "{words.csv}", "--out", "{out}"], "missing column"),
    (["merge-shards", "{latin1.csv}", "--out", "{out}"], "not UTF-8"),
    (["merge-shards", "{good-table}", "--out", "{dir}/m.xlsx"], ".xlsx is not an output format"),
]  # fmt: skip
IMPORT_CASES = [
    (["import-scores", "{empty.csv}", "--out", "{out}"], "cannot take a model id"),
    (["import-scores", "{paper-empty}", "--out", "{out}"], "is empty"),
    (["import-scores", "{paper-header}", "--out", "{out}"], "a header but no rows"),
    (["import-scores", "{paper-text}", "--out", "{out}"], "'high' is not a number"),
    (["import-scores", "{paper-missing}", "--out", "{out}"], "1 missing score"),
    (["import-scores", "{paper-latin1}", "--out", "{out}"], "not UTF-8"),
    (["import-scores", "{paper-truncated}", "--out", "{out}"], "truncated"),
    (["import-scores", "{paper-good}", "--family", "oops", "--out", "{out}"], "expected MODEL=FAMILY"),
    (["import-scores", "{paper-good}", "--out", "{dir}/x.json"], ".json is not an output format"),
]  # fmt: skip


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_llama_lm):
    root = tmp_path_factory.mktemp("bad-scores")
    found = bad_files(root / "files")
    found["lm"] = tiny_llama_lm
    corrupt = root / "corrupt-model"
    shutil.copytree(tiny_llama_lm, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    found["corrupt"] = corrupt
    paper = {
        "paper-empty": "",
        "paper-header": "response,best_ever_one\n",
        "paper-text": "response,best_ever_one\npower,high\n",
        "paper-missing": "response,best_ever_one,worst_ever_one\npower,1.5,\n",
        "paper-latin1": "response,best_ever_one\ncaf\xe9,1.0\n",
        "paper-truncated": "response,best_ever_one,worst_ever_one\npower,1.5,2\nlove,1",
        "paper-good": "response,best_ever_one\npower,1.5\nlove,2.5\n",
    }
    for key, text in paper.items():
        path = root / "files" / f"big2_rewards_{key}.csv"
        path.write_bytes(text.encode("latin-1"))
        found[key] = path
    from analyses.inputs.score_table import write_score_table
    from tests.analyses.test_score_table import _small_table

    found["good-table"] = write_score_table(_small_table(), root / "files" / "good.parquet")
    return found


@pytest.mark.parametrize("args, expected", SCORE_CASES, ids=[c[1][:40] for c in SCORE_CASES])
def test_score_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "scores.parquet")


@pytest.mark.parametrize("out, expected", OUT_CASES)
def test_score_output_refused_before_the_model_loads(out, expected, paths, tmp_path, monkeypatch):
    import analyses.runs.score as score_run

    def no_model(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(score_run, "model_identity", no_model)  # the first look at the model
    args = ["score", "--model", "{lm}", "--responses", "{words.csv}", "--out", out]
    check_case(args, expected, paths, tmp_path / "never")


@pytest.mark.parametrize("args, expected", MERGE_CASES, ids=[c[1][:30] for c in MERGE_CASES])
def test_merge_shards_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "merged.parquet")


@pytest.mark.parametrize("args, expected", IMPORT_CASES, ids=[c[1][:30] for c in IMPORT_CASES])
def test_import_scores_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "imported.parquet")


def test_the_encoding_option_reads_a_latin1_file(paths, tmp_path):
    from click.testing import CliRunner

    from analyses.inputs.score_table import read_score_table
    from cli import main

    out = tmp_path / "s.csv"
    result = CliRunner().invoke(
        main,
        ["score", "--model", str(paths["lm"]), "--responses", str(paths["latin1-words.txt"]),
         "--prompt-keys", "best_ever_one", "--encoding", "latin-1", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(read_score_table(out)["response"]) == ["café", "power"]


def test_a_tsv_response_file_is_a_table(paths, tmp_path):
    from analyses.inputs.responses import load_responses

    tsv = tmp_path / "words.tsv"
    tsv.write_text("response\tcategory\npower\tAgency\nlove\tCommunion\n")
    rs = load_responses(str(tsv))
    assert rs.responses.words == ("power", "love")  # the header is not scored as a word
    assert dict(zip(rs.categories["response"], rs.categories["category"])) == {
        "power": "Agency", "love": "Communion",
    }  # fmt: skip

"""Bad input for ``train-rm``: refused with exit 2 and one ``error:`` line, no traceback, and no
run folder (or staging folder) left behind; a rerun into a folder holding an older run is
refused unless ``--overwrite``, which then leaves only the new run's files."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.cli.badfiles import bad_files, check_case
from tests.helpers import refusal

TR = ["train-rm", "--base", "{lm}", "--data", "{pairs.json}", "--out", "{out}"]
CASES = [
    ([*TR, "--max-pairs", "-17"], "x>=2"),
    ([*TR, "--lora", "0"], "x>=1"),
    ([*TR, "--lora-alpha", "0"], "x>0"),
    ([*TR, "--lora-alpha", "4", "--full"], "--lora-alpha applies to LoRA training only"),
    ([*TR, "--lr", "0"], "x>0"),
    ([*TR, "--lr", "-1e-4"], "x>0"),
    ([*TR, "--lr", "nan"], "--lr must be a finite number"),
    ([*TR, "--lr", "inf"], "--lr must be a finite number"),
    ([*TR, "--epochs", "0"], "x>=1"),
    ([*TR, "--batch-size", "0"], "x>=1"),
    ([*TR, "--max-length", "8"], "x>=16"),
    ([*TR, "--eval-fraction", "1.5"], "0<=x<=0.99"),
    ([*TR, "--checkpoint-every", "-1"], "x>=0"),
    ([*TR, "--state-every", "-1"], "x>=0"),
    ([*TR, "--seed", "-1"], "x>=0"),
    ([*TR, "--save", "some"], "'some' is not one of"),
    ([*TR, "--lora", "4", "--full"], "choose one of --lora R, --full, --train-last K"),
    ([*TR, "--train-last", "0"], "x>=1"),
    ([*TR, "--device", "bogus"], "not a device name"),
    (["train-rm", "--base", "{lm}", "--data", "{truncated.jsonl.gz}", "--out", "{out}"], "not a complete gzip file"),
    (["train-rm", "--base", "{lm}", "--data", "{garbage.jsonl.gz}", "--out", "{out}"], "not a complete gzip file"),
    (["train-rm", "--base", "{lm}", "--data", "{broken.json}", "--out", "{out}"], "not valid JSON (line 1"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs-latin1.json}", "--out", "{out}"], "not UTF-8 (byte 0xe9"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs-broken.jsonl}", "--out", "{out}"], "line 2: not valid JSON"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs-scalar.jsonl}", "--out", "{out}"], "line 2: expected a JSON object"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs-unusable.json}", "--out", "{out}"], "no usable preference pair"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs-unknown.json}", "--out", "{out}"], "unknown row format"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs.txt}", "--out", "{out}"], "expected a .jsonl"),
    (["train-rm", "--base", "{lm}", "--data", "{a-folder}", "--out", "{out}"], "is a folder"),
    (["train-rm", "--base", "{lm}", "--data", "{empty.yaml}", "--out", "{out}"], "expected a .jsonl"),
    (["train-rm", "--base", "{lm}", "--data", "nowhere.json", "--out", "{out}"], "not a file, not 'default'"),
    ([*TR, "--lexicon", "{one-category.csv}"], "needs at least 2 words in each category"),
    ([*TR, "--lexicon", "{uncategorised.txt}"], "durability needs words with categories"),
    ([*TR, "--lexicon", "{latin1.csv}"], "not UTF-8"),
    ([*TR, "--lexicon", "{words.csv}", "--prompts", "{duplicate.yaml}"], "duplicate key"),
    (["train-rm", "--base", "{lm}", "--data", "{pairs.json}", "--out", "{a-file}/rm"], "is a file, not a folder"),
    ([*TR, "--base", "no-such-model"], "unknown model"),
]  # fmt: skip


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_llama_lm):
    found = bad_files(tmp_path_factory.mktemp("bad-train") / "files")
    found["lm"] = tiny_llama_lm
    return found


@pytest.mark.parametrize("args, expected", CASES, ids=[c[1][:30] for c in CASES])
def test_train_rm_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "rm-out")


def test_a_run_folder_holds_exactly_one_run(paths, tmp_path):
    from cli import main

    out = tmp_path / "rm-out"
    base = ["train-rm", "--base", str(paths["lm"]), "--data", str(paths["pairs.json"]),
            "--lora", "2", "--max-length", "48", "--save", "all", "--checkpoint-every", "1",
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, base)
    assert result.exit_code == 0, result.output
    old = sorted(p.name for p in out.iterdir())
    assert "checkpoint-00001" in old
    line = refusal(CliRunner().invoke(main, [*base[:-2], "--save", "final", "--out", str(out)]))
    assert "already holds a run" in line
    assert sorted(p.name for p in out.iterdir()) == old
    args = [*base[:-2], "--save", "final", "--overwrite", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    new = sorted(p.name for p in out.iterdir())
    assert "checkpoint-00001" not in new and "checkpoint-00000" not in new  # no stale checkpoints
    record = json.loads((out / "train_record.json").read_text())
    assert record["config"]["save_checkpoints"] == "final"
    final = json.loads((out / "train_summary.json").read_text())["final_checkpoint"]
    assert (out / final.rsplit("/", 1)[-1]).is_dir() and final.startswith(str(out))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

"""``--trust-remote-code`` on every command that loads a model: refused in one line without it;
with it the files that run are named first and the command works; presets never imply it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main
from tests.helpers import build_tiny_model, word_categories
from tests.lookalikes import build_remote_rm


@pytest.fixture(scope="module")
def custom(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("trust")
    words = root / "words.csv"
    word_categories().to_csv(words, index=False)
    return {
        "rm": str(build_remote_rm(root / "cli-gating", "gating")),
        "base": str(build_tiny_model(root / "cli-base", arch="llama", kind="lm", seed=3)),
        "words": str(words),
        "root": root,
    }


def _run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def _commands(c: dict, out) -> dict[str, list[str]]:
    keys = ["--prompt-keys", "best_ever_one,worst_ever_one"]
    return {
        "score": ["score", "--model", c["rm"], "--as", "rm", "--responses", c["words"], *keys,
                  "--out", str(out / "s.parquet")],
        "cache-activations": ["cache-activations", "--model", c["rm"], "--as", "rm",
                              "--responses", c["words"], *keys, "--layers", "0,3",
                              "--backend", "torch", "--out", str(out / "a.h5")],
        "value-lens": ["value-lens", "--rm", c["rm"], "--responses", c["words"], *keys,
                       "--bootstrap", "50", "--out", str(out / "lens")],
        "patch": ["patch", "--base", c["base"], "--rm", c["rm"], "--responses", c["words"], *keys,
                  "--layers", "0,2", "--positions", "last", "--permutations", "50",
                  "--bootstrap", "50", "--out", str(out / "patch")],
        "train-rm": ["train-rm", "--base", c["rm"], "--data", str(out / "pairs.jsonl"),
                     "--out", str(out / "rm")],
    }  # fmt: skip


@pytest.mark.parametrize(
    "command", ["score", "cache-activations", "value-lens", "patch", "train-rm"]
)
def test_custom_code_is_refused_in_one_line_naming_the_flag(custom, tmp_path, command):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(json.dumps({"chosen": f"\n\nHuman: hi {i}\n\nAssistant: yes", "rejected":
                              f"\n\nHuman: hi {i}\n\nAssistant: no"}) for i in range(6)) + "\n"
    )  # fmt: skip
    code, output = _run(_commands(custom, tmp_path)[command])
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, output
    assert lines[0].startswith("error: ") and "--trust-remote-code" in lines[0]
    assert "Traceback" not in output


@pytest.mark.parametrize("command", ["score", "cache-activations", "value-lens", "patch"])
def test_with_the_flag_the_command_runs_and_records_the_readout(custom, tmp_path, command):
    code, output = _run([*_commands(custom, tmp_path)[command], "--trust-remote-code"])
    assert code == 0, output
    assert "--trust-remote-code: running modeling_lookalike.py (sha256" in output
    if command == "score":
        from analyses.inputs.score_table import read_provenance

        record = read_provenance(tmp_path / "s.parquet")
        assert record["model"]["readout"] == "head-module"
        assert record["model"]["reward_layout"] == "custom-score"
    if command == "value-lens":
        summary = json.loads((tmp_path / "lens" / "value_lens_summary.json").read_text())
        assert summary["readout"]["kind"] == "head-module"
    if command == "patch":
        summary = json.loads((tmp_path / "patch" / "patch_summary.json").read_text())
        assert summary["readout"]["kind"] == "head-module" and summary["self_test"]["passed"]


def test_train_rm_refuses_a_custom_head_even_when_trusted(custom, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "\n".join(json.dumps({"chosen": f"\n\nHuman: hi {i}\n\nAssistant: yes", "rejected":
                              f"\n\nHuman: hi {i}\n\nAssistant: no"}) for i in range(6)) + "\n"
    )  # fmt: skip
    code, output = _run([*_commands(custom, tmp_path)["train-rm"], "--trust-remote-code"])
    assert code == 2 and "trains a linear score head" in output


def test_a_preset_never_implies_the_flag():
    code, output = _run(["score", "--model", "armorm-llama3-8b", "--responses", "vocab",
                         "--out", "x.parquet"])  # fmt: skip
    assert code == 2 and "--trust-remote-code" in output and "RLHFlow/ArmoRM" in output
    code, output = _run(["models", "list"])
    assert code == 0
    for name in ("armorm-llama3-8b", "qrm-gemma2-27b", "urm-llama3.1-8b", "skywork-gemma2-27b"):
        assert name in output

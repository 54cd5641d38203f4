"""Bad input: one clear line on stderr and exit status 2, never a traceback."""

import pytest
from click.testing import CliRunner

from cli import main


def _run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "--model", "no-such-model", "--responses", "vocab"], "unknown model"),
        (["score", "--model", "{tmp}", "--responses", "vocab"], "not a model folder"),
        (["score", "--model", "{tiny}", "--responses", "{empty}"], "holds only blank lines"),
        (["score", "--model", "{tiny}", "--responses", "vocab", "--shard", "3/2"], "--shard 3/2"),
        (
            ["score", "--model", "{tiny}", "--as", "rm", "--responses", "vocab"],
            "no trained reward head",
        ),
        (["models", "fetch", "gpt-5"], "unknown embedded model"),
    ],
)
def test_bad_input_gives_one_line(args, message, tmp_path, tiny_llama_lm):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    subs = {"{tmp}": str(tmp_path), "{tiny}": tiny_llama_lm, "{empty}": str(empty)}
    args = [subs.get(a, a) for a in args]
    if args[0] == "score":
        args += ["--out", str(tmp_path / "o.parquet")]
    code, output = _run(args)
    assert code == 2
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in output


def test_score_command_writes_a_score_table(tmp_path, tiny_llama_rm):
    words = tmp_path / "words.csv"
    words.write_text("Category,token_decoded\nAgency,power\nCommunion,love\n")
    out = tmp_path / "s.parquet"
    code, output = _run(
        [
            "score",
            "--model",
            tiny_llama_rm,
            "--as",
            "rm",
            "--responses",
            str(words),
            "--prompt-keys",
            "best_ever_one,worst_ever_one",
            "--out",
            str(out),
        ]
    )
    assert code == 0, output
    from analyses.inputs.score_table import read_provenance, read_score_table

    table = read_score_table(out)
    assert sorted(table["response"].unique()) == ["love", "power"]
    assert set(table["framing"]) == {"positive", "negative"}
    assert dict(zip(table["response"], table["category"])) == {
        "power": "Agency",
        "love": "Communion",
    }
    prov = read_provenance(out)
    assert prov["model"]["fingerprint"] and prov["prompts"]["n"] == 2

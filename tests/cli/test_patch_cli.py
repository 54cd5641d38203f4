"""The ``patch`` and ``value-lens`` commands end to end, and a mismatched pair refused in one line."""

from __future__ import annotations

import pandas as pd

from tests.helpers import AGENCY, COMMUNION, other_rm


def test_cli_patch_and_value_lens(tmp_path, tiny_llama_rm, other_dir):
    from click.testing import CliRunner

    from cli import main

    words = tmp_path / "words.csv"
    pd.DataFrame(
        [(w, "Agency") for w in AGENCY[:3]] + [(w, "Communion") for w in COMMUNION[:3]],
        columns=["response", "category"],
    ).to_csv(words, index=False)
    base = other_rm(other_dir, "llama")
    common = [
        "--prompts",
        "paper54",
        "--prompt-keys",
        "greatest_ever_one",
        "--responses",
        str(words),
    ]
    res = CliRunner().invoke(
        main,
        [
            "patch",
            "--base",
            base,
            "--rm",
            tiny_llama_rm,
            "--layers",
            "0,3",
            "--sites",
            "resid_pre,mlp_out",
            "--permutations",
            "100",
            "--bootstrap",
            "50",
            "--out",
            str(tmp_path / "p"),
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    assert "self-test" in res.output and "passed" in res.output
    res = CliRunner().invoke(
        main,
        [
            "value-lens",
            "--rm",
            tiny_llama_rm,
            "--base",
            base,
            "--out",
            str(tmp_path / "v"),
            *common,
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "v" / "value_lens.png").exists()
    shallow = other_rm(other_dir, "llama", seed=0, n_layers=2)
    res = CliRunner().invoke(
        main,
        [
            "patch",
            "--base",
            shallow,
            "--rm",
            tiny_llama_rm,
            "--out",
            str(tmp_path / "x"),
            *common,
        ],
    )
    assert res.exit_code == 2 and "layer count" in res.output

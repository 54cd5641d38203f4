"""Bad input for ``patch`` and ``value-lens``: refused with exit 2 and one ``error:`` line, no
traceback, no run folder left behind (inputs are all read before any model is loaded)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.cli.badfiles import bad_files, check_case
from tests.helpers import other_rm

P = ["patch", "--base", "{base}", "--rm", "{rm}", "--responses", "{words.csv}", "--prompt-keys",
     "best_ever_one", "--layers", "0", "--out", "{out}"]  # fmt: skip
R = ["--responses", "{words.csv}"]
PATCH_CASES = [
    ([*P, "--positions", "last:0"], "last:K needs K >= 1"),
    ([*P, "--positions", "0"], "offsets count from the end"),
    ([*P, "--positions", "middle"], "use all, last, last:K"),
    ([*P, "--positions", "last:x"], "last:K needs a whole number"),
    ([*P, "--patches-per-pass", "0"], "x>=1"),
    ([*P, "--permutations", "0"], "x>=1"),
    ([*P, "--bootstrap", "0"], "x>=1"),
    ([*P, "--seed", "-1"], "x>=0"),
    ([*P, "--sites", ","], "no sites given"),
    ([*P, "--sites", "resid_middle"], "resid_middle"),
    ([*P, "--layers", "99"], "layer"),
    ([*P, "--gap", "Agency,Agency"], "give two different categories"),
    ([*P, "--gap", "Agency,Nobody"], "needs at least 2 words in each category"),
    ([*P, "--direction", "sideways"], "'sideways' is not one of"),
    ([*P, "--probes", "{missing}"], "not found"),
    ([*P, "--probes", "{not.parquet}"], "not a readable Parquet file"),
    ([*P, "--probe-compare", "{a-folder}"], "not found"),
    ([*P, "--device", "cuda"], "CUDA is not available"),
    ([*P, "--prompts", "{nested.yaml}"], "is dict"),
    ([*P[:6], "{one-category.csv}", *P[7:]], "needs at least 2 words in each category; found 3 and 0"),
    ([*P[:6], "{latin1.csv}", *P[7:]], "not UTF-8"),
    ([*P[:6], "{truncated.csv}", *P[7:]], "truncated"),
    ([*P[:6], "{header-only.csv}", *P[7:]], "no words to score"),
    ([*P[:2], "{shallow}", *P[3:]], "layer count"),
    ([*P[:-2], "--out", "{a-file}/p"], "is a file, not a folder"),
]  # fmt: skip
V = ["value-lens", "--rm", "{rm}", "--prompt-keys", "best_ever_one", "--out", "{out}"]
LENS_CASES = [
    ([*V, *R, "--base", "{shallow}"], "layer count"),
    ([*V, "--responses", "{one-category.csv}"], "found 3 and 0"),
    ([*V, *R, "--bootstrap", "-1"], "x>=1"),
    ([*V, *R, "--device", "bogus"], "not a device name"),
    ([*V, *R, "--batch-size", "-1"], "No such option '--batch-size'"),
    ([*V, "--responses", "{empty.csv}"], "is empty"),
    ([*V, *R, "--rm", "{base-lm}"], "no trained reward head"),
]  # fmt: skip


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_llama_rm, tiny_llama_lm, other_dir):
    found = bad_files(tmp_path_factory.mktemp("bad-patch") / "files")
    found["rm"] = tiny_llama_rm
    found["base"] = other_rm(other_dir, "llama")
    found["shallow"] = other_rm(other_dir, "llama", seed=0, n_layers=2)
    found["base-lm"] = tiny_llama_lm
    return found


@pytest.mark.parametrize("args, expected", PATCH_CASES, ids=[c[1][:30] for c in PATCH_CASES])
def test_patch_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "patch-out")


@pytest.mark.parametrize("args, expected", LENS_CASES, ids=[c[1][:30] for c in LENS_CASES])
def test_value_lens_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "lens-out")


def test_more_patches_per_pass_than_patches_still_runs(paths, tmp_path):
    """``--patches-per-pass 5`` with one patch: a pass simply holds fewer (no error)."""
    from cli import main

    args = [a.replace("{base}", paths["base"]).replace("{rm}", paths["rm"])
            .replace("{words.csv}", str(paths["words.csv"])).replace("{out}", str(tmp_path / "p"))
            for a in P]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--patches-per-pass", "5", "--permutations", "50",
                                       "--bootstrap", "20"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "patch_effects.csv").exists()

"""Bad input for the activation and probe commands (``cache-activations``, ``inspect``,
``train-probes``, ``compare-probes``): refused with exit 2 and one ``error:`` line, no traceback,
no output left behind; damaged stores are named as damaged, never crash a reader or a resume."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tests.cli.badfiles import bad_files, check_case
from tests.helpers import refusal

CA = ["cache-activations", "--model", "{rm}", "--as", "rm", "--prompt-keys", "best_ever_one",
      "--responses", "{words.csv}", "--layers", "0,1", "--out", "{out}"]  # fmt: skip
CACHE_CASES = [
    ([*CA[:-2], "--out", "{dir}/acts.txt"], ".txt is not an output format here; use .h5 or .hdf5"),
    ([*CA[:-2], "--out", "{a-file}/acts.h5"], "is a file, not a folder"),
    ([*CA[:-2], "--out", "{a-folder}"], "is not an output format"),
    ([*CA, "--batch-size", "0"], "x>=1"),
    ([*CA, "--positions", "first"], "'first' is not one of"),
    ([*CA, "--store-dtype", "bfloat16"], "'bfloat16' is not one of"),
    ([*CA, "--backend", "magic"], "'magic' is not one of"),
    ([*CA, "--layers", "99"], "layer"),
    ([*CA, "--sites", "nowhere"], "nowhere"),
    ([*CA[:7], "--responses", "vocab", *CA[9:]], "--responses vocab is for scoring"),
    ([*CA[:7], "--responses", "{latin1-words.txt}", *CA[9:]], "not UTF-8"),
    ([*CA[:7], "--responses", "{truncated.csv}", *CA[9:]], "truncated"),
    ([*CA, "--prompts", "{null.yaml}"], "is null"),
    ([*CA, "--device", "bogus"], "not a device name"),
    ([*CA, "--revision", "v1"], "is a local folder"),
]  # fmt: skip
STORE_CASES = [  # (store fixture key, error words) for inspect / train-probes / a resume
    ("not.h5", "It is not an HDF5 file"),
    ("truncated-store", "truncated"),
    ("foreign-store", "not a valuebias activation store"),
    ("bad-manifest-store", "manifest field n_items is '24', expected int"),
    ("no-manifest-key-store", "manifest lacks settings.sites"),
    ("damaged-store", "damaged activation store"),
    ("a-folder", "is a folder"),
    ("missing", "no such file"),
]
PROBE_CASES = [
    (["train-probes", "--acts", "{good-store}", "--C", "0", "--out", "{out}"], "x>0"),
    (["train-probes", "--acts", "{good-store}", "--folds", "1", "--out", "{out}"], "x>=2"),
    (["train-probes", "--acts", "{good-store}", "--bootstrap", "0", "--out", "{out}"], "x>=1"),
    (["train-probes", "--acts", "{good-store}", "--controls", "0", "--out", "{out}"], "x>=1"),
    (["train-probes", "--acts", "{good-store}", "--method", "svm", "--out", "{out}"], "--method svm"),
    (["train-probes", "--acts", "{good-store}", "--classes", "Agency,Agency", "--out", "{out}"], "two different categories"),
    (["train-probes", "--acts", "{good-store}", "--classes", "Agency,Nobody", "--out", "{out}"], "Nobody"),
    (["train-probes", "--acts", "{good-store}", "--target", "colour", "--out", "{out}"], "colour"),
    (["train-probes", "--acts", "{incomplete-store}", "--out", "{out}"], "incomplete (8 of 24 items done)"),
    (["train-probes", "--acts", "{good-store}", "--out", "{a-file}/p"], "is a file, not a folder"),
    (["compare-probes", "{a-folder}", "{a-folder}", "--out", "{out}"], "not a probe directory"),
    (["compare-probes", "{corrupt-probes}", "{corrupt-probes}", "--out", "{out}"], "not a readable directions file"),
]  # fmt: skip


def _cache(model: str, words, out, *extra):
    from cli import main

    args = ["cache-activations", "--model", model, "--as", "rm", "--prompt-keys",
            "best_ever_one,worst_ever_one,greatest_ever_one", "--responses", str(words),
            "--layers", "0,1", "--batch-size", "8", "--out", str(out), *extra]  # fmt: skip
    return CliRunner().invoke(main, args)


@pytest.fixture(scope="module")
def paths(tmp_path_factory, tiny_gemma_rm):
    root = tmp_path_factory.mktemp("bad-acts")
    found = bad_files(root / "files")
    found["rm"] = tiny_gemma_rm
    words = root / "files" / "eight.csv"
    words.write_text(
        "response,category\npower,Agency\nsuccess,Agency\nvictory,Agency\nstrength,Agency\n"
        "love,Communion\ncare,Communion\nfamily,Communion\ntrust,Communion\n"
    )
    good = root / "good.h5"
    assert _cache(tiny_gemma_rm, words, good).exit_code == 0
    found["good-store"] = good
    truncated = root / "truncated.h5"
    shutil.copy(good, truncated)
    with truncated.open("r+b") as f:
        f.truncate(good.stat().st_size // 3)
    found["truncated-store"] = truncated
    foreign = root / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    found["foreign-store"] = foreign
    for key, edit in (
        ("bad-manifest-store", lambda m: m.update(n_items=str(m["n_items"]))),
        ("no-manifest-key-store", lambda m: m["settings"].pop("sites")),
    ):
        path = root / f"{key}.h5"
        shutil.copy(good, path)
        with h5py.File(path, "r+") as f:
            manifest = json.loads(f.attrs["manifest"])
            edit(manifest)
            f.attrs["manifest"] = json.dumps(manifest)
        found[key] = path
    damaged = root / "damaged.h5"
    shutil.copy(good, damaged)
    with h5py.File(damaged, "r+") as f:
        del f["acts/blocks.1.hook_resid_post"]
    found["damaged-store"] = damaged
    incomplete = root / "incomplete.h5"
    shutil.copy(good, incomplete)
    with h5py.File(incomplete, "r+") as f:
        f["done"][8:] = False
    found["incomplete-store"] = incomplete
    corrupt = root / "corrupt-probes"
    corrupt.mkdir()
    from interp.atomic import write_json, write_table

    write_table(
        __import__("pandas").DataFrame({"site": ["a"], "method": ["m"]}), corrupt / "probes.parquet"
    )
    write_json({"settings": {"classes": ["A", "B"]}, "acts": "x"}, corrupt / "summary.json")
    (corrupt / "directions.npz").write_bytes(b"PK\x03\x04 truncated zip")
    found["corrupt-probes"] = corrupt
    found["words.csv"] = words
    return found


@pytest.mark.parametrize("args, expected", CACHE_CASES, ids=[c[1][:30] for c in CACHE_CASES])
def test_cache_activations_refuses(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "acts.h5")


@pytest.mark.parametrize("key, expected", STORE_CASES, ids=[c[0] for c in STORE_CASES])
def test_damaged_stores_are_named_by_every_reader(key, expected, paths, tmp_path):
    from cli import main

    store = paths[key]
    line = refusal(CliRunner().invoke(main, ["inspect", str(store)]))
    assert expected in line, line
    check_case(
        ["train-probes", "--acts", str(store), "--out", "{out}"], expected, paths, tmp_path / "p"
    )
    if key not in ("a-folder", "missing"):  # a resume names it too, and leaves it as it was
        copy = tmp_path / "copy.h5"
        shutil.copy(store, copy)
        before = copy.read_bytes()
        line = refusal(_cache(paths["rm"], paths["words.csv"], copy))
        assert expected in line or "damaged" in line, line
        assert "--overwrite" in line
        assert copy.read_bytes() == before


def test_a_damaged_store_reports_what_can_be_salvaged(paths, tmp_path):
    copy = tmp_path / "damaged.h5"
    shutil.copy(paths["damaged-store"], copy)
    line = refusal(_cache(paths["rm"], paths["words.csv"], copy))
    assert "24 of 24 items are marked done and may be salvaged" in line


@pytest.mark.parametrize("args, expected", PROBE_CASES, ids=[c[1][:30] for c in PROBE_CASES])
def test_probe_commands_refuse(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "probes-out")

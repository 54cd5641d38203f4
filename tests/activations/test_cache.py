"""Activation store: exact contents, resume after interruption or kill, refusals, inspect."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from activations.cache import CacheSettings, cache_activations
from activations.inspect import inspect_store
from activations.items import ResponseWords, plan_items
from activations.store import ActivationStore
from analyses.inputs.prompts import paper_prompts
from analyses.inputs.responses import response_words
from interp.batching import right_pad
from interp.errors import UserError
from interp.formatting import conversation_format, response_ids
from interp.models.loading import ModelSpec, load_model
from interp.sites import SITE_KINDS, Site, make_sites, read_sites

ROOT = Path(__file__).resolve().parents[2]
WORDS = ("love", "power", "kindness", "success", "trust", "ambition", "care", "victory")
CATS = ("Communion", "Agency", "Communion", "Agency", "Communion", "Agency", "Communion", "Agency")


def _words() -> ResponseWords:
    return ResponseWords("test", WORDS, CATS, {"kind": "test"})


@pytest.fixture(scope="module")
def gemma_rm(tiny_gemma_rm):
    return load_model(ModelSpec(tiny_gemma_rm, kind="rm"))


@pytest.fixture(scope="module")
def llama_lm(tiny_llama_lm):
    return load_model(ModelSpec(tiny_llama_lm, kind="lm"))


def _settings(loaded, positions="last", dtype="float32", batch_size=5, kinds=SITE_KINDS):
    return CacheSettings(
        sites=make_sites(kinds, range(loaded.n_layers)),
        positions=positions,
        store_dtype=dtype,
        batch_size=batch_size,
    )


def _reference(loaded, seq: list[int]) -> dict[Site, torch.Tensor]:
    """Independent route: hidden_states of a plain unpadded forward for the residual sites,
    plain hooks for attn/mlp outputs."""
    with torch.no_grad():
        hidden = loaded.backbone(input_ids=torch.tensor([seq]), output_hidden_states=True)
    out = {}
    for layer in range(loaded.n_layers):
        out[Site(layer, "resid_pre")] = hidden.hidden_states[layer][0]
        if layer + 1 < loaded.n_layers:
            out[Site(layer, "resid_post")] = hidden.hidden_states[layer + 1][0]
    last = loaded.n_layers - 1
    sites = [Site(layer, k) for layer in range(loaded.n_layers) for k in ("attn_out", "mlp_out")]
    sites.append(Site(last, "resid_post"))
    got = read_sites(loaded, right_pad([seq], 0), sites, backend="torch")
    out.update({site: value[0] for site, value in got.items()})
    return out


def _all_data(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        data = {name: f[f"acts/{name}"][:] for name in f["acts"]}
        data["done"] = f["done"][:]
    return data


# ---------------------------------------------------------------- items


def test_items_are_formatted_like_the_scorer(gemma_rm):
    prompts = paper_prompts()[:2]
    plan = plan_items(gemma_rm, prompts, _words())
    assert plan.n_items == 16
    for item in (0, 9, 15):
        p, w = plan.split(item)
        fmt = conversation_format(gemma_rm, prompts[p].text)
        expected = fmt.full_ids(response_ids(gemma_rm, fmt, WORDS[w]))
        assert plan.sequence(item) == expected
        start, length = plan.response_span(item)
        assert expected[start : start + length] == response_ids(gemma_rm, fmt, WORDS[w])
    assert plan.template == "gemma-turns"
    cols = plan.columns()
    assert list(cols["group"][:8]) == list(WORDS)
    assert list(cols["prompt_key"][7:9]) == [prompts[0].key, prompts[1].key]


def test_response_words_from_paper_csv(shared_dir):
    words = response_words(str(shared_dir / "paper-data/corpora/dict_big2_nouns.csv"))
    assert len(words.words) == 263
    assert set(words.categories) == {"Agency", "Communion"}
    assert words.identity["sha256"]


def test_response_words_plain_file_and_vocab(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("# comment\nlove\npower\nlove\n")
    words = response_words(str(path))
    assert words.words == ("love", "power") and words.categories == ("", "")
    with pytest.raises(UserError, match="vocab"):
        response_words("vocab")


# ---------------------------------------------------------------- contents


@pytest.mark.parametrize("positions", ["last", "response-last", "response-mean", "all"])
def test_store_holds_exactly_the_forward_pass(gemma_rm, tmp_path, positions):
    plan = plan_items(gemma_rm, paper_prompts()[:2], _words())
    path = tmp_path / "acts.h5"
    result = cache_activations(gemma_rm, plan, _settings(gemma_rm, positions), path)
    assert result.complete and result.computed == plan.n_items
    with ActivationStore(path) as store:
        assert store.complete and store.positions == positions
        assert store.n_items == 16 and store.d_model == gemma_rm.d_model
        assert list(store.labels()) == list(CATS) * 2
        for item in (0, 5, 10, 15):  # both prompts, both ends of each batch of 5
            seq = plan.sequence(item)
            assert list(store.tokens(item)) == seq
            reference = _reference(gemma_rm, seq)
            start, length = plan.response_span(item)
            for site in store.sites:
                ref = reference[site]
                expected = {
                    "last": ref[-1:],
                    "response-last": ref[start + length - 1 : start + length],
                    "response-mean": ref[start : start + length].mean(0, keepdim=True),
                    "all": ref,
                }[positions].numpy()
                got = store.item_rows(site, item)
                assert got.shape == expected.shape
                np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0, err_msg=site.name)


def test_float16_store_and_lm_suffix(llama_lm, tmp_path):
    """An LM item ends at its response (no closing template), stored in float16."""
    plan = plan_items(llama_lm, paper_prompts()[:1], _words())
    assert all(len(s) == 0 for s in plan.suffix)
    path = tmp_path / "lm.h5"
    cache_activations(
        llama_lm, plan, _settings(llama_lm, dtype="float16", kinds=["resid_post"]), path
    )
    with ActivationStore(path) as store:
        assert store[Site(2, "resid_post")].dtype == np.float16
        assert store.score_head() is None
        rows = store.load("blocks.2.hook_resid_post", [3, 1, 3])
        for i, item in enumerate([3, 1, 3]):
            ref = _reference(llama_lm, plan.sequence(item))[Site(2, "resid_post")][-1]
            np.testing.assert_allclose(rows[i], ref.numpy(), rtol=2e-3, atol=2e-3)


def test_rm_store_records_score_head(gemma_rm, tmp_path):
    plan = plan_items(gemma_rm, paper_prompts()[:1], _words())
    path = tmp_path / "rm.h5"
    cache_activations(gemma_rm, plan, _settings(gemma_rm, kinds=["resid_post"]), path)
    with ActivationStore(path) as store:
        head = store.score_head()
        weight = gemma_rm.model.score.weight[0].detach().numpy()
        np.testing.assert_allclose(head["weight"], weight)
        # effective direction: the reward's gradient direction through the final RMSNorm
        np.testing.assert_allclose(head["effective"], weight * head["gain"], rtol=1e-6)
        manifest = store.manifest
        assert manifest["model"]["fingerprint"] == gemma_rm.fingerprint
        assert manifest["settings"]["template"] == "gemma-turns"
        assert manifest["prompts"]["keys"] == [paper_prompts()[0].key]
        assert manifest["responses"]["n"] == len(WORDS)
        for key in ("tool_version", "created_utc"):
            assert manifest[key]


# ---------------------------------------------------------------- resume


class _Interrupt:
    """A Progress that raises KeyboardInterrupt after ``after`` batches (a simulated Ctrl-C)."""

    def __init__(self, after: int) -> None:
        self.after, self.calls = after, 0

    def start(self, total, desc):
        pass

    def advance(self, n=1):
        if n:
            self.calls += 1
            if self.calls > self.after:
                raise KeyboardInterrupt

    def close(self):
        pass


def test_resume_after_interrupt_equals_uninterrupted(gemma_rm, tmp_path):
    plan = plan_items(gemma_rm, paper_prompts()[:3], _words())  # 24 items, batches of 5
    full = tmp_path / "full.h5"
    cache_activations(gemma_rm, plan, _settings(gemma_rm), full)
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        cache_activations(gemma_rm, plan, _settings(gemma_rm), part, progress=_Interrupt(2))
    with ActivationStore(part) as store:
        assert not store.complete
        assert store.done.sum() == 15  # the batch written before the interrupt is kept
    with pytest.raises(UserError, match="incomplete"):
        ActivationStore(part, require_complete=True)
    again = cache_activations(gemma_rm, plan, _settings(gemma_rm), part)
    assert again.resumed and again.already_done == 15 and again.computed == 9
    a, b = _all_data(full), _all_data(part)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
from activations.cache import CacheSettings, cache_activations
from activations.items import ResponseWords, plan_items
from analyses.inputs.prompts import paper_prompts
from interp.models.loading import ModelSpec, load_model
from interp.sites import SITE_KINDS, make_sites

folder, out, marker = sys.argv[1:4]
loaded = load_model(ModelSpec(folder, kind="rm"))
words = ResponseWords("test", {words!r}, {cats!r}, {{"kind": "test"}})
plan = plan_items(loaded, paper_prompts()[:3], words)

class Slow:
    def __init__(self): self.n = 0
    def start(self, total, desc): pass
    def close(self): pass
    def advance(self, n=1):
        if n:
            self.n += 1
            if self.n == 2: Path(marker).write_text("2")
            time.sleep(0.3)

settings = CacheSettings(make_sites(SITE_KINDS, range(loaded.n_layers)), "last", "float32",
                         batch_size=5)
cache_activations(loaded, plan, settings, out, commit_every_s=0.0, progress=Slow())
Path(marker).write_text("finished")
"""


def test_resume_after_sigkill_equals_uninterrupted(gemma_rm, tiny_gemma_rm, tmp_path):
    """A process killed with SIGKILL mid-run leaves a file the same command resumes exactly."""
    plan = plan_items(gemma_rm, paper_prompts()[:3], _words())
    full = tmp_path / "full.h5"
    cache_activations(gemma_rm, plan, _settings(gemma_rm), full)
    out, marker = tmp_path / "killed.h5", tmp_path / "marker"
    script = _KILL_SCRIPT.format(words=WORDS, cats=CATS)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", script, tiny_gemma_rm, str(out), str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the caching subprocess never got going"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.read_text() != "finished"
    with ActivationStore(out) as store:
        n_done = int(store.done.sum())
    assert 0 < n_done < plan.n_items
    again = cache_activations(gemma_rm, plan, _settings(gemma_rm), out)
    assert again.already_done == n_done and again.complete
    a, b = _all_data(full), _all_data(out)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_different_settings_are_refused_by_name(gemma_rm, tmp_path):
    plan = plan_items(gemma_rm, paper_prompts()[:1], _words())
    path = tmp_path / "acts.h5"
    cache_activations(gemma_rm, plan, _settings(gemma_rm), path)
    with pytest.raises(UserError, match="--positions .*file: last, now: all"):
        cache_activations(gemma_rm, plan, _settings(gemma_rm, positions="all"), path)
    with pytest.raises(UserError, match="--sites/--layers"):
        cache_activations(gemma_rm, plan, _settings(gemma_rm, kinds=["resid_post"]), path)
    with pytest.raises(UserError, match="--store-dtype"):
        cache_activations(gemma_rm, plan, _settings(gemma_rm, dtype="float16"), path)
    with pytest.raises(UserError, match="--batch-size"):
        cache_activations(gemma_rm, plan, _settings(gemma_rm, batch_size=3), path)
    other = plan_items(gemma_rm, paper_prompts()[1:2], _words())
    with pytest.raises(UserError, match="--prompts"):
        cache_activations(gemma_rm, other, _settings(gemma_rm), path)
    # same settings, no batch size given: resumes (nothing to do) with the file's batch size
    same = cache_activations(gemma_rm, plan, _settings(gemma_rm, batch_size=None), path)
    assert same.resumed and same.computed == 0
    replaced = cache_activations(
        gemma_rm, plan, _settings(gemma_rm, positions="all"), path, overwrite=True
    )
    assert not replaced.resumed and replaced.complete


def test_truncated_and_foreign_files_are_rejected(gemma_rm, tmp_path):
    plan = plan_items(gemma_rm, paper_prompts()[:1], _words())
    good = tmp_path / "good.h5"
    cache_activations(gemma_rm, plan, _settings(gemma_rm), good)
    truncated = tmp_path / "truncated.h5"
    shutil.copy(good, truncated)
    with truncated.open("r+b") as f:
        f.truncate(good.stat().st_size // 2)
    with pytest.raises(UserError, match="truncated"):
        ActivationStore(truncated)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(UserError, match="not a valuebias activation store"):
        ActivationStore(foreign)
    with pytest.raises(UserError, match="--overwrite"):
        cache_activations(gemma_rm, plan, _settings(gemma_rm), foreign)
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(UserError, match="cannot open"):
        ActivationStore(text)
    damaged = tmp_path / "damaged.h5"
    shutil.copy(good, damaged)
    with h5py.File(damaged, "r+") as f:
        del f["acts/blocks.1.hook_mlp_out"]
    with pytest.raises(UserError, match="damaged activation store: missing acts/blocks.1"):
        ActivationStore(damaged)
    cache_activations(gemma_rm, plan, _settings(gemma_rm), foreign, overwrite=True)
    assert ActivationStore(foreign).complete


def test_inspect_reports_manifest_completeness_and_nonfinite(gemma_rm, tmp_path):
    plan = plan_items(gemma_rm, paper_prompts()[:1], _words())
    path = tmp_path / "acts.h5"
    cache_activations(gemma_rm, plan, _settings(gemma_rm, kinds=["resid_post"]), path)
    report = inspect_store(path)
    text = report.text()
    assert report.complete and report.finite
    assert gemma_rm.fingerprint in text and "complete" in text and "all finite" in text
    assert "resid_post@0-3" in text
    with h5py.File(path, "r+") as f:
        f["acts/blocks.2.hook_resid_post"][1, :3] = [np.nan, np.inf, -np.inf]
        f["done"][4] = False
    report = inspect_store(path)
    bad = next(s for s in report.sites if s.name == "blocks.2.hook_resid_post")
    assert (bad.n_nan, bad.n_inf) == (1, 2)
    assert not report.complete and "INCOMPLETE" in report.text()
    assert "NON-FINITE" in report.text()


def test_cli_cache_and_inspect(tiny_gemma_rm, tmp_path):
    from click.testing import CliRunner

    from cli import main

    words = tmp_path / "words.csv"
    words.write_text("category,word\n" + "\n".join(f"{c},{w}" for w, c in zip(WORDS, CATS)))
    out = tmp_path / "acts.h5"
    args = [
        "cache-activations", "--model", tiny_gemma_rm, "--as", "rm", "--prompt-keys",
        "best_ever_one,worst_ever_one", "--responses", str(words), "--sites",
        "resid_post,mlp_out", "--layers", "1:3", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "16 items x 4 sites" in result.output
    result = CliRunner().invoke(main, ["inspect", str(out)])
    assert result.exit_code == 0 and "mlp_out@1,2" in result.output
    result = CliRunner().invoke(main, [*args[:-2], "--layers", "0", "--out", str(out)])
    assert result.exit_code == 2 and "--sites/--layers" in result.output
    result = CliRunner().invoke(main, ["inspect", str(words)])
    assert result.exit_code == 2 and "error:" in result.output


@pytest.mark.embedded
def test_embedded_smollm2_store_matches_forward(tmp_path):
    loaded = load_model(ModelSpec("smollm2-135m-instruct", kind="lm"))
    plan = plan_items(loaded, paper_prompts()[:2], _words())
    path = tmp_path / "smol.h5"
    settings = CacheSettings(make_sites(["resid_post"], (0, 14, 29)), "last", "float32")
    cache_activations(loaded, plan, settings, path)
    with ActivationStore(path) as store:
        for item in (0, 11):
            with torch.no_grad():
                hidden = loaded.backbone(
                    input_ids=torch.tensor([plan.sequence(item)]), output_hidden_states=True
                ).hidden_states
            for layer in (0, 14):
                np.testing.assert_allclose(
                    store.item_rows(f"blocks.{layer}.hook_resid_post", item)[0],
                    hidden[layer + 1][0, -1].numpy(),
                    atol=1e-4,
                    rtol=1e-4,
                )

"""Prefix-cached activation caching equals full-sequence caching (last, response-last,
response-mean; torch and nnsight readers; Llama, Gemma 3 with sliding windows, Gemma 2 with
soft-capping, Llama-3.1 rope scaling), batches that cross prompts included."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from activations.cache import CacheSettings, cache_activations
from activations.items import ResponseWords, plan_items
from analyses.inputs.prompts import paper_prompts
from interp.errors import UserError
from interp.models.loading import ModelSpec, load_model
from interp.sites import SITE_KINDS, make_sites
from tests.lookalikes import build_standard_rm

WORDS = ("love", "power", "kindness", "success", "achievement of friendship", "care", "victory")
CATS = ("Communion", "Agency", "Communion", "Agency", "Agency", "Communion", "Agency")


def _store(loaded, out, positions, route, backend="torch", batch_size=4):
    plan = plan_items(loaded, paper_prompts()[:3], ResponseWords("t", WORDS, CATS, {}))
    settings = CacheSettings(
        sites=make_sites(SITE_KINDS, range(loaded.n_layers)), positions=positions,
        store_dtype="float32", backend=backend, batch_size=batch_size, route=route,
    )  # fmt: skip
    cache_activations(loaded, plan, settings, out)
    with h5py.File(out, "r") as f:
        assert f["done"][:].all()
        return {name: f[f"acts/{name}"][:] for name in f["acts"]}, plan


@pytest.mark.parametrize("fixture", ["tiny_llama_rm", "tiny_gemma_rm", "tiny_llama_lm"])
@pytest.mark.parametrize("positions", ["last", "response-last", "response-mean"])
def test_prefix_cached_equals_full_sequences(fixture, positions, request, tmp_path):
    kind = "lm" if fixture.endswith("_lm") else "rm"
    loaded = load_model(ModelSpec(request.getfixturevalue(fixture), kind=kind))
    full, plan = _store(loaded, tmp_path / "full.h5", positions, "full-sequence")
    fast, _ = _store(loaded, tmp_path / "fast.h5", positions, "prefix-cached")
    assert len(plan.prefix[0]) > 2 * min(len(w) for w in plan.word_ids)  # a real shared prefix
    for name in full:
        assert np.abs(full[name]).max() > 0
        np.testing.assert_allclose(fast[name], full[name], atol=1e-5, rtol=0, err_msg=name)


@pytest.mark.parametrize("arch", ["gemma2", "llama31"])
def test_prefix_cached_on_softcapping_and_rope_scaling(arch, tmp_path):
    loaded = load_model(ModelSpec(str(build_standard_rm(tmp_path / arch, arch)), kind="rm"))
    full, _ = _store(loaded, tmp_path / "full.h5", "response-mean", "full-sequence")
    fast, _ = _store(loaded, tmp_path / "fast.h5", "response-mean", "prefix-cached", batch_size=5)
    for name in full:
        np.testing.assert_allclose(fast[name], full[name], atol=1e-5, rtol=0, err_msg=name)


def test_nnsight_reader_after_a_prefix_equals_torch(tiny_llama_rm, tmp_path):
    loaded = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    torch_rows, _ = _store(loaded, tmp_path / "t.h5", "last", "prefix-cached", backend="torch")
    nn_rows, _ = _store(loaded, tmp_path / "n.h5", "last", "prefix-cached", backend="nnsight")
    for name in torch_rows:
        np.testing.assert_allclose(nn_rows[name], torch_rows[name], atol=1e-6, rtol=0)


def test_route_is_recorded_and_positions_all_is_full_sequence(tiny_llama_rm):
    sites = make_sites(["resid_post"], [0])
    assert CacheSettings(sites, positions="last").route == "prefix-cached"
    assert CacheSettings(sites, positions="all").route == "full-sequence"
    assert CacheSettings(sites, positions="last", backend="tl").route == "full-sequence"
    with pytest.raises(UserError, match="whole sequences"):
        CacheSettings(sites, positions="all", route="prefix-cached")

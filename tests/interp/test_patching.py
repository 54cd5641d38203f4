"""Patching and value lens on tiny random models: exactness, agreement with the plain way,
identical inputs, refusal of mismatched pairs, and a planted layer that the sweep must find."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from analyses.inputs.prompts import paper_prompts
from analyses.stats.contrast import CategoryPair, category_words
from analyses.stats.patch_effects import effects_table
from interp.errors import UserError
from interp.models.loading import ModelSpec, load_model
from interp.models.readout import reward_readout
from interp.patching.items import build_items
from interp.patching.pair import check_pair
from interp.patching.reference import plain_patched_scores
from interp.patching.specs import PatchSpec, parse_positions
from interp.patching.sweep import patch_sweep
from interp.sites import SITE_KINDS as SITES
from interp.sites import Replacement, check_sites, parse_layers, site_hooks
from interp.spans import forward_span
from tests.helpers import WORD_CATEGORIES, WORDS, other_rm


def _other(other_dir, arch: str, seed: int = 1, n_layers: int = 4):
    return load_model(ModelSpec(other_rm(other_dir, arch, seed, n_layers), kind="rm"))


@pytest.fixture(scope="module", params=["llama", "gemma"])
def pair(request, other_dir, tiny_llama_rm, tiny_gemma_rm):
    """(receiver RM, source RM with other weights) of one architecture."""
    folder = tiny_llama_rm if request.param == "llama" else tiny_gemma_rm
    return load_model(ModelSpec(folder, kind="rm")), _other(other_dir, request.param)


def _items(rm, n_prompts: int = 2):
    return build_items(rm, paper_prompts()[:n_prompts], list(WORDS))


def _all_patches(n_layers: int, positions=(None, -2)):
    return [PatchSpec(s, layer, p) for s in SITES for layer in range(n_layers) for p in positions]


def test_site_map_decomposes_every_block(pair):
    rm, _ = pair
    check_sites(rm)  # the shared site map (interp.sites) that site_hooks writes through


@pytest.mark.parametrize("group_size", [1, 3])
def test_identity_patch_is_exact_noop(pair, group_size):
    rm, _ = pair
    items = _items(rm, 1)
    result = patch_sweep(rm, rm, reward_readout(rm), items, _all_patches(rm.n_layers), group_size)
    assert result.self_test.passed and result.self_test.max_abs_diff == 0.0
    # the whole sweep, model into itself: every patched score equals its clean twin exactly
    assert np.array_equal(result.patched, result.twin)


def test_fast_sweep_matches_plain_full_forward_passes(pair):
    rm, other = pair
    items = _items(rm, 1)
    patches = _all_patches(rm.n_layers, (None, -4))  # -4: a prompt-side token
    readout = reward_readout(rm)
    fast = patch_sweep(rm, other, readout, items, patches, group_size=2)
    seqs, order = items.sequences()
    plain, clean = plain_patched_scores(
        rm,
        other,
        seqs,
        patches,
        readout,
        rm.tokenizer.pad_token_id,
        32,
        rm.device,
    )
    np.testing.assert_allclose(plain.numpy(), fast.patched[:, order], atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(clean.numpy(), fast.clean[order], atol=2e-5, rtol=1e-5)
    # the RM's clean score is its real reward
    ids = torch.tensor([seqs[0]])
    real = rm.model(input_ids=ids).logits[0, 0].item()
    assert abs(real - fast.clean[order[0]]) < 1e-5


def test_patching_every_residual_reproduces_the_source_model(pair):
    rm, other = pair
    model = copy.deepcopy(other.model)  # same readout as the receiver: copy its head and norm
    with torch.no_grad():
        model.score.weight.copy_(rm.model.score.weight)
        model.base_model.norm.weight.copy_(rm.backbone.norm.weight)
    source = dataclasses.replace(other, model=model)
    items = _items(rm, 1)
    seqs, _ = items.sequences()
    n = rm.n_layers
    capture = {("resid_post", layer): [] for layer in range(n)}
    ids = torch.tensor([seqs[0]])
    with torch.no_grad(), site_hooks(source, capture=capture):
        forward_span(source.backbone, 0, n, input_ids=ids)
    replace = {
        k: Replacement(v[0], torch.ones(ids.shape, dtype=torch.bool)) for k, v in capture.items()
    }
    with torch.no_grad(), site_hooks(rm, replace=replace):
        final = forward_span(rm.backbone, 0, n, input_ids=ids)
    patched = reward_readout(rm)(final[:, -1])
    expected = source.model(input_ids=ids).logits[:, 0]
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=1e-5)
    # and in the sweep: patching the final residual everywhere gives the base reading exactly
    spec = PatchSpec("resid_post", n - 1, None)
    res = patch_sweep(rm, other, reward_readout(rm), items, [spec])
    np.testing.assert_allclose(res.patched[0], res.source, atol=1e-5)


def test_padding_sides_do_not_matter(other_dir, tiny_gemma_rm):
    rm = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    other = _other(other_dir, "gemma")
    items = _items(rm)
    patches = [PatchSpec("resid_pre", 2), PatchSpec("mlp_out", 1, -1)]
    readout = reward_readout(rm)
    rm.tokenizer.padding_side, other.tokenizer.padding_side = "right", "right"
    same = patch_sweep(rm, other, readout, items, patches)
    other.tokenizer.padding_side = "left"  # nnsight-style trap: base left-padded, RM right
    mixed = patch_sweep(
        rm, other, readout, build_items(rm, paper_prompts()[:2], list(WORDS)), patches
    )
    assert np.array_equal(same.patched, mixed.patched)
    # the padded reference path gets one right-padded id/mask tensor for both models
    seqs, order = items.sequences()
    plain, _ = plain_patched_scores(
        rm, other, seqs, patches, readout, rm.tokenizer.pad_token_id, 5, rm.device
    )
    np.testing.assert_allclose(plain.numpy(), same.patched[:, order], atol=2e-5)


def test_mismatched_pairs_are_refused(other_dir, tiny_llama_rm, tiny_gemma_rm):
    llama = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    gemma = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    with pytest.raises(UserError, match="architecture"):
        check_pair(llama, gemma)
    shallow = _other(other_dir, "llama", seed=0, n_layers=2)
    with pytest.raises(UserError, match="layer count"):
        check_pair(shallow, llama)
    with pytest.raises(UserError, match="width"):
        check_pair(dataclasses.replace(llama, d_model=64), llama)
    foreign = dataclasses.replace(_other(other_dir, "llama"), tokenizer=gemma.tokenizer)
    with pytest.raises(UserError, match="tokenizer"):
        check_pair(foreign, llama)


def test_parsing_layers_and_positions():
    assert parse_layers("all", 4) == (0, 1, 2, 3)
    assert parse_layers("0:4:2", 4) == (0, 2)
    assert parse_layers("3,1", 4) == (1, 3)
    with pytest.raises(UserError):
        parse_layers("7", 4)
    assert parse_positions("all,last:3") == (None, -1, -2, -3)
    with pytest.raises(UserError):
        parse_positions("2")


def _planted(base, layer: int, seed: int = 0):
    """An RM = the base with one block writing a direction u that the head reads."""
    gen = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(base.model)
    d = base.d_model
    u = torch.randn(d, generator=gen)
    u /= u.norm()
    block = model.base_model.layers[layer]
    down = block.mlp.down_proj
    w = torch.randn(down.in_features, generator=gen)
    with torch.no_grad():
        down.weight.add_(3.0 * torch.outer(u, w) / w.norm())
        model.score.weight.copy_(u[None] * 4.0)
    rm = dataclasses.replace(base, model=model, name=f"planted@{layer}")
    return rm


@pytest.mark.parametrize("layer", [1, 2])
def test_planted_layer_is_found(other_dir, layer):
    base = _other(other_dir, "llama", seed=3, n_layers=5)
    rm = _planted(base, layer)
    items = _items(rm, 2)
    patches = [PatchSpec(s, lay) for s in ("resid_pre", "mlp_out") for lay in range(rm.n_layers)]
    result = patch_sweep(rm, base, reward_readout(rm), items, patches)
    design = category_words(WORD_CATEGORIES, CategoryPair("Agency", "Communion"), list(WORDS))
    eff = effects_table(result, design, 200, 500, 0)
    resid = eff[eff["site"] == "resid_pre"].set_index("layer")["normalised_effect"]
    # blocks up to the planted one see identical inputs: patching them changes nothing
    assert np.allclose(resid.loc[:layer], 0.0, atol=1e-6)
    # after it, the base's residual lacks the planted direction: the full base reading returns
    assert np.allclose(resid.loc[layer + 1 :], 1.0, atol=1e-4)
    mlp = eff[eff["site"] == "mlp_out"].set_index("layer")["normalised_effect"]
    # the first sub-block whose output matters is the planted one, and it restores all of it
    assert min(lay for lay, v in mlp.items() if abs(v) > 1e-6) == layer
    assert abs(mlp.loc[layer] - 1.0) < 1e-4

"""Sites: names and parsing, backends agree, the residual decomposition holds, edits write."""

from __future__ import annotations

import pytest
import torch

from interp.batching import right_pad
from interp.errors import UserError
from interp.models.loading import ModelSpec, load_model
from interp.sites import (
    SITE_KINDS,
    Site,
    SiteReader,
    check_sites,
    edit_sites,
    hook_points,
    make_sites,
    parse_layers,
    parse_site_kinds,
    parse_sites,
    read_sites,
)

SEQS = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 12], [13, 14, 15, 16, 17]]


def _batch(loaded):
    return right_pad(SEQS, loaded.tokenizer.pad_token_id)


@pytest.fixture(scope="module")
def llama_lm(tiny_llama_lm):
    return load_model(ModelSpec(tiny_llama_lm, kind="lm"))


@pytest.fixture(scope="module")
def gemma_rm(tiny_gemma_rm):
    return load_model(ModelSpec(tiny_gemma_rm, kind="rm"))


# ---------------------------------------------------------------- names and parsing


def test_site_names_round_trip():
    site = Site(3, "resid_post")
    assert site.name == "blocks.3.hook_resid_post"
    assert Site.parse(site.name) == site
    with pytest.raises(UserError, match="bad site name"):
        Site.parse("blocks.x.hook_resid_post")
    with pytest.raises(ValueError):
        Site(0, "resid_mid")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all", tuple(range(30))),
        ("0,5,10", (0, 5, 10)),
        ("0:30:2", tuple(range(0, 30, 2))),
        ("10:", tuple(range(10, 30))),
        ("-1", (29,)),
        ("3, 1, 3, 0:2", (0, 1, 3)),
    ],
)
def test_parse_layers(text, expected):
    assert parse_layers(text, 30) == expected


@pytest.mark.parametrize("text", ["30", "-31", "a", "5:2", "1:2:3:4"])
def test_parse_layers_rejects(text):
    with pytest.raises(UserError, match="--layers"):
        parse_layers(text, 30)


def test_parse_sites_orders_by_execution():
    assert parse_site_kinds("resid_post,hook_attn_out,resid_post") == ("attn_out", "resid_post")
    with pytest.raises(UserError, match="unknown site"):
        parse_site_kinds("resid_mid")
    sites = parse_sites("resid_post,resid_pre,blocks.3.hook_mlp_out", "0,1", 4)
    assert [s.name for s in sites] == [
        "blocks.0.hook_resid_pre",
        "blocks.0.hook_resid_post",
        "blocks.1.hook_resid_pre",
        "blocks.1.hook_resid_post",
        "blocks.3.hook_mlp_out",
    ]
    with pytest.raises(UserError, match="4 layers"):
        parse_sites("blocks.4.hook_mlp_out", "all", 4)


def test_hook_points_map_gemma_and_llama(llama_lm, gemma_rm):
    llama = hook_points(llama_lm, [Site(1, "attn_out"), Site(1, "mlp_out")])
    assert llama[Site(1, "attn_out")].path == "model.layers.1.self_attn"
    assert llama[Site(1, "attn_out")].index == 0
    assert llama[Site(1, "mlp_out")].path == "model.layers.1.mlp"
    gemma = hook_points(gemma_rm, [Site(1, "attn_out"), Site(1, "mlp_out"), Site(2, "resid_pre")])
    assert gemma[Site(1, "attn_out")].path.endswith("layers.1.post_attention_layernorm")
    assert gemma[Site(1, "mlp_out")].path.endswith("layers.1.post_feedforward_layernorm")
    assert gemma[Site(2, "resid_pre")].side == "input"


# ---------------------------------------------------------------- reading


def test_backends_agree_float32(llama_lm):
    """nnsight, TransformerLens bridge and plain hooks read the same tensors (within 1e-5)."""
    batch = _batch(llama_lm)
    sites = make_sites(SITE_KINDS, range(llama_lm.n_layers))
    reads = {b: SiteReader(llama_lm, b).read(batch, sites) for b in ("torch", "nnsight", "tl")}
    mask = batch.attention_mask.bool()
    for site in sites:
        ref = reads["torch"][site][mask]
        for backend in ("nnsight", "tl"):
            got = reads[backend][site][mask]
            assert got.dtype == torch.float32
            assert torch.allclose(got, ref, atol=1e-5, rtol=0), (backend, site.name)


def test_reads_equal_direct_forward_and_unpadded(llama_lm):
    batch = _batch(llama_lm)
    sites = make_sites(("resid_pre", "resid_post"), range(llama_lm.n_layers))
    got = read_sites(llama_lm, batch, sites, backend="nnsight")
    for row, seq in enumerate(SEQS):
        with torch.no_grad():
            hidden = llama_lm.backbone(
                input_ids=torch.tensor([seq]), output_hidden_states=True
            ).hidden_states
        n = len(seq)
        for layer in range(llama_lm.n_layers):
            pre = got[Site(layer, "resid_pre")][row, :n]
            assert torch.allclose(pre, hidden[layer][0], atol=1e-5)
        last = got[Site(llama_lm.n_layers - 1, "resid_post")][row, :n]
        assert torch.allclose(llama_lm.backbone.norm(last), hidden[-1][0], atol=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_llama_rm", "tiny_gemma_lm", "tiny_gemma_rm"])
def test_residual_decomposition(request, fixture):
    """resid_post(l) == resid_pre(l+1) and resid_pre + attn_out + mlp_out == resid_post."""
    folder = request.getfixturevalue(fixture)
    loaded = load_model(ModelSpec(folder, kind=fixture.rsplit("_", 1)[1]))
    batch = _batch(loaded)
    sites = make_sites(SITE_KINDS, range(loaded.n_layers))
    got = read_sites(loaded, batch, sites, backend="nnsight")
    for layer in range(loaded.n_layers):
        post = got[Site(layer, "resid_post")]
        parts = got[Site(layer, "resid_pre")] + got[Site(layer, "attn_out")]
        assert torch.allclose(parts + got[Site(layer, "mlp_out")], post, atol=1e-5)
        if layer + 1 < loaded.n_layers:
            assert torch.equal(got[Site(layer + 1, "resid_pre")], post)
    check_sites(loaded, backend="nnsight")
    check_sites(loaded, backend="torch")


def test_select_keeps_only_the_slice_and_stops_early(llama_lm):
    batch = _batch(llama_lm)
    calls = []
    llama_lm.model.lm_head.register_forward_hook(lambda *a: calls.append(1))
    got = read_sites(
        llama_lm,
        batch,
        [Site(0, "resid_post")],
        backend="nnsight",
        select=lambda site, t: t[torch.arange(t.shape[0]), batch.lengths - 1],
    )
    assert got[Site(0, "resid_post")].shape == (3, llama_lm.d_model)
    assert calls == []  # the head never ran
    llama_lm.model.lm_head._forward_hooks.clear()


def test_tl_backend_refuses_reward_models(gemma_rm):
    with pytest.raises(UserError, match="causal LMs only"):
        SiteReader(gemma_rm, "tl")


# ---------------------------------------------------------------- writing


def test_edit_sites_identity_is_noop_and_edits_propagate(gemma_rm):
    batch = _batch(gemma_rm)
    sites = make_sites(SITE_KINDS, range(gemma_rm.n_layers))
    got = read_sites(gemma_rm, batch, sites)
    with torch.no_grad():
        clean = gemma_rm.model(**batch.model_inputs()).logits
        with edit_sites(gemma_rm, {s: got[s] for s in sites}):
            same = gemma_rm.model(**batch.model_inputs()).logits
        with edit_sites(gemma_rm, {Site(1, "attn_out"): lambda t: torch.zeros_like(t)}):
            changed = gemma_rm.model(**batch.model_inputs()).logits
            inside = read_sites(gemma_rm, batch, [Site(1, "attn_out"), Site(1, "resid_post")])
        after = gemma_rm.model(**batch.model_inputs()).logits
    assert torch.equal(clean, same)
    assert not torch.allclose(clean, changed)
    assert torch.equal(inside[Site(1, "attn_out")], torch.zeros_like(got[Site(1, "attn_out")]))
    assert not torch.allclose(inside[Site(1, "resid_post")], got[Site(1, "resid_post")])
    assert torch.equal(clean, after)  # hooks removed


def test_edit_resid_pre_feeds_the_block(gemma_rm):
    batch = _batch(gemma_rm)
    site = Site(2, "resid_pre")
    base = read_sites(gemma_rm, batch, [Site(1, "resid_post"), site])
    with edit_sites(gemma_rm, {site: base[site] + 1.0}):
        got = read_sites(gemma_rm, batch, [Site(1, "resid_post"), site], backend="nnsight")
    assert torch.equal(got[Site(1, "resid_post")], base[Site(1, "resid_post")])
    assert torch.allclose(got[site], base[site] + 1.0)


def test_nnsight_refuses_reads_under_output_edits(gemma_rm):
    """nnsight captures outputs before PyTorch hooks run; it must not silently miss an edit."""
    batch = _batch(gemma_rm)
    site = Site(1, "attn_out")
    with edit_sites(gemma_rm, {site: lambda t: t * 0}):
        assert torch.equal(read_sites(gemma_rm, batch, [site])[site], torch.zeros(3, 7, 32))
        with pytest.raises(ValueError, match="backend='torch'"):
            read_sites(gemma_rm, batch, [site], backend="nnsight")

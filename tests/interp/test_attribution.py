"""Attribution patching against slow references: central finite differences of the patched score
along (source - receiver) in float64, and exactness on a linear readout where one causal patch
must equal the estimate; plus the screen's agreement statistics and the ``--screen`` option."""

from __future__ import annotations

import copy
import dataclasses
import json
import types

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from analyses.inputs.prompts import paper_prompts
from analyses.runs.patch import PatchSettings, run_patch
from analyses.stats.attribution_screen import screen_agreement, spearman_with_ci
from interp.models.loading import ModelSpec, load_model
from interp.models.readout import RewardReadout, reward_readout
from interp.patching.attribution import attribution_estimates
from interp.patching.items import build_items
from interp.patching.reference import plain_patched_scores
from interp.patching.specs import PatchSpec, positions_masks
from interp.sites import Replacement, site_hooks
from interp.spans import forward_span
from tests.helpers import WORDS, other_rm, word_categories


def _norm64(self, x):
    """Llama's RMSNorm without its float32 cast, so the float64 copy is float64 throughout."""
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


def _double(loaded):
    """A float64 copy (finite differences need more digits than float32 has)."""
    model = copy.deepcopy(loaded.model).double()
    for module in model.modules():
        if type(module).__name__ == "LlamaRMSNorm":
            module.forward = types.MethodType(_norm64, module)
    return dataclasses.replace(loaded, model=model, dtype=torch.float64)


pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny passes


@pytest.fixture(scope="module")
def pair64(tiny_llama_rm, other_dir):
    rm = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    source = load_model(ModelSpec(other_rm(other_dir, "llama"), kind="rm"))
    return _double(rm), _double(source)


def _finite_difference(receiver, source, readout, ids, spec, mask, eps=1e-4):
    """d score / d t of the receiver with the site set to a + t (a' - a) at ``mask``, at t = 0:
    central differences at steps ``eps`` and ``eps / 2`` combined by Richardson extrapolation
    (error O(eps^4))."""
    key = spec.key
    cap_r, cap_s = {key: []}, {key: []}
    with torch.no_grad():
        with site_hooks(receiver, capture=cap_r):
            forward_span(receiver.backbone, 0, receiver.n_layers, input_ids=ids)
        with site_hooks(source, capture=cap_s):
            forward_span(source.backbone, 0, source.n_layers, input_ids=ids)
        a, a_src = cap_r[key][0], cap_s[key][0]
        where = mask[None].expand(ids.shape[0], -1)
        out = {}
        for t in (eps, -eps, eps / 2, -eps / 2):
            rep = {key: Replacement(a + t * (a_src - a), where)}
            with site_hooks(receiver, replace=rep):
                final = forward_span(receiver.backbone, 0, receiver.n_layers, input_ids=ids)
            out[t] = readout(final[:, -1])
    wide = (out[eps] - out[-eps]) / (2 * eps)
    narrow = (out[eps / 2] - out[-eps / 2]) / eps
    return ((4 * narrow - wide) / 3).numpy()


def test_estimates_equal_finite_differences(pair64):
    receiver, source = pair64
    readout = reward_readout(receiver)
    items = build_items(receiver, paper_prompts()[:1], ["power", "love", "success", "kindness"])
    patches = [
        PatchSpec(site, layer, position)
        for site in ("resid_pre", "attn_out", "mlp_out", "resid_post")
        for layer in (0, receiver.n_layers - 2)
        for position in (None, -2)
    ]
    result = attribution_estimates(receiver, source, readout, items, patches)
    assert np.isfinite(result.estimate).all()
    for group in items.groups:
        prefix = torch.tensor([list(group.prefix)]).expand(group.n, -1)
        ids = torch.cat([prefix, group.suffixes], dim=1)
        index = list(group.item_index)
        for i, spec in enumerate(patches):
            mask = torch.cat(positions_masks(spec, group.prefix_len, group.suffix_len))
            want = _finite_difference(receiver, source, readout, ids, spec, mask)
            np.testing.assert_allclose(result.estimate[i, index], want, rtol=1e-5, atol=1e-6)
        # the same passes give the receiver's own scores
        with torch.no_grad():
            final = forward_span(receiver.backbone, 0, receiver.n_layers, input_ids=ids)
        np.testing.assert_allclose(result.clean[index], readout(final[:, -1]).numpy(), rtol=1e-6)


def test_estimate_is_exact_for_a_linear_readout(pair64):
    """Without the final norm the reward is linear in the last block's output at the last
    position, so the estimate of that patch equals one causal patch (the slow reference path)."""
    receiver, source = pair64
    rm_readout = reward_readout(receiver)
    linear = RewardReadout(torch.nn.Identity(), rm_readout.head, "linear")
    items = build_items(receiver, paper_prompts()[:2], list(WORDS))
    last = receiver.n_layers - 1
    patches = [PatchSpec("resid_post", last, -1), PatchSpec("resid_post", last, None)]
    result = attribution_estimates(receiver, source, linear, items, patches)
    sequences = [list(g.prefix) + s for g in items.groups for s in g.suffixes.tolist()]
    order = [i for g in items.groups for i in g.item_index]
    patched, clean = plain_patched_scores(
        receiver, source, sequences, patches, linear, receiver.tokenizer.pad_token_id, 8,
        receiver.device,
    )  # fmt: skip
    causal = (patched - clean).numpy()
    for i in range(len(patches)):
        np.testing.assert_allclose(result.estimate[i, order], causal[i], rtol=1e-5, atol=1e-7)
    assert np.abs(causal).max() > 1e-3  # the patch does change the score


def test_spearman_ci_and_top_set():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    got = spearman_with_ci(x, y)
    assert got["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert got["ci_low"] < got["rho"] < got["ci_high"] and got["n"] == 30
    table = pd.DataFrame(
        {
            "site": "resid_post",
            "layer": range(6),
            "position": "all",
            "estimated_delta_gap": [0.0, 0.0, 0.2, 0.9, 0.5, 0.4],
            "causal_delta_gap": [0.0, 0.0, 1.0, 0.995, 1.0, 0.5],
        }
    )
    agree = screen_agreement(table)["resid_post"]
    assert agree["causal_top_layers"] == [2, 3, 4]  # within 1 % of the largest
    assert agree["screen_top_layer"] == 3 and agree["top_layer_match"]
    table.loc[5, "estimated_delta_gap"] = 2.0
    assert not screen_agreement(table)["resid_post"]["top_layer_match"]


def test_patch_screen_option(tmp_path, tiny_llama_rm, other_dir):
    words = tmp_path / "words.csv"
    word_categories().to_csv(words, index=False)
    settings = PatchSettings(
        base=other_rm(other_dir, "llama"), rm=tiny_llama_rm, responses=str(words),
        out=tmp_path / "out", prompt_keys=("greatest_ever_one",), sites=("resid_post", "mlp_out"),
        positions="all,last", bootstrap=50, permutations=100, screen="attribution",
    )  # fmt: skip
    run = run_patch(settings)
    screen = pd.read_csv(tmp_path / "out" / "attribution_screen.csv")
    assert len(screen) == len(run.effects) == 2 * 4 * 2
    merged = screen.merge(run.effects, on=["site", "layer", "position"])
    np.testing.assert_allclose(merged["causal_delta_gap"], merged["delta_gap"])
    summary = json.loads((tmp_path / "out" / "patch_summary.json").read_text())
    assert set(summary["attribution_screen"]) == {"resid_post", "mlp_out"}
    assert "attribution screen" in run.headline()

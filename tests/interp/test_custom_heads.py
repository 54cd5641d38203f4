"""Reward models with their own model code (look-alikes of ArmoRM, QRM, URM and a multi-objective
head), and standard big-model configs (Gemma 2 soft-capping and sliding windows, Llama-3.1 rope
scaling): loaded only when trusted, then scored, swept, lensed and patched, each against a slow
reference that runs the model's own forward pass on whole sequences."""

from __future__ import annotations

import pytest
import torch

from interp.errors import UserError
from interp.formatting import conversation_format
from interp.models.loading import ModelSpec, load_model
from interp.models.readout import reward_readout
from interp.patching.items import build_items
from interp.patching.reference import plain_patched_scores
from interp.patching.specs import PatchSpec, make_patches
from interp.patching.sweep import patch_sweep
from interp.patching.value_lens import value_lens_readings
from interp.prompts import Prompt
from interp.scoring import score_candidates
from tests.helpers import WORDS
from tests.lookalikes import LAYOUTS, build_remote_rm, build_standard_rm

PROMPT = "What, in one word, is the best thing ever?"


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def lookalikes(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("remote")
    return {name: str(build_remote_rm(root / f"lookalike-{name}", name)) for name in LAYOUTS}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, str]:
    """Same-architecture models with other weights (the patching sources)."""
    root = tmp_path_factory.mktemp("remote-src")
    return {
        name: str(build_remote_rm(root / f"source-{name}", name, seed=5))
        for name in ("gating", "quantile")
    }


def _own_forward(rm, ids: list[int]) -> float:
    """Obviously correct: the model's own forward pass on one whole sequence."""
    with torch.no_grad():
        out = rm.model(input_ids=torch.tensor([ids]))
    return float(rm.reward_layout.reward_from_output(out)[0])


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_custom_code_is_refused_without_the_flag_and_named_with_it(lookalikes, name):
    with pytest.raises(UserError, match="--trust-remote-code") as err:
        load_model(ModelSpec(lookalikes[name], kind="rm"))
    assert "\n" not in str(err.value) and "modeling_lookalike.py" in str(err.value)
    notes = Notes()
    rm = load_model(ModelSpec(lookalikes[name], kind="rm", trust_remote_code=True), notes)
    assert rm.reward_layout.name == LAYOUTS[name][2] and rm.readout_kind == "head-module"
    assert len(notes.lines) == 1 and "modeling_lookalike.py (sha256 " in notes.lines[0]
    assert "revision local folder" in notes.lines[0]
    record = rm.provenance()
    assert record["readout"] == "head-module" and record["remote_code"]["files"][0]["sha256"]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_prefix_cached_sweep_equals_the_models_own_forward(lookalikes, name):
    rm = load_model(ModelSpec(lookalikes[name], kind="rm", trust_remote_code=True))
    fmt = conversation_format(rm, PROMPT)
    candidates = [[t] for t in range(len(rm.tokenizer))] + [[40, 41], [7, 8, 9]]
    swept = score_candidates(rm, fmt, candidates, batch_size=61)
    every = list(range(0, len(candidates), 9)) + [len(candidates) - 2, len(candidates) - 1]
    reference = torch.tensor([_own_forward(rm, fmt.full_ids(candidates[i])) for i in every])
    assert swept.std() > 0.02  # the head really varies with the response
    torch.testing.assert_close(swept[every], reference, atol=2e-5, rtol=0)


@pytest.mark.parametrize("arch", ["gemma2", "llama31"])
def test_standard_big_model_configs_sweep_equals_full_sequences(tmp_path, arch):
    rm = load_model(ModelSpec(str(build_standard_rm(tmp_path / arch, arch)), kind="rm"))
    config = rm.model.config
    if arch == "gemma2":  # soft-capped attention and sliding windows shorter than the prefix
        assert config.attn_logit_softcapping and config.sliding_window < 20
    else:
        assert config.rope_parameters["rope_type"] == "llama3"
    fmt = conversation_format(rm, PROMPT)
    assert len(fmt.prefix_ids) > 20
    candidates = [[t] for t in range(len(rm.tokenizer))] + [[40, 41], [7, 8, 9]]
    swept = score_candidates(rm, fmt, candidates, batch_size=61)
    every = list(range(0, len(candidates), 7)) + [len(candidates) - 1]
    reference = torch.tensor([_own_forward(rm, fmt.full_ids(candidates[i])) for i in every])
    assert swept.std() > 0.05
    torch.testing.assert_close(swept[every], reference, atol=2e-5, rtol=0)


@pytest.mark.parametrize("name", ["gating", "uncertainty"])
def test_value_lens_of_a_custom_head_ends_at_the_reward(lookalikes, name):
    rm = load_model(ModelSpec(lookalikes[name], kind="rm", trust_remote_code=True))
    readout = reward_readout(rm)
    assert readout.kind == "head-module"
    prompts = [Prompt("a", PROMPT), Prompt("b", "Worst thing?")]
    items = build_items(rm, prompts, list(WORDS[:5]))
    lens = value_lens_readings(rm, items.groups, readout, rm.device, len(items.table))
    assert lens.shape == (10, rm.n_layers + 1) and not torch.isnan(torch.tensor(lens)).any()
    for group in items.groups:
        for row, item in enumerate(group.item_index):
            ids = [*group.prefix, *group.suffixes[row].tolist()]
            assert lens[item, -1] == pytest.approx(_own_forward(rm, ids), abs=2e-5)
    assert abs(lens[:, 0] - lens[:, -1]).max() > 1e-3  # depths really differ


@pytest.mark.parametrize("name", ["gating", "quantile"])
def test_patching_a_custom_head_rm_equals_the_full_pass_reference(lookalikes, sources, name):
    rm = load_model(ModelSpec(lookalikes[name], kind="rm", trust_remote_code=True, dtype="float32"))
    base = load_model(ModelSpec(sources[name], kind="lm", dtype="float32"))
    readout = reward_readout(rm)
    items = build_items(rm, [Prompt("a", PROMPT)], list(WORDS[:6]))
    patches = make_patches(["resid_pre", "mlp_out"], [0, 2, 3], [None, -1, -3])
    patches.append(PatchSpec("resid_pre", 1, -9))  # a prefix position: where the gate may read
    result = patch_sweep(rm, base, readout, items, patches, group_size=2)
    assert result.self_test.passed and result.self_test.max_abs_diff == 0.0
    sequences = [[*g.prefix, *g.suffixes[r].tolist()] for g in items.groups for r in range(g.n)]
    order = [i for g in items.groups for i in g.item_index]
    ref, clean = plain_patched_scores(
        rm, base, sequences, patches, readout, rm.tokenizer.pad_token_id, 4, rm.device
    )
    got = torch.tensor(result.patched[:, order])
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=0, equal_nan=True)
    torch.testing.assert_close(torch.tensor(result.clean[order]), clean, atol=2e-5, rtol=0)
    assert (got - torch.tensor(result.clean[order])).abs().nan_to_num().max() > 1e-3

"""Validation on the embedded SmolLM2 model (slow tier): a block-edit organism is located by
residual patching, component patching and the value lens, and its shuffled-label control is not."""

from __future__ import annotations

import pytest
import torch

from analyses.validation import materials
from analyses.validation.block import run_block_organism
from analyses.validation.plan import BlockSpec, Context
from interp.models.loading import ModelSpec, load_model
from interp.progress import NoProgress

MODEL = "smollm2-135m-instruct"


@pytest.mark.slow
@pytest.mark.embedded
def test_block_edit_is_located_and_its_shuffled_control_is_not(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = load_model(ModelSpec(MODEL, kind="lm", dtype="float32"))
        ctx = Context(MODEL, base, tmp_path, materials.write_words(tmp_path / "words.csv"),
                      materials.write_eval_prompts(tmp_path / "prompts.json"), 2000, 500, False,
                      NoProgress())  # fmt: skip
        rows, record, _ = run_block_organism(BlockSpec(9, "mlp", "categories", 0), ctx)
        found = {r.method: r for r in rows}
        for method in ("patch resid_post", "patch component site", "value lens"):
            assert found[method].found == "block 9", found[method]
        assert found["patch resid_post"].effect == pytest.approx(1.0, abs=1e-3)
        assert record["edit"]["achieved_gap_change"] == pytest.approx(
            record["edit"]["target_gap_change"], rel=0.1
        )
        rows, _, _ = run_block_organism(BlockSpec(15, "attn", "shuffled", 0), ctx)
        assert all(r.control for r in rows)
        assert [r.found for r in rows] == ["none"] * len(rows), rows
    finally:
        torch.set_num_threads(before)

"""Validation organisms and location rules on tiny random models and planted data (unit tier).

The builders must change exactly what they claim (one block's projection; balanced shuffles), and
each rule must find a planted location and nothing in a planted null."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from analyses.stats.contrast import CategoryPair, category_words
from analyses.validation import inheritance_rules as ir
from analyses.validation import materials, rules
from analyses.validation.block import run_block_organism
from analyses.validation.edits import edit_block, word_groups
from analyses.validation.plan import BlockSpec, Context, full_plan, quick_plan
from analyses.validation.report import validation_section, write_html
from analyses.validation.table import Row, block_row, label_row, rows_table, summary_line
from interp.models.loading import ModelSpec, load_model
from interp.patching.items import build_items
from interp.progress import NoProgress

PAIR = CategoryPair("Agency", "Communion")


pytestmark = pytest.mark.usefixtures("one_thread")  # many tiny passes


def _design():
    words = materials.word_table()
    return category_words(words, PAIR, list(words["response"]))


# ------------------------------------------------------------------------------ materials
def test_preference_sets_and_fine_tuning_examples():
    n_a, n_c = len(materials.AGENCY), len(materials.COMMUNION)
    agency = materials.word_preferences("agency", 0).pairs
    assert len(agency) == n_a * n_c and all(p.chosen in materials.AGENCY for p in agency)
    reverse = materials.word_preferences("communion", 0).pairs
    assert all(p.chosen in materials.COMMUNION for p in reverse)
    shuffled = materials.word_preferences("shuffled", 3).pairs
    chosen = pd.Series([p.chosen for p in shuffled]).value_counts()
    assert set(chosen.index) == set(materials.AGENCY) | set(materials.COMMUNION)
    assert (chosen.reindex(materials.AGENCY) == n_c // 2).all()  # each word chosen half the time
    assert (chosen.reindex(materials.COMMUNION) == n_a // 2).all()
    held_out = {p.text for p in materials.eval_prompts()}
    assert not held_out & {p.context[0][1] for p in agency}
    mixed = [a for _, a in materials.sft_examples("mixed", 96, 0)]
    assert sum(a in materials.AGENCY for a in mixed) == sum(a in materials.COMMUNION for a in mixed)
    assert all(a in materials.AGENCY for _, a in materials.sft_examples("agency", 20, 0))
    assert materials.sft_examples("agency", 20, 1) != materials.sft_examples("agency", 20, 2)


def test_plans_have_a_control_in_every_family():
    for plan in (quick_plan(30), full_plan(30)):
        assert any(s.control for s in plan.blocks) and any(not s.control for s in plan.blocks)
        assert any(s.control for s in plan.trained) and all(s.block + 1 < 30 for s in plan.trained)
        assert all(s.control for s in plan.inherited)
    assert len({(s.name, s.seed) for s in full_plan(30).blocks}) == len(full_plan(30).blocks)


# ------------------------------------------------------------------------------ organism 1
@pytest.mark.parametrize("component", ["mlp", "attn"])
def test_block_edit_changes_one_projection_and_moves_the_gap(tiny_llama_lm, component):
    rm = load_model(ModelSpec(tiny_llama_lm, kind="rm", random_head_seed=0))
    design = _design()
    items = build_items(rm, materials.eval_prompts(), list(design.first + design.second))
    before = {k: v.clone() for k, v in rm.model.state_dict().items()}
    edited, record = edit_block(rm, items, design, 2, component)
    changed = [k for k, v in edited.model.state_dict().items() if not torch.equal(v, before[k])]
    projection = "mlp.down_proj" if component == "mlp" else "self_attn.o_proj"
    assert changed == [f"model.layers.2.{projection}.weight"]
    assert all(torch.equal(v, before[k]) for k, v in rm.model.state_dict().items())  # a copy
    assert record.achieved_gap_change == pytest.approx(record.target_gap_change, rel=0.1)
    assert edited.fingerprint != rm.fingerprint and "block 2" in edited.name
    first, second = word_groups(design, "shuffled", 0)
    assert sum(w in design.first for w in first) == len(design.first) // 2
    assert set(first) | set(second) == set(design.first) | set(design.second)


def _ctx(tmp_path, model: str) -> Context:
    base = load_model(ModelSpec(model, kind="lm", dtype="float32"))
    return Context(model, base, tmp_path, materials.write_words(tmp_path / "words.csv"),
                   materials.write_eval_prompts(tmp_path / "prompts.json"), 200, 200, False,
                   NoProgress())  # fmt: skip


def test_block_organism_is_located_and_the_identical_control_is_not(tmp_path, tiny_llama_lm):
    """The whole family-1 path on a 4-block model: ``patch``, component site and value lens
    place the edit at block 1; the RM identical to its base gives no location."""
    ctx = _ctx(tmp_path, tiny_llama_lm)
    rows, record, profile = run_block_organism(BlockSpec(1, "mlp", "categories", 0), ctx)
    by_method = {r.method: r for r in rows}
    for method in ("patch resid_post", "patch component site", "value lens"):
        assert by_method[method].found == "block 1" and by_method[method].agree, by_method[method]
    assert by_method["patch resid_post"].effect == pytest.approx(1.0, abs=1e-3)
    assert list(profile["normalised_effect"].round(3)) == [0.0, 1.0, 1.0, 1.0]
    assert "attribution screen (resid_post)" in by_method and record["edit"]["block"] == 1
    rows, _, _ = run_block_organism(BlockSpec(2, "mlp", "none", 0), ctx)
    assert all(r.control and r.found == "none" and r.agree for r in rows)


# ------------------------------------------------------------------------------ rules
def _effects(layers, norm, low, high, p):
    return pd.DataFrame({
        "site": "resid_post", "layer": layers, "position": "all", "normalised_effect": norm,
        "normalised_ci_low": low, "normalised_ci_high": high, "p_bonferroni": p,
        "delta_gap": 0.1, "delta_ci_low": 0.0, "delta_ci_high": 0.2,
    })  # fmt: skip


def test_patch_rule_needs_both_the_ci_and_the_corrected_p():
    table = _effects(range(5), [0, 0.3, 0.9, 1, 1], [-0.1, 0.1, 0.6, 1, 1], [0.1, 0.5, 1, 1, 1],
                     [1, 0.2, 0.01, 0.001, 0.001])  # fmt: skip
    found = rules.first_significant_patch(table, "resid_post", expected=2)
    assert found.block == 2 and found.effect == 0.9  # block 1: CI excludes 0 but p = 0.2
    null = _effects(range(3), [np.nan] * 3, [np.nan] * 3, [np.nan] * 3, [1.0] * 3)
    found = rules.first_significant_patch(null, "resid_post")
    assert found.block is None and "undefined" in found.effect_name


def test_lens_rule_finds_the_first_differing_depth():
    design = _design()
    words = list(design.first + design.second)
    rng = np.random.default_rng(0)
    rows = []
    for depth in range(5):
        for item, word in enumerate(words * 2):
            base = rng.normal()
            shift = (1.0 if word in design.first else -1.0) if depth >= 3 else 0.0
            noise = rng.normal(0, 0.05) if depth >= 3 else 0.0
            rows += [
                ("base", depth, item, word, base),
                ("rm", depth, item, word, base + shift + noise),
            ]
    lens = pd.DataFrame(rows, columns=["model_role", "depth", "item", "response", "score"])
    found = rules.first_lens_split(lens, design, seed=0)
    assert found.block == 2 and found.effect == pytest.approx(2.0, abs=0.1)
    same = lens.assign(score=lens["score"].where(lens["model_role"] == "base").ffill())
    assert rules.first_lens_split(same, design, seed=0).block is None


def test_probe_rule_finds_where_the_class_direction_turns_to_the_head():
    rng = np.random.default_rng(1)
    n_words, per_word, d = 12, 2, 16
    groups = np.repeat(np.arange(2 * n_words), per_word)
    y = (groups < n_words).astype(int)
    head = np.zeros(d)
    head[0] = 1.0
    signal = np.zeros(d)
    signal[1] = 1.0  # the base separates the classes along a direction the head ignores
    x_base = {layer: rng.normal(size=(len(y), d)) + np.outer(y, signal) * 3 for layer in range(4)}
    x_rm = {layer: x_base[layer].copy() for layer in range(4)}
    for layer in (2, 3):
        x_rm[layer] += np.outer(y, head) * 3
    gains = rules.alignment_gain(x_base, x_rm, y, groups, head, seed=0, n_resamples=200)
    found = rules.first_alignment_gain(gains)
    assert found.block == 2 and found.effect > 0.3
    assert gains.loc[gains["layer"] < 2, ["gain", "ci_low", "ci_high"]].abs().max().max() == 0


def _scores(words, values, kind="rm", step=0):
    return pd.DataFrame({"response": words, "score": values, "kind": kind, "step": step})


def test_inheritance_rules_on_planted_scores():
    design = _design()
    words = list(design.first + design.second)
    rng = np.random.default_rng(2)
    clean = rng.normal(size=len(words))
    bias = np.array([1.5 if w in design.first else 0.0 for w in words])
    lm = ir.base_logprob_rule(_scores(words, clean + bias, "lm"), _scores(words, clean, "lm"),
                              design, 0)  # fmt: skip
    assert lm.block == "base" and lm.effect == pytest.approx(1.5)
    assert ir.base_logprob_rule(_scores(words, clean, "lm"), _scores(words, clean, "lm"), design,
                                0).block is None  # fmt: skip
    steps = [0, 2, 4]
    biased = pd.concat([_scores(words, clean + bias * (s > 0), step=s) for s in steps])
    flat = pd.concat([_scores(words, clean, step=s) for s in steps])
    assert ir.durability_rule(biased, flat, design, 0).block == "every checkpoint"
    partly = pd.concat([_scores(words, clean + bias * (s == 4), step=s) for s in steps])
    assert ir.durability_rule(partly, flat, design, 0).block == "some checkpoints"
    lens = lambda rm, base: pd.DataFrame({  # noqa: E731
        "model_role": ["rm"] * len(words) + ["base"] * len(words), "depth": 4,
        "response": words * 2, "score": np.concatenate([rm, base]),
    })  # fmt: skip
    carried = ir.base_reading_rule(lens(clean + bias, clean + bias), lens(clean, clean), design, 0)
    assert carried.block == "base" and "share 1.00" in carried.detail
    learned = ir.base_reading_rule(lens(clean + bias, clean), lens(clean, clean), design, 0)
    assert learned.block is None


def test_recovery_rule_and_auroc():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    strings = [f"s{i}" for i in range(2000)]
    values = rng.normal(size=2000)
    positives = {f"s{i}" for i in range(10)}
    values[:10] += 10
    table = pd.DataFrame({"response": strings * 2, "mwlr": np.tile(values, 2)})
    found, precision = ir.recovery_rule(table, "mwlr", positives, 0)
    assert found.block == "injected words" and precision == 1.0 and found.ci_low > 0.9
    labels = np.isin(strings, list(positives))
    assert ir.auroc(values, labels) == pytest.approx(roc_auc_score(labels, values))
    control = ir.random_positives(strings, positives, 10, 0)
    assert not control & positives and len(control) == 10
    assert ir.recovery_rule(table, "mwlr", control, 0)[0].block is None


# ------------------------------------------------------------------------------ table and report
def test_rows_summary_and_report(tmp_path):
    finding = rules.Finding(3, 1.0, 0.9, 1.1, "normalised effect")
    rows = [
        block_row("a", "f", 0, "patch", finding, (3,)),
        block_row("a", "f", 0, "lens", finding, (4, 5)),
        block_row("ctrl", "f", 0, "patch", rules.Finding(None, 0, 0, 0, "gap"), None),
        label_row("b", "g", 1, "logprob", dataclasses.replace(finding, block="base"), "base"),
    ]
    table = rows_table(rows)
    assert list(table["agree"]) == [True, False, True, True]
    assert list(table["found"]) == ["block 3", "block 3", "none", "base"]
    assert table.loc[1, "expected"] == "blocks 4..5" and table["control"].tolist()[2]
    assert summary_line(table).startswith("3 of 4 located (1 of 1 negative controls")
    table.to_csv(tmp_path / "validation.csv", index=False)
    section = validation_section(tmp_path)
    assert section.summary == summary_line(table) and len(section.rows) == 4
    assert "Residual patching" in section.rules and section.figure is None
    page = write_html(section, tmp_path / "validation.html").read_text()
    assert page.count('class="miss"') == 1 and "3 of 4 located" in page
    assert isinstance(rows[0], Row)


def test_cli_refuses_unknown_families(tmp_path):
    from cli import main

    result = CliRunner().invoke(main, ["validate", "--out", str(tmp_path), "--only", "nope"])
    assert result.exit_code == 2 and "error: --only: unknown families" in result.output

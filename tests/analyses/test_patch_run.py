"""``patch`` and ``value-lens`` runs on tiny random models: files, the figure, both directions."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analyses.runs.patch import PatchSettings, run_patch
from analyses.stats.contrast import CategoryPair, category_words
from tests.helpers import AGENCY, COMMUNION, WORDS, other_rm, word_categories


def test_run_patch_writes_outputs(tmp_path, tiny_llama_rm, other_dir):
    words = tmp_path / "words.csv"
    word_categories().to_csv(words, index=False)
    settings = PatchSettings(
        base=other_rm(other_dir, "llama"), rm=tiny_llama_rm, responses=str(words),
        out=tmp_path / "out", prompt_keys=("greatest_ever_one", "best_world_one"),
        sites=("resid_pre", "attn_out"), positions="all,last:2", bootstrap=100, permutations=200,
    )  # fmt: skip
    run = run_patch(settings)
    out = tmp_path / "out"
    effects = pd.read_csv(out / "patch_effects.csv")
    assert len(effects) == 2 * 4 * 3
    assert {
        "normalised_effect",
        "normalised_ci_low",
        "p_permutation",
        "p_fdr_bh",
        "d_change",
    } <= set(effects.columns)
    items = pd.read_parquet(out / "patch_items.parquet")
    assert len(items) == len(effects) * 2 * len(WORDS)
    lens = pd.read_csv(out / "value_lens_gap.csv")
    assert set(lens["model_role"]) == {"rm", "base"} and lens["depth"].max() == 4
    for name in ("layerwise_bias.png", "layerwise_bias.svg", "patch_heatmap.png"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "patch_summary.json").read_text())
    assert saved["self_test"]["passed"] and "base_reading" in saved
    assert run.sweep.self_test.passed and len(run.effects) == len(effects)
    assert run.effects["normalised_effect"].equals(effects["normalised_effect"])
    assert saved["largest_effect_per_site"] == run.summary["largest_effect_per_site"]
    assert run.summary["template_mode"] == "chat"


def test_probe_results_in_the_layerwise_figure(tmp_path):
    from analyses.figures.patching import layerwise_figure
    from analyses.inputs.probe_results import read_probe_results

    probes = pd.DataFrame(
        {
            "site": [f"blocks.{i}.hook_resid_post" for i in range(4)] * 2,
            "kind": "resid_post",
            "layer": list(range(4)) * 2,
            "method": ["logistic"] * 4 + ["diffmean"] * 4,
            "accuracy": [0.5, 0.6, 0.8, 0.9, 0.5, 0.55, 0.7, 0.8],
            "accuracy_low": 0.4,
            "accuracy_high": 0.95,
        }
    )
    probes.to_parquet(tmp_path / "probes.parquet")
    compare = pd.DataFrame(
        {
            "kind": "resid_post",
            "layer": range(4),
            "method": "logistic",
            "cosine": [0.1, 0.5, 0.8, 0.9],
            "head_cosine_b": [0.0, 0.1, 0.3, 0.6],
        }
    )
    compare.to_parquet(tmp_path / "compare.parquet")
    table = read_probe_results(tmp_path, tmp_path / "compare.parquet")
    assert list(table["accuracy"]) == [0.5, 0.6, 0.8, 0.9]
    assert {"cosine", "head_cosine_b", "ci_low"} <= set(table.columns)
    lens = pd.DataFrame(
        {
            "model_role": ["rm"] * 5 + ["base"] * 5,
            "depth": list(range(5)) * 2,
            "gap": 0.1,
            "ci_low": 0.0,
            "ci_high": 0.2,
        }
    )
    effects = pd.DataFrame(
        {
            "site": "resid_pre",
            "layer": range(4),
            "position": "all",
            "normalised_effect": 0.5,
            "normalised_ci_low": 0.2,
            "normalised_ci_high": 0.8,
            "delta_gap": 0.1,
            "delta_ci_low": 0.0,
            "delta_ci_high": 0.2,
        }
    )
    design = category_words(
        pd.DataFrame(
            {"response": ["a", "b", "c", "d"], "category": ["Agency"] * 2 + ["Communion"] * 2}
        ),
        CategoryPair("Agency", "Communion"),
    )
    paths = layerwise_figure(lens, effects, tmp_path / "fig", "pair", design, table)
    assert all(p.stat().st_size > 0 for p in paths)


def test_rm_into_base_direction(tmp_path, tiny_llama_rm, other_dir):
    words = tmp_path / "words.csv"
    pd.DataFrame(
        [(w, "Agency") for w in AGENCY[:3]] + [(w, "Communion") for w in COMMUNION[:3]],
        columns=["response", "category"],
    ).to_csv(words, index=False)
    settings = PatchSettings(
        base=other_rm(other_dir, "llama"), rm=tiny_llama_rm, responses=str(words),
        out=tmp_path / "out", prompt_keys=("best_ever_one",), layers="0,3",
        direction="rm-into-base", bootstrap=50, permutations=100,
    )  # fmt: skip
    summary = run_patch(settings).summary
    assert summary["direction"] == "rm-into-base" and summary["self_test"]["passed"]
    lens = pd.read_csv(tmp_path / "out" / "value_lens_gap.csv")
    effects = pd.read_csv(tmp_path / "out" / "patch_effects.csv")
    final = lens[lens["depth"] == 4].set_index("model_role")["gap"]
    # receiver = base: its clean gap is the base's final value-lens gap; the source is the RM
    assert effects["clean_gap"].iloc[0] == pytest.approx(final["base"], abs=1e-5)
    assert effects["source_gap"].iloc[0] == pytest.approx(final["rm"], abs=1e-5)

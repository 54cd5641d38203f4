"""The audit on the real embedded pair (``embedded``) and the whole demo (``slow``).

The demo RM is trained from ``smollm2-135m-instruct`` once and cached (``$VALUEBIAS_CACHE``), so
the second of these tests reuses it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

BASE = "smollm2-135m-instruct"


def test_demo_pipeline_on_tiny_bases(tmp_path, monkeypatch, tiny_llama_lm, tiny_gemma_lm,
                                     tiny_pair):  # fmt: skip
    """The whole demo (both RMs trained, the audit, the comparison) with tiny bases."""
    from analyses.demo import config as demo
    from analyses.demo import rms
    from analyses.demo.pipeline import run_demo_pipeline
    from tests.analyses.conftest import TINY_SETTINGS

    monkeypatch.setattr(demo, "DEMO_BASES", (tiny_llama_lm, tiny_gemma_lm))
    monkeypatch.setattr(demo, "AUDIT", {**TINY_SETTINGS, "lexicon": tiny_pair["lexicon"]})
    monkeypatch.setattr(
        demo, "RM_TRAINING", {**demo.RM_TRAINING, "max_length": 32, "max_pairs": 40}
    )
    monkeypatch.setattr(rms, "rm_cache_dir", lambda base: tmp_path / "rms" / Path(base).name)
    outcome = run_demo_pipeline(tmp_path / "demo")
    assert outcome.comparison and [rm.trained_now for rm in outcome.rms] == [True, True]
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    section = saved["sections"][-1]
    assert section["key"] == "comparison" and section["status"] == "ran"
    rows = section["tables"][0]["rows"]
    assert {r[0] for r in rows} == {tiny_llama_lm, tiny_gemma_lm}
    for rm in outcome.rms:
        assert rm.accuracy.n == rm.summary["n_heldout"] >= 6
        assert rm.accuracy.low <= rm.accuracy.value <= rm.accuracy.high
        assert (rm.checkpoint / "valuebias_checkpoint.json").is_file()
    assert "ai-labels" in {c["key"] for c in saved["caveats"]}
    assert any(t["section"].startswith("Comparison:") for t in saved["tests"])
    again = run_demo_pipeline(tmp_path / "demo", quick=True)  # the cached RMs are reused
    assert not again.comparison and not any(rm.trained_now for rm in again.rms)


def _invoke(args):
    from cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def _d(means: pd.Series, first: list[str], second: list[str]) -> float:
    a, b = means[first], means[second]
    pooled = ((len(a) - 1) * a.var() + (len(b) - 1) * b.var()) / (len(a) + len(b) - 2)
    return float((a.mean() - b.mean()) / pooled**0.5)


def _self_contained(html: str) -> None:
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"(src|href)=\"(?!data:image/png;base64,|#)", html)


@pytest.mark.embedded
def test_audit_quick_on_the_embedded_pair(tmp_path):
    from analyses.demo.rms import demo_rm

    rm = demo_rm(BASE)
    out = tmp_path / "audit"
    headline = _invoke(["audit", "--quick", "--rm", str(rm.checkpoint), "--base", BASE,
                        "--out", str(out)])  # fmt: skip
    saved = json.loads((out / "report.json").read_text())
    _self_contained((out / "report.html").read_text())
    assert saved["answer"][0]["text"] in headline
    assert saved["config"]["quick"] and saved["config"]["words_per_category"] == 12
    assert saved["pair"]["prompts"]["keys"] == ["best_ever_one", "worst_ever_one"]
    training = saved["pair"]["reward model"]["trained by train-rm"]
    assert training["method"] == "lora" and training["held-out pairs"] == 60
    low, high = training["its Wilson 95% CI"]
    assert low < training["held-out pairwise accuracy"] < high
    caveats = {c["key"] for c in saved["caveats"]}
    assert {"ai-labels", "few-labels", "quick", "model-level"} <= caveats
    # the answer's RM gap is the gap of the score table, recomputed here
    scores = pd.read_parquet(out / "1-rm-preference" / "scores" / "scores.parquet")
    words = pd.read_csv(out / "0-inputs" / "words" / "words.csv")
    first = words.loc[words["category"] == "Agency", "word"].tolist()
    second = words.loc[words["category"] == "Communion", "word"].tolist()
    means = scores[scores["framing"] == "positive"].groupby("response")["score"].mean()
    assert saved["key_numbers"]["rm_d_positive"]["value"] == pytest.approx(_d(means, first, second))
    # LoRA trained every block: patching below the top blocks changes the RM's scores
    effects = pd.DataFrame(
        json.loads((out / "6-patching" / "sweep.step.json").read_text())["result"]["effects"]
    )
    assert len(effects) == 30 * 3 and set(effects["site"]) == {"resid_pre", "attn_out", "mlp_out"}
    low_blocks = effects[(effects["layer"] < 20) & (effects["site"] == "attn_out")]
    assert low_blocks["max_abs_word_change"].max() > 1e-4


@pytest.mark.slow
@pytest.mark.embedded
def test_full_demo(tmp_path):
    out = tmp_path / "demo"
    headline = _invoke(["demo", "--out", str(out)])
    saved = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    _self_contained(html)
    assert "held-out pairwise accuracy" in headline and "report.html" in headline
    keys = [s["key"] for s in saved["sections"]]
    assert keys[-1] == "comparison" and saved["sections"][-1]["status"] == "ran"
    table = next(t for t in saved["sections"][-1]["tables"] if t["key"] == "comparison-table")
    assert {row[0] for row in table["rows"]} == {BASE, "gemma3-270m"}
    assert {row[1] for row in table["rows"]} == {"positive", "negative", "all"}
    assert len(saved["pair"]["prompts"]["keys"]) == 54
    assert any(t["section"].startswith("Comparison: gemma3-270m") for t in saved["tests"])
    assert (out / "comparison" / "gemma3-270m" / "report.html").is_file()

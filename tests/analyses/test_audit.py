"""``audit`` on a tiny random pair: every stage, numbers checked by hand, resume, interrupt."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analyses.runs.audit import run_audit
from tests.analyses.conftest import TINY_AGENCY as AGENCY
from tests.analyses.conftest import TINY_COMMUNION as COMMUNION
from tests.analyses.conftest import tiny_settings

STEPS = (
    "0-inputs/words", "0-inputs/prompts", "1-rm-preference/scores", "1-rm-preference/analysis",
    "2-base-preference/scores", "2-base-preference/analysis", "2-base-preference/inheritance",
    "3-implicit-reward/mwlr", "4-probes/rm-acts", "4-probes/base-acts", "4-probes/rm-probes",
    "4-probes/base-probes", "4-probes/compare", "5-value-lens/lens", "6-patching/sweep",
    "6-patching/positions", "7-token-sweep/sweep",
)  # fmt: skip


def _d(means: pd.Series) -> float:
    a, c = means[list(AGENCY)], means[list(COMMUNION)]
    pooled = ((len(a) - 1) * a.var() + (len(c) - 1) * c.var()) / (len(a) + len(c) - 2)
    return float((a.mean() - c.mean()) / np.sqrt(pooled))


def test_every_stage_ran_and_recorded_its_settings(tiny_audit):
    out = tiny_audit.out
    assert list(tiny_audit.outcome.outcomes) == list(STEPS)
    for stage in {s.split("/")[0] for s in STEPS}:
        record = json.loads((out / stage / "stage.json").read_text())
        assert record["status"] == "complete" and len(record["settings_hash"]) == 16
    step = json.loads((out / "4-probes" / "rm-acts.step.json").read_text())
    assert step["status"] == "complete" and step["needs"]["0-inputs/words"]
    keys = [s.key for s in tiny_audit.outcome.report.sections]
    assert keys == ["stage-1", "stage-2", "stage-3", "inside", "stage-7"]
    saved = json.loads((out / "audit_config.json").read_text())
    assert saved["settings"]["bootstrap"] == 100 and saved["settings"]["max_prompts"] == 4


def test_answer_numbers_equal_a_computation_by_hand(tiny_audit):
    out = tiny_audit.out
    numbers = tiny_audit.outcome.report.numbers()
    rm = pd.read_parquet(out / "1-rm-preference" / "scores" / "scores.parquet")
    base = pd.read_parquet(out / "2-base-preference" / "scores" / "scores.parquet")
    for framing in ("positive", "negative"):
        means = rm[rm["framing"] == framing].groupby("response")["score"].mean()
        assert numbers[f"rm_d_{framing}"].value == pytest.approx(_d(means))
    for framing in ("positive", "negative"):  # per framing, never pooled
        base_means = base[base["framing"] == framing].groupby("response")["score"].mean()
        rm_means = rm[rm["framing"] == framing].groupby("response")["score"].mean()
        assert numbers[f"base_d_{framing}"].value == pytest.approx(_d(base_means))
        share = numbers[f"share_{framing}"].value
        assert share == pytest.approx(_d(base_means) / _d(rm_means))
        words = list(AGENCY + COMMUNION)
        rho = sps.spearmanr(base_means[words], rm_means[words]).statistic
        assert numbers[f"rho_{framing}"].value == pytest.approx(rho)
    assert "base_d" not in numbers and "share" not in numbers  # no pooled headline
    assert numbers["n_words"].value == 14
    # the RM's scores really are the RM's: rewards (not log-probs, which are all negative)
    assert rm["kind"].eq("rm").all() and base["score"].lt(0).all()


def test_every_test_is_written_out(tiny_audit):
    report = tiny_audit.outcome.report
    units = {t.unit for t in report.tests}
    assert units == {"word", "prompt"}
    sections = {t.section for t in report.tests}
    assert {"1. RM preference", "2. Base preference and inheritance", "3. Implicit reward",
            "6. Patching"} <= sections  # fmt: skip
    mwlr = tiny_audit.outcome.results["3-implicit-reward/mwlr"]
    assert "not_possible" not in mwlr and mwlr["comparison"][0]["n_first"] == 2
    for t in report.tests:
        assert t.name and t.question and t.effect and t.correction and t.n and t.n > 0
        assert t.p is None or 0 < t.p <= 1
    patch = [t for t in report.tests if t.section == "6. Patching"]
    effects = tiny_audit.outcome.results["6-patching/sweep"]["effects"]
    assert len(patch) >= len(effects) and all(t.correction == "Benjamini-Hochberg" for t in patch)
    saved = json.loads((tiny_audit.out / "report.json").read_text())
    assert len(saved["tests"]) == len(report.tests)
    assert saved["tests"][0]["unit"] == report.tests[0].unit


def test_report_html_is_self_contained_and_matches_the_json(tiny_audit):
    html = (tiny_audit.out / "report.html").read_text()
    saved = json.loads((tiny_audit.out / "report.json").read_text())
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"(src|href)=\"(?!data:image/png;base64,|#)", html)
    assert "http://" not in html and "https://" not in html
    assert html.count("<img ") == len(saved["figure_files"]) >= 4
    spans = dict(re.findall(r'data-key="([a-z0-9_]+)">([^<]*)<', html))
    assert spans and spans == {k: v["text"] for k, v in saved["key_numbers"].items()}
    order = [html.index(f'id="{key}"') for key in ("answer", "pair", "stage-1", "inside",
                                                   "tests", "caveats")]  # fmt: skip
    assert order == sorted(order)
    caveats = {c["key"] for c in saved["caveats"]}
    assert {"training-unknown", "few-words", "few-prompts", "model-level"} <= caveats


def test_rerun_skips_every_step_and_rewrites_the_same_report(tiny_audit, tiny_pair, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tiny_audit.out, out)
    before = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    again = run_audit(tiny_settings(tiny_pair, out, versus=tiny_pair["versus"], token_sweep=True))
    assert all(o.startswith("skipped") for o in again.outcome.outcomes.values())
    assert (out / "report.html").read_bytes() == before


def test_a_changed_setting_redoes_only_what_depends_on_it(tiny_audit, tiny_pair, tmp_path):
    out = tmp_path / "changed"
    shutil.copytree(tiny_audit.out, out)
    again = run_audit(tiny_settings(tiny_pair, out, versus=tiny_pair["versus"], token_sweep=True,
                                    bootstrap=60))  # fmt: skip
    done = {k for k, o in again.outcome.outcomes.items() if not o.startswith("skipped")}
    assert "1-rm-preference/scores" not in done and "4-probes/rm-acts" not in done
    assert {"1-rm-preference/analysis", "4-probes/rm-probes", "4-probes/compare",
            "6-patching/sweep", "6-patching/positions"} <= done  # fmt: skip
    assert json.loads((out / "report.json").read_text())["config"]["bootstrap"] == 60


class Interrupt:
    """A progress display that stops the run (as Ctrl-C would) inside one step."""

    def __init__(self, step: str, after: int) -> None:
        self.step, self.after, self.active, self.count = step, after, False, 0

    def start(self, total, desc):
        self.active = self.step in desc

    def advance(self, n=1):
        if self.active:
            self.count += 1
            if self.count >= self.after:
                raise KeyboardInterrupt

    def close(self):
        pass

    def note(self, message):
        pass


def test_interrupted_audit_resumes_to_the_identical_report(tiny_audit, tiny_pair, tmp_path):
    out = tmp_path / "interrupted"
    settings = tiny_settings(tiny_pair, out, versus=tiny_pair["versus"], token_sweep=True)
    with pytest.raises(KeyboardInterrupt):
        run_audit(settings, progress=Interrupt("base-acts", after=2))
    step = json.loads((out / "4-probes" / "base-acts.step.json").read_text())
    assert step["status"] == "running" and not (out / "report.html").exists()
    resumed = run_audit(settings)
    outcomes = resumed.outcome.outcomes
    assert outcomes["4-probes/rm-acts"].startswith("skipped")
    assert outcomes["4-probes/base-acts"].startswith("resumed")
    assert outcomes["4-probes/compare"] == "ran"
    for name in ("report.json", "report.html"):
        assert (out / name).read_bytes() == (tiny_audit.out / name).read_bytes(), name


def test_a_subset_of_stages_and_a_random_head(tiny_pair, tmp_path):
    out = tmp_path / "subset"
    stages = ("rm-preference", "base-preference", "patching")
    run = run_audit(tiny_settings(tiny_pair, out, stages=stages, rm_random_head=3))
    assert {k.split("/")[0] for k in run.outcome.outcomes} == {
        "0-inputs", "1-rm-preference", "2-base-preference"
    }  # fmt: skip
    report = run.outcome.report
    sections = {s.key: s.status for s in report.sections}
    assert sections["stage-1"] == "ran" and sections["stage-3"].startswith("not run")
    assert "trained score head" in sections["inside"]
    assert "random-head" in {c.key for c in report.caveats}
    assert report.numbers()["rm_d_positive"].value is not None
    assert "Where inside: the internal stages" in report.answer[2]


def test_effect_layers_pick_where_the_effect_is():
    from analyses.audit.patching import effect_layers

    rows = []
    curves = {"resid_pre": [0.0, 0.1, 0.8, 0.9], "attn_out": [0.05, 0.0, 0.3, 0.0],
              "mlp_out": [0.0, 0.6, 0.0, 0.0]}  # fmt: skip
    for site, values in curves.items():
        for layer, v in enumerate(values):
            rows.append({"site": site, "layer": layer, "position": "all", "normalised_effect": v,
                         "delta_gap": v, "source_gap": 1.0, "clean_gap": 0.0})  # fmt: skip
    effects = pd.DataFrame(rows)
    # resid_pre increments 0.1, 0.7, 0.1, 0.1 (to 1 after the last block); components as given
    assert effect_layers(effects, 2) == [1, 2]
    assert effect_layers(effects, 1) == [1]
    assert effect_layers(effects, 9) == [0, 1, 2, 3]


def test_position_tokens_name_shared_tokens():
    import torch

    from analyses.audit.patching import position_tokens
    from interp.patching.items import ItemGroup, Items

    class Tok:
        def decode(self, ids):
            return {9: "<end>", 8: "\n", 3: "?"}.get(ids[0], "x")

    groups = (ItemGroup((1, 2, 3), torch.tensor([[7, 8, 9], [6, 8, 9]]), (0, 1)),
              ItemGroup((1, 2, 3), torch.tensor([[5, 5, 8, 9]]), (2,)))  # fmt: skip
    labels = position_tokens(Items(groups, pd.DataFrame(), "chat"), Tok(), 4)
    assert labels == {-1: "<end>", -2: "\\n", -3: "(word)", -4: "(varies)"}

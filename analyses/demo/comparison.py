"""The paper's controlled comparison in miniature: both embedded bases, the same data and settings.

Each base gets an RM trained with ``config.RM_TRAINING`` (``rms.demo_rm``), and the audit's
preference stages measure, per framing, the base's log-prob gap, the RM's reward gap, the share
of the RM's gap the base already shows and the word-level rank correlation. The first base's
numbers come from the demo's main audit; the second base is audited with the preference stages
only (``config.COMPARISON_STAGES``) under ``<out>/comparison/<base>/``. ``section`` turns both
into one report section (table + figure) and its tests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.audit.evidence import contrast_tests, correlation_tests, rank_tests
from analyses.audit.report_preference import ci_text
from analyses.demo import config as demo
from analyses.demo.rms import DemoRm
from analyses.report.content import Figure, Section, Table, TestEntry, format_number

TITLE = "Controlled comparison: RMs from both embedded bases, same data, same settings"


def _rows(base: str, rm: DemoRm, results: dict) -> list[tuple]:
    base_rows = {r["framing"]: r for r in results["2-base-preference/analysis"]["contrasts"]}
    inh = results["2-base-preference/inheritance"]
    shares = {s["framing"]: s for s in inh["shares"]}
    rhos = {c["framing"]: c for c in inh["correlations"]}
    acc = f"{format_number(rm.accuracy.value)} {ci_text(rm.accuracy.low, rm.accuracy.high)}"
    out = []
    for r in results["1-rm-preference/analysis"]["contrasts"]:
        f = r["framing"]
        b, s, c = base_rows[f], shares[f]["share"], rhos[f]["rho"]
        out.append((base, f, b["d"], ci_text(b["d_ci_low"], b["d_ci_high"], "signed"), r["d"],
                    ci_text(r["d_ci_low"], r["d_ci_high"], "signed"), s["value"],
                    ci_text(s["low"], s["high"]), c["value"], ci_text(c["low"], c["high"], "signed"),
                    acc))  # fmt: skip
    return out


def _forest(root: Path, pairs: list[tuple[str, DemoRm, dict]], pair_label: str) -> Path:
    from analyses.figures.preference import gap_forest

    rows = []
    for base, _rm, results in pairs:
        for role, key, what in (("base", "2-base-preference/analysis", "base log-probs"),
                                ("rm", "1-rm-preference/analysis", "RM rewards")):  # fmt: skip
            for r in results[key]["contrasts"]:
                rows.append({"role": role, "label": f"{base}: {what}", "framing": r["framing"],
                             "d": r["d"], "d_ci_low": r["d_ci_low"], "d_ci_high": r["d_ci_high"]})  # fmt: skip
    paths = gap_forest(pd.DataFrame(rows), root / "figures" / "controlled_comparison",
                       "Does each RM keep its own base's preference?", pair_label)  # fmt: skip
    return Path(paths[0])


def section(root: Path, pairs: list[tuple[str, DemoRm, dict]],
            pair: tuple[str, str]) -> tuple[list[Section], list[TestEntry]]:  # fmt: skip
    """The comparison section and its tests; ``pairs``: (base, its demo RM, audit results)."""
    training = demo.RM_TRAINING
    rows = [row for base, rm, results in pairs for row in _rows(base, rm, results)]
    figure = _forest(root, pairs, f"{pair[0]} - {pair[1]}")
    columns = ("base", "framing", "d base (log-probs)", "95% CI", "d RM (rewards)", "95% CI (RM)",
               "share d_base/d_RM", "95% CI (share)", "Spearman rho", "95% CI (rho)",
               "RM held-out accuracy [Wilson 95% CI]")  # fmt: skip
    text = (
        f"Each base was trained into an RM by train-rm with identical data and settings: LoRA "
        f"rank {training['lora']} (alpha {training['lora_alpha']:g}) on the q, k, v and o "
        f"projections of every block plus the score head, the default preference data (300 "
        f"AI-judged pairs, {training['eval_fraction']:.0%} held out), {training['epochs']} "
        f"epoch(s), lr {training['lr']:g}, {training['batch_size']} pairs per step, "
        f"{training['max_length']} tokens per side, seed {training['seed']}. The paper's "
        "question: does each RM keep the preference its own base already had?"
    )
    tests: list[TestEntry] = []
    for base, _rm, results in pairs[1:]:
        label = f"Comparison: {base}"
        tests += contrast_tests(
            label, results["1-rm-preference/analysis"]["contrasts"], "RM rewards"
        )
        tests += rank_tests(label, results["1-rm-preference/analysis"]["rank_gaps"], "RM rewards")
        tests += contrast_tests(
            label, results["2-base-preference/analysis"]["contrasts"], "Base log-probs"
        )
        tests += rank_tests(
            label, results["2-base-preference/analysis"]["rank_gaps"], "Base log-probs"
        )
        tests += correlation_tests(label, results["2-base-preference/inheritance"]["correlations"])
    sec = Section("comparison", TITLE, (text, "One RM per base: this shows the method, not a "
                  "property of the model families (the paper used ten RMs)."), (
        Figure("fig-comparison", "Each base and its RM", "Cohen's d of the word-level gap with "
               "95% bootstrap CIs over words, per framing: each base's log-probs (squares) and "
               "its RM's rewards (circles).", figure.relative_to(root).as_posix()),
    ), (Table("comparison-table", "Base and RM gap per framing, both bases", columns,
              tuple(rows)),))  # fmt: skip
    return [sec], tests

"""The caveats an audit detects in its own inputs and results, one small check each.

Each check reads the resolved config, the ledger's results and, when the RM is a ``train-rm``
checkpoint, its ``valuebias_checkpoint.json`` (``rm_training_meta``), and returns ``Caveat``s:

- training labels that are few or AI-judged; held-out pairwise accuracy whose Wilson 95 % CI
  includes 0.5 (chance); a score head that was never trained (seeded random head, step 0);
- tests that disagree: the word-level and the prompt-level test of the same gap (sign, or one
  significant and the other not), and the missing model level (one RM per base);
- small samples (prompts, words), a preference that reverses with framing, an RM gap too
  uncertain for the share to mean much, words whose token counts differ by category (log-probs
  sum over tokens), probes at chance, patching with nothing to localise, a quick run.
"""

from __future__ import annotations

import json
from pathlib import Path

from analyses.audit.config import AuditConfig
from analyses.audit.findings import by_framing
from analyses.report.content import Caveat, format_number
from analyses.stats.preference import wilson_interval
from interp.training.config import CHECKPOINT_META

MIN_PROMPTS = 6
MIN_WORDS = 20
MIN_PAIRS = 1000


def rm_training_meta(rm: str) -> dict | None:
    """The ``train-rm`` record of a local checkpoint folder, or None for any other RM."""
    path = Path(rm).expanduser() / CHECKPOINT_META
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _training(config: AuditConfig, meta: dict | None) -> list[Caveat]:
    out = []
    if config.rm_random_head is not None:
        out.append(Caveat("random-head", "warning", f"The RM's score head is a seeded random head "
                          f"(--rm-random-head {config.rm_random_head}): its rewards are a random "
                          "projection of the residual stream, not learned preferences."))  # fmt: skip
    if meta is None:
        out.append(Caveat("training-unknown", "note", "The RM is not a train-rm checkpoint, so "
                          "this run knows nothing of its preference data (how many labels, judged "
                          "by whom) or its held-out accuracy."))  # fmt: skip
        return out
    training = meta.get("training", {})
    data = training.get("data", {})
    labels = str(data.get("labels", ""))
    n_pairs = data.get("n_pairs")
    if "ai-judged" in labels.lower() or "ai judged" in labels.lower():
        out.append(Caveat("ai-labels", "warning", f"The RM was trained on AI-judged preference "
                          f"labels, not human ones ({labels})"))  # fmt: skip
    if isinstance(n_pairs, int) and n_pairs < MIN_PAIRS:
        out.append(Caveat("few-labels", "warning", f"The RM was trained on only {n_pairs} "
                          f"preference pairs (fewer than {MIN_PAIRS}): a demonstration of the "
                          "method, not a model whose preferences mean much."))  # fmt: skip
    acc, n = meta.get("heldout_accuracy"), meta.get("n_heldout")
    if acc is not None and n:
        est = wilson_interval(acc * n, int(n))
        if est.low <= 0.5 <= est.high:
            out.append(Caveat("chance-accuracy", "warning", f"The RM's held-out pairwise "
                              f"accuracy is {format_number(acc)} (Wilson 95% CI "
                              f"{format_number(est.low)} to {format_number(est.high)}, n = {n} "
                              "pairs): not distinguishable from chance (0.5)."))  # fmt: skip
    if meta.get("step") == 0 and "random" in str(training.get("head_init", "")):
        out.append(Caveat("untrained-head", "warning", "The RM is step 0 of its training: the "
                          "base's weights with a seeded random score head."))  # fmt: skip
    return out


def _disagreements(stage: str, label: str, analysis: dict) -> list[Caveat]:
    out = []
    ranks = by_framing(analysis["rank_gaps"])
    for c in analysis["contrasts"]:
        r = ranks.get(c["framing"])
        if r is None or c["p_adjusted"] is None or r["test"]["p_adjusted"] is None:
            continue
        word_sig, prompt_sig = c["p_adjusted"] < 0.05, r["test"]["p_adjusted"] < 0.05
        same_sign = (c["d"] or 0) * -(r["gap"]["value"] or 0) > 0
        if word_sig != prompt_sig or (word_sig and prompt_sig and not same_sign):
            out.append(Caveat(f"{stage}-disagree-{c['framing']}", "warning", f"{label}, "
                              f"{c['framing']} prompts: the word-level test (d = "
                              f"{format_number(c['d'], 'signed')}, adjusted p = "
                              f"{format_number(c['p_adjusted'], 'p')}) and the prompt-level test "
                              f"(median-rank gap {format_number(r['gap']['value'], 'signed')}, "
                              f"adjusted p = {format_number(r['test']['p_adjusted'], 'p')}) "
                              "disagree; read the gap with both units in mind."))  # fmt: skip
    return out


def _samples(config: AuditConfig, results: dict) -> list[Caveat]:
    out = []
    prompts = results.get("0-inputs/prompts", {}).get("all", {})
    n_prompts = len(prompts.get("keys", []))
    if n_prompts and n_prompts < MIN_PROMPTS:
        out.append(Caveat("few-prompts", "note", f"Only {n_prompts} prompts: the prompt-level "
                          "tests have little power (with n prompts in a framing, a two-sided "
                          "sign-flip p cannot go below 2 / 2^n)."))  # fmt: skip
    words = results.get("0-inputs/words", {}).get("words_per_category", {})
    small = {k: v for k, v in words.items() if v < MIN_WORDS}
    if small:
        text = ", ".join(f"{k} {v}" for k, v in small.items())
        out.append(Caveat("few-words", "note", f"Few words per category ({text}; fewer than "
                          f"{MIN_WORDS}): wide intervals, and a handful of words can decide a "
                          "gap."))  # fmt: skip
    if config.quick:
        out.append(Caveat("quick", "note", "A --quick run (few prompts and words, fewer "
                          "resamples): a first look at the pipeline, not a finding."))  # fmt: skip
    return out


def _preference(results: dict) -> list[Caveat]:
    out = []
    rm = results.get("1-rm-preference/analysis")
    if rm:
        out += _disagreements("rm", "RM rewards", rm)
        rows = by_framing(rm["contrasts"])
        pos, neg = rows.get("positive"), rows.get("negative")
        if pos and neg and all(r["d_ci_low"] is not None for r in (pos, neg)):
            sure = [r["d_ci_low"] > 0 or r["d_ci_high"] < 0 for r in (pos, neg)]
            if all(sure) and (pos["d"] > 0) != (neg["d"] > 0):
                out.append(Caveat("framing-reverses", "note", "The RM's preference reverses "
                                  "between positive and negative prompts: never read the pooled "
                                  "gap alone."))  # fmt: skip
    base = results.get("2-base-preference/analysis")
    if base:
        out += _disagreements("base", "Base log-probs", base)
        n_tok = base.get("mean_tokens_per_word", {})
        if len(n_tok) == 2 and abs(max(n_tok.values()) - min(n_tok.values())) > 0.25:
            text = ", ".join(f"{k} {v:.2f}" for k, v in n_tok.items())
            out.append(Caveat("token-length", "note", f"Mean tokens per word differ between the "
                              f"categories ({text}); a multi-token word's log-prob is a sum over "
                              "its tokens, so part of the base's gap can be word length."))  # fmt: skip
    inheritance = results.get("2-base-preference/inheritance")
    if inheritance:
        for s in inheritance["shares"]:
            if s["share"]["low"] is None or s["share"]["low"] <= 0 <= (s["share"]["high"] or 0):
                if rm and not _rm_sure(rm, s["framing"]):
                    out.append(Caveat(f"share-unstable-{s['framing']}", "note", f"{s['framing']} "
                                      "prompts: the RM's own gap is not distinguishable from "
                                      "zero, so the share d_base / d_RM is unstable."))  # fmt: skip
    if rm or base:
        out.append(Caveat("model-level", "note", "One RM and one base: every test here treats "
                          "words or prompts as the unit of inference. Whether a model family "
                          "prefers a category is a model-level question that needs several RMs "
                          "per family (see `stats`)."))  # fmt: skip
    return out


def _rm_sure(rm: dict, framing: str) -> bool:
    r = by_framing(rm["contrasts"]).get(framing)
    return bool(r and r["d_ci_low"] is not None and (r["d_ci_low"] > 0 or r["d_ci_high"] < 0))


def _internals(results: dict) -> list[Caveat]:
    out = []
    probes = results.get("4-probes/rm-probes")
    if probes and all((r["accuracy_low"] or 0) <= 0.5 for r in probes["layers"]):
        out.append(Caveat("probes-chance", "note", "No RM probe's accuracy CI excludes chance "
                          "(0.5): the two categories are not linearly separable at the last "
                          "token in this sample."))  # fmt: skip
    compare = results.get("4-probes/compare")
    for i, note in enumerate(compare.get("notes", []) if compare else []):
        out.append(Caveat(f"probe-compare-{i}", "note", f"Probe comparison: {note}"))
    sweep = results.get("6-patching/sweep")
    if sweep and not any(e.get("normalised_effect") is not None for e in sweep["effects"]):
        out.append(Caveat("patch-nothing", "warning", "In every patch the base's own reading of "
                          "the gap equals the RM's, so the normalised patching effects are "
                          "undefined: base and RM do not differ on this gap."))  # fmt: skip
    return out


def caveats(config: AuditConfig, results: dict, meta: dict | None) -> tuple[Caveat, ...]:
    """Every caveat the run detected, warnings first (stable order)."""
    found = _training(config, meta) + _preference(results) + _internals(results)
    found += _samples(config, results)
    return tuple(sorted(found, key=lambda c: c.severity != "warning"))

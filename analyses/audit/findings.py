"""The answer an audit gives, in three sentences with numbers, and the caveats the run detected.

``answer(...)`` returns sentence templates whose numbers are ``{key}`` placeholders and the
``KeyNumber``s that fill them: (1) which of the two categories the RM's rewards prefer, per
framing; (2) how much of that the base model's log-probs already show (the share ``d_base /
d_rm`` and the word-level rank correlation); (3) where inside the pair the preference is
carried (best probe layer, the base probe on the RM, the largest patching effect). Wording
follows the numbers: a preference is stated only when its 95 % CI excludes zero.

``caveats(...)`` checks the run's own results (``analyses.audit.checks`` holds each check).
"""

from __future__ import annotations

import math

from analyses.report.content import KeyNumber

SIG = 0.05


def by_framing(rows: list[dict], key: str = "framing") -> dict[str, dict]:
    return {r[key]: r for r in rows}


def _excludes_zero(low, high) -> bool:
    return low is not None and high is not None and (low > 0 or high < 0)


class Numbers:
    """Collects ``KeyNumber``s and returns their placeholders."""

    def __init__(self) -> None:
        self.items: dict[str, KeyNumber] = {}

    def add(self, key: str, label: str, value, style: str = "plain") -> str:
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else value
        self.items[key] = KeyNumber(key, label, value, style)
        return "{" + key + "}"

    def ci(self, key: str, label: str, value, low, high, style: str = "signed") -> str:
        v = self.add(key, label, value, style)
        lo = self.add(f"{key}_low", f"{label}: 95% CI low", low, style)
        hi = self.add(f"{key}_high", f"{label}: 95% CI high", high, style)
        return f"{v} (95% CI {lo} to {hi})"


def _rm_sentence(nums: Numbers, rm: dict, pair: tuple[str, str], rm_name: str) -> str:
    first, second = pair
    parts = []
    rows = [r for r in rm["contrasts"] if r["framing"] != "all"] or rm["contrasts"]
    for r in rows:
        f = r["framing"]
        key = f"rm_d_{f}"
        ci = nums.ci(key, f"RM Cohen's d, {f} prompts", r["d"], r["d_ci_low"], r["d_ci_high"])
        p = nums.add(
            f"rm_p_{f}", f"RM gap p ({r['correction']}), {f} prompts", r["p_adjusted"], "p"
        )
        if _excludes_zero(r["d_ci_low"], r["d_ci_high"]):
            liked, other = (first, second) if r["d"] > 0 else (second, first)
            verb = f"rewards {liked} words above {other} words"
        else:
            verb = f"shows no clear preference between {first} and {second} words"
        where = f"under {f} prompts" if f != "none" else "under these prompts"
        parts.append(f"{where} it {verb}, Cohen's d = {ci}, p = {p}")
    n = nums.add("n_words", "words in the contrast", rm["contrasts"][0]["n_first"] +
                 rm["contrasts"][0]["n_second"], "int")  # fmt: skip
    text = "; ".join(parts)
    return (
        f"Which values: {rm_name} is scored on {n} {first}/{second} words; {text} "
        "(permutation Welch tests over words, Bonferroni-corrected over the framings)."
    )


def _base_sentence(nums: Numbers, base: dict, inheritance: dict, base_name: str) -> str:
    """Per framing, never pooled (the paper's effects can reverse with framing): the base's own
    gap, the share of the RM's gap it already shows, and the word-level correlation."""
    shares = by_framing(inheritance["shares"])
    rhos = by_framing(inheritance["correlations"])
    parts = []
    for r in [r for r in base["contrasts"] if r["framing"] != "all"] or base["contrasts"]:
        f = r["framing"]
        where = "under these prompts" if f in ("none", "all") else f"under {f} prompts"
        d = nums.ci(f"base_d_{f}", f"base log-prob Cohen's d, {f} prompts", r["d"],
                    r["d_ci_low"], r["d_ci_high"])  # fmt: skip
        s = shares[f]["share"]
        sh = nums.ci(f"share_{f}", f"share of the RM's gap the base shows (d_base / d_rm), {f} "
                     "prompts", s["value"], s["low"], s["high"], "plain")  # fmt: skip
        c = rhos[f]["rho"]
        rh = nums.ci(f"rho_{f}", f"Spearman rho, base vs RM word preference, {f} prompts",
                     c["value"], c["low"], c["high"], "signed")  # fmt: skip
        p = nums.add(f"rho_p_{f}", f"p of rho (permutation, adjusted), {f} prompts",
                     rhos[f]["test"]["p_adjusted"], "p")  # fmt: skip
        if s["value"] is None:
            share_text = (
                "the share of the RM's gap it already shows is undefined (the RM's gap is 0)"
            )
        else:
            share_text = f"a share d_base / d_RM = {sh} of the RM's standardised gap"
        parts.append(f"{where} its log-probabilities give the same words a gap of Cohen's d = "
                     f"{d}, {share_text}, and word by word the two models' preferences "
                     f"correlate with Spearman's rho = {rh}, p = {p}")  # fmt: skip
    return (
        f"Inherited: for the base model {base_name}, " + "; ".join(parts) + " (share: 1 = the "
        "whole gap, 0 = none, < 0 = the opposite preference)."
    )


def _inside_sentence(nums: Numbers, results: dict, pair: tuple[str, str]) -> str:
    parts = []
    probes = results.get("4-probes/rm-probes")
    if probes:
        logistic = [r for r in probes["layers"] if r["method"] == "logistic"] or probes["layers"]
        best = max(logistic, key=lambda r: (r["accuracy"] if r["accuracy"] is not None else -1,
                                            -r["layer"]))  # fmt: skip
        acc = nums.ci("probe_acc", "best RM probe accuracy (word-grouped CV)", best["accuracy"],
                      best["accuracy_low"], best["accuracy_high"], "plain")  # fmt: skip
        layer = nums.add("probe_layer", "block of the best RM probe", best["layer"], "int")
        parts.append(f"a linear probe reads {pair[0]} vs {pair[1]} from the RM's residual "
                     f"stream after block {layer} with accuracy {acc}")  # fmt: skip
        compare = results.get("4-probes/compare")
        if compare:
            row = next((r for r in compare["layers"]
                        if r["layer"] == best["layer"] and r["method"] == best["method"]), None)  # fmt: skip
            if row and row.get("transfer_a_on_b_accuracy") is not None:
                tr = nums.add("transfer", "base probe accuracy on RM activations, same layer",
                              row["transfer_a_on_b_accuracy"], "plain")  # fmt: skip
                cos = nums.add("probe_cosine", "cosine of base and RM probe directions",
                               row["cosine"], "signed")  # fmt: skip
                parts.append(f"the base's probe at that layer scores {tr} on the RM's "
                             f"activations (direction cosine {cos})")  # fmt: skip
    sweep = results.get("6-patching/sweep")
    if sweep:
        effects = [e for e in sweep["effects"] if e.get("normalised_effect") is not None]
        if effects:
            comp = [e for e in effects if e["site"] in ("attn_out", "mlp_out")] or effects
            sure = [e for e in comp if e["p_fdr_bh"] is not None and e["p_fdr_bh"] < SIG]
            top = (max(sure, key=lambda e: (abs(e["normalised_effect"]), -e["layer"])) if sure
                   else min(comp, key=lambda e: (e["p_fdr_bh"] or 1.0, -abs(e["normalised_effect"]))))  # fmt: skip
            eff = nums.ci("patch_effect", "component patching effect (normalised)",
                          top["normalised_effect"], top["normalised_ci_low"],
                          top["normalised_ci_high"], "plain")  # fmt: skip
            layer = nums.add("patch_layer", "block of that patch", top["layer"], "int")
            p = nums.add(
                "patch_p", "its p (label permutation, BH over all patches)", top["p_fdr_bh"], "p"
            )
            if sure:
                parts.append(f"patching the base's {top['site']} of block {layer} into the RM "
                             f"moves the RM's gap {eff} of the way to the base's reading "
                             f"(the largest reliable component effect, BH-adjusted p = {p})")  # fmt: skip
            else:
                parts.append("no single attention or MLP output of the base moves the RM's gap "
                             f"reliably when patched in; the strongest, {top['site']} of block "
                             f"{layer}, has a normalised effect of {eff} (BH-adjusted p = {p})")  # fmt: skip
        else:
            parts.append(
                "patching cannot localise anything: the base's own reading of the "
                "gap equals the RM's, so every normalised effect is undefined"
            )
    if not parts:
        return "Where inside: the internal stages (probes, value lens, patching) were not run."
    return "Where inside: " + "; ".join(parts) + "."


def answer(results: dict, pair: tuple[str, str], rm_name: str, base_name: str):
    """``(sentence templates, key numbers)`` from the ledger's results (module docstring)."""
    nums = Numbers()
    sentences = []
    rm = results.get("1-rm-preference/analysis")
    sentences.append(
        _rm_sentence(nums, rm, pair, rm_name) if rm
        else "Which values: the RM's preference stage was not run."
    )  # fmt: skip
    base = results.get("2-base-preference/analysis")
    inheritance = results.get("2-base-preference/inheritance")
    sentences.append(
        _base_sentence(nums, base, inheritance, base_name) if base and inheritance
        else "Inherited: the base model's preference stage was not run."
    )  # fmt: skip
    sentences.append(_inside_sentence(nums, results, pair))
    return tuple(sentences), tuple(nums.items.values())

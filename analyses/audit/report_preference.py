"""The report's sections for audit stages 1-3: tables, the gap figure and the word agreement figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.audit.config import AuditConfig
from analyses.audit.evidence import contrast_tests, correlation_tests, rank_tests
from analyses.audit.preference import AuditInputs, framings
from analyses.inputs.score_table import read_score_table
from analyses.report.content import Figure, Section, Table, TestEntry, format_number

S1, S2, S3 = "1. RM preference", "2. Base preference and inheritance", "3. Implicit reward"


def ci_text(low, high, style: str = "plain") -> str:
    return f"[{format_number(low, style)}, {format_number(high, style)}]"


def contrast_table(key: str, title: str, rows: list[dict], unit: str) -> Table:
    a, b = rows[0]["first"], rows[0]["second"]
    columns = ("framing", "words", "prompts", f"mean {a}", f"mean {b}", f"difference ({unit})",
               "95% CI", "Cohen's d", "95% CI (d)", "t", "p", "p adjusted")  # fmt: skip
    body = tuple(
        (r["framing"], f"{r['n_first']}+{r['n_second']}", r["n_prompts"], r["mean_first"],
         r["mean_second"], r["difference"], ci_text(r["difference_ci_low"], r["difference_ci_high"]),
         r["d"], ci_text(r["d_ci_low"], r["d_ci_high"], "signed"), r["t"], r["p"], r["p_adjusted"])
        for r in rows
    )  # fmt: skip
    return Table(key, title, columns, body, note=f"Unit of inference: the word (its {unit} "
                 "averaged over the framing's prompts). CIs: percentile bootstrap over words. "
                 "p: permutation Welch t-test; adjusted: Bonferroni over the framings.")  # fmt: skip


def rank_table(key: str, title: str, rows: list[dict]) -> Table:
    a, b = rows[0]["first"], rows[0]["second"]
    columns = ("framing", "prompts", f"mean median-rank gap ({a} - {b})", "95% CI", "d_z", "p",
               "p adjusted")  # fmt: skip
    body = tuple(
        (r["framing"], r["test"]["n"], r["gap"]["value"], ci_text(r["gap"]["low"], r["gap"]["high"]),
         r["d_z"], r["test"]["p"], r["test"]["p_adjusted"])
        for r in rows
    )  # fmt: skip
    return Table(key, title, columns, body, note="Words are ranked within each prompt (rank 1 = "
                 "highest score); a negative gap means the first category ranks better. Unit: "
                 "the prompt. CI: bootstrap over prompts; p: sign-flip test; adjusted: Bonferroni "
                 "over the framings.")  # fmt: skip


def _forest_rows(rm: dict, base: dict | None, rm_label: str, base_label: str) -> pd.DataFrame:
    rows = [dict(role="rm", label=f"RM: {rm_label} (rewards)", **_d(r)) for r in rm["contrasts"]]
    if base:
        rows += [dict(role="base", label=f"base: {base_label} (log-probs)", **_d(r))
                 for r in base["contrasts"]]  # fmt: skip
    return pd.DataFrame(rows)


def _d(r: dict) -> dict:
    return {"framing": r["framing"], "d": r["d"], "d_ci_low": r["d_ci_low"],
            "d_ci_high": r["d_ci_high"]}  # fmt: skip


def _agreement_words(root: Path, results: dict, inputs: AuditInputs, config: AuditConfig):
    rm = read_score_table(root / results["1-rm-preference/scores"]["file"])
    base = read_score_table(root / results["2-base-preference/scores"]["file"])
    design = inputs.design(config)
    category = {**{w: design.pair.first for w in design.first},
                **{w: design.pair.second for w in design.second}}  # fmt: skip
    subsets, pooled = framings(rm)
    frames = []
    for f in subsets + ([pooled] if pooled else []):
        pick = (lambda t: t) if f == "all" else (lambda t, f=f: t[t["framing"] == f])
        means = pd.DataFrame({
            "rm": pick(rm).groupby("response")["score"].mean(),
            "base": pick(base).groupby("response")["score"].mean(),
        }).reset_index()  # fmt: skip
        means["category"] = means["response"].map(category)
        frames.append(means.dropna(subset=["category"]).assign(framing=f))
    return pd.concat(frames, ignore_index=True)


def preference_sections(root: Path, config: AuditConfig, inputs: AuditInputs, results: dict,
                        names: tuple[str, str]) -> tuple[list[Section], list[TestEntry]]:  # fmt: skip
    """Sections and tests of stages 1-3 (``names`` = short labels of the RM and the base)."""
    from analyses.figures.preference import gap_forest, word_agreement

    rm_label, base_label = names
    sections, tests = [], []
    rm = results.get("1-rm-preference/analysis")
    n_prompts = inputs.n_prompts["all"]
    if rm:
        sections.append(Section("stage-1", "1. The RM's preference", (
            f"The RM ({rm_label}) scored each of {inputs.n_words} words as the whole answer to "
            f"each of {n_prompts} prompts, formatted with its own template "
            f"({', '.join(rm['template']) or 'n/a'}). Rewards are the RM's raw scalar.",
        ), tables=(
            contrast_table("rm-contrasts", "Reward gap per framing (word level)", rm["contrasts"], "reward"),
            rank_table("rm-ranks", "Median-rank gap per framing (prompt level)", rm["rank_gaps"]),
        )))  # fmt: skip
        tests += contrast_tests(S1, rm["contrasts"], "RM rewards")
        tests += rank_tests(S1, rm["rank_gaps"], "RM rewards")
    else:
        sections.append(Section("stage-1", "1. The RM's preference",
                                status=config.skip_reason("rm-preference") or "not run"))  # fmt: skip
    base = results.get("2-base-preference/analysis")
    inh = results.get("2-base-preference/inheritance")
    if base and inh and rm:
        figs_dir = root / "figures"
        pair_label = f"{config.gap.first} - {config.gap.second}"
        forest = gap_forest(_forest_rows(rm, base, rm_label, base_label), figs_dir / "gap_forest",
                            "The category gap of the RM's rewards and of its base's log-probs",
                            pair_label)  # fmt: skip
        words = _agreement_words(root, results, inputs, config)
        rho = {r["framing"]: f"Spearman rho {format_number(r['rho']['value'], 'signed')} "
               f"{ci_text(r['rho']['low'], r['rho']['high'], 'signed')}"
               for r in inh["correlations"]}  # fmt: skip
        agree = word_agreement(words, figs_dir / "word_agreement",
                               "Word by word: the base's log-prob against the RM's reward", rho)  # fmt: skip
        inh_rows = tuple(
            (c["framing"], c["rho"]["value"], ci_text(c["rho"]["low"], c["rho"]["high"], "signed"),
             c["test"]["p_adjusted"], s["d_base"], s["d_rm"], s["share"]["value"],
             ci_text(s["share"]["low"], s["share"]["high"]))
            for c, s in zip(inh["correlations"], inh["shares"])
        )  # fmt: skip
        sections.append(Section("stage-2", "2. The base model's preference, and what the RM inherited", (
            f"The base model ({base_label}) gave each word a log-probability (nats; a multi-token "
            "word sums its tokens) as the answer to the same prompts (its chat template when it "
            "has one, else the raw prompt).",
            "Inheritance is measured twice. Word level: Spearman's rho between each word's mean "
            "log-prob under the base and its mean reward under the RM. Category level: the share "
            "of the RM's gap the base already shows, d_base / d_RM, the ratio of the two models' "
            "Cohen's d for the same words (units cancel): 1 = the base already shows the whole "
            "gap, 0 = none of it, negative = the opposite preference, above 1 = more than the RM.",
        ), figures=(
            Figure("fig-gap-forest", "Category gap of each model", "Cohen's d of the word-level "
                   f"gap {pair_label} with 95% bootstrap CIs over words, for the RM's rewards and "
                   "the base's log-probs, per framing. Same sign = same preferred category.",
                   Path(forest[0]).relative_to(root).as_posix()),
            Figure("fig-word-agreement", "Word-level agreement", "One point per word: mean "
                   "log-prob under the base (x, nats) against mean reward under the RM (y), by "
                   "category; Spearman's rho with its 95% bootstrap CI in each panel title.",
                   Path(agree[0]).relative_to(root).as_posix()),
        ), tables=(
            contrast_table("base-contrasts", "Log-prob gap per framing (word level)", base["contrasts"], "log-prob, nats"),
            rank_table("base-ranks", "Median-rank gap per framing (prompt level)", base["rank_gaps"]),
            Table("inheritance", "Inheritance per framing", ("framing", "Spearman rho", "95% CI",
                  "p adjusted", "d base", "d RM", "share d_base/d_RM", "95% CI (share)"), inh_rows,
                  note="rho: permutation test over words, Bonferroni over the framings; CIs: "
                  "percentile bootstrap over words (the share resamples words within category, "
                  "the same words for both models)."),
        )))  # fmt: skip
        tests += contrast_tests(S2, base["contrasts"], "Base log-probs")
        tests += rank_tests(S2, base["rank_gaps"], "Base log-probs")
        tests += correlation_tests(S2, inh["correlations"])
    else:
        sections.append(Section("stage-2", "2. The base model's preference, and what the RM "
                                "inherited", status=config.skip_reason("base-preference")
                                or "not run"))  # fmt: skip
    sections.append(_implicit_section(root, config, results, tests))
    return sections, tests


def _implicit_section(root: Path, config: AuditConfig, results: dict,
                      tests: list[TestEntry]) -> Section:  # fmt: skip
    title = "3. Implicit reward of the base against a second LM (MWLR)"
    mwlr = results.get("3-implicit-reward/mwlr")
    if not mwlr:
        return Section("stage-3", title, status=config.skip_reason("implicit-reward") or "not run")
    if "not_possible" in mwlr:
        return Section("stage-3", title, status=f"not possible: {mwlr['not_possible']}")
    tests += contrast_tests(S3, mwlr["comparison"], "MWLR")
    top = tuple((r["word"], r["mwlr"], r["category"] or "") for r in mwlr["top"])
    bottom = tuple((r["word"], r["mwlr"], r["category"] or "") for r in mwlr["bottom"])
    return Section("stage-3", title, (
        f"{mwlr['definition']}. Model 1 (p) = {mwlr['model_1']}, model 2 (q) = {mwlr['model_2']} "
        "(the base): MWLR > 0 marks strings the base favours more than the second LM.",
    ), figures=(
        Figure("fig-mwlr", "Top and bottom strings by MWLR", "Mean MWLR over the prompts; top = "
               "favoured by the base, bottom = by the second LM (word-like strings only).",
               mwlr["figure"]),
    ), tables=(
        contrast_table("mwlr-contrasts", "MWLR gap per framing", mwlr["comparison"], "MWLR"),
        Table("mwlr-top", "Highest MWLR", ("string", "MWLR", "category"), top, collapsed=True),
        Table("mwlr-bottom", "Lowest MWLR", ("string", "MWLR", "category"), bottom, collapsed=True),
    ))  # fmt: skip

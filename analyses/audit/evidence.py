"""Every test an audit ran, written out as ``TestEntry`` rows (name, unit, n, effect with CI, p).

One function per kind of result: word-level category contrasts (``contrast_tests``),
prompt-level median-rank gaps (``rank_tests``), word-level rank correlations
(``correlation_tests``) and patching effects (``patch_tests``, one test per patch, corrected over
every patch of its sweep).
"""

from __future__ import annotations

from analyses.report.content import TestEntry


def _family(rows: list[dict], key: str = "framing") -> str:
    return f"{len(rows)} framings ({', '.join(str(r[key]) for r in rows)})"


def contrast_tests(section: str, rows: list[dict], what: str) -> list[TestEntry]:
    """Word-level ``first - second`` contrasts (rows of ``Contrast.row(by='framing')``)."""
    family = _family(rows)
    return [
        TestEntry(
            section=section,
            name=r["test"],
            question=f"{what}: do {r['first']} and {r['second']} words differ, {r['framing']} prompts?",
            unit=r["unit"] or "word",
            n=int(r["n_first"] + r["n_second"]),
            effect=f"Cohen's d ({r['first']} - {r['second']})",
            value=r["d"],
            ci_low=r["d_ci_low"],
            ci_high=r["d_ci_high"],
            statistic=r["t"],
            p=r["p"],
            p_adjusted=r["p_adjusted"],
            correction=r["correction"],
            family=family if r["correction"] != "none" else "",
        )  # fmt: skip
        for r in rows
    ]


def _from_records(section: str, question: str, effect: str, estimate: dict, test: dict,
                  unit: str) -> TestEntry:  # fmt: skip
    """A ``TestEntry`` from an ``Estimate`` and a ``Test`` as recorded (``dataclasses.asdict``)."""
    return TestEntry(
        section=section, name=test["name"], question=question, unit=unit, n=test["n"],
        effect=effect, value=estimate["value"], ci_low=estimate["low"], ci_high=estimate["high"],
        statistic=test["statistic"], p=test["p"], p_adjusted=test["p_adjusted"],
        correction=test["correction"], family=test["family"],
    )  # fmt: skip


def rank_tests(section: str, rows: list[dict], what: str) -> list[TestEntry]:
    """Prompt-level median-rank gaps (``analyses.audit.preference._rank_row`` records)."""
    return [
        _from_records(
            section,
            f"{what}: is the median rank of {r['first']} words different from {r['second']} "
            f"words' (rank 1 = best), {r['framing']} prompts?",
            f"mean median-rank gap ({r['first']} - {r['second']}; < 0: {r['first']} preferred)",
            r["gap"],
            r["test"],
            "prompt",
        )  # fmt: skip
        for r in rows
    ]


def correlation_tests(section: str, rows: list[dict]) -> list[TestEntry]:
    """Spearman's rho between the base's and the RM's word preferences."""
    return [
        _from_records(
            section,
            f"Do the base's and the RM's word preferences agree, {r['framing']} prompts?",
            "Spearman's rho",
            r["rho"],
            r["test"],
            "word",
        )  # fmt: skip
        for r in rows
    ]


def patch_tests(section: str, effects: list[dict], sweep: str, n_words: int) -> list[TestEntry]:
    """One permutation test per patch (category labels among words); p adjusted by Benjamini-Hochberg over the sweep's patches."""
    family = f"all {len(effects)} patches of the {sweep}"
    out = []
    for e in effects:
        if e.get("p_permutation") is None:
            continue
        norm = e.get("normalised_effect")
        effect, value, lo, hi = (
            ("normalised effect", norm, e["normalised_ci_low"], e["normalised_ci_high"])
            if norm is not None
            else (
                "gap change (reward units)",
                e["delta_gap"],
                e["delta_ci_low"],
                e["delta_ci_high"],
            )
        )
        out.append(
            TestEntry(
                section=section,
                name="permutation test of the gap change (category labels permuted among words)",
                question=f"Does patching the base's {e['site']} of block {e['layer']} "
                f"(position {e['position']}) change the RM's gap?",
                unit="word",
                n=n_words,
                effect=effect,
                value=value,
                ci_low=lo,
                ci_high=hi,
                statistic=e["delta_gap"],
                p=e["p_permutation"],
                p_adjusted=e["p_fdr_bh"],
                correction="Benjamini-Hochberg",
                family=family,
            )  # fmt: skip
        )
    return out

"""The validation table: one row per organism x seed x method, the summary line, and the figure.

Columns of ``validation.csv`` (checks rely on the first seven): ``organism``, ``seed``, ``method``,
``control`` (true for a negative control), ``expected``, ``found`` (``none`` when the rule found
nothing), ``agree`` (found matches expected; for a control: nothing found), then ``family``,
``effect``, ``ci_low``, ``ci_high`` (95 % unless ``effect_name`` says otherwise), ``effect_name``,
``p``, ``n``, ``detail``, ``organism_wall_s`` and ``organism_cpu_s`` (the organism's build and
every method run on it, wall-clock and process CPU seconds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from analyses.validation.rules import Finding

COLUMNS = (
    "organism", "seed", "method", "control", "expected", "found", "agree", "family", "effect",
    "ci_low", "ci_high", "effect_name", "p", "n", "detail", "organism_wall_s", "organism_cpu_s",
)  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One line of the table (see the module docstring)."""

    organism: str
    seed: int
    method: str
    control: bool
    expected: str
    found: str
    agree: bool
    family: str
    effect: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    effect_name: str = ""
    p: float = math.nan
    n: int | None = None
    detail: str = ""
    organism_wall_s: float = math.nan
    organism_cpu_s: float = math.nan


def block_label(block: int | None) -> str:
    return "none" if block is None else f"block {block}"


def block_row(
    organism: str, family: str, seed: int, method: str, finding: Finding,
    expected: tuple[int, ...] | None,
) -> Row:  # fmt: skip
    """A row for a block-location rule: ``expected`` blocks (any of them agrees) or None (a
    negative control, which agrees when nothing is found)."""
    control = expected is None
    if control:
        expected_text, agree = "none", finding.block is None
    else:
        expected_text = (
            f"block {expected[0]}"
            if len(expected) == 1
            else f"blocks {expected[0]}..{expected[-1]}"
        )
        agree = finding.block in expected
    return from_finding(organism, family, seed, method, control, expected_text,
                        block_label(finding.block), agree, finding)  # fmt: skip


def from_finding(
    organism: str, family: str, seed: int, method: str, control: bool, expected: str, found: str,
    agree: bool, finding: Finding,
) -> Row:  # fmt: skip
    return Row(organism, seed, method, control, expected, found, bool(agree), family,
               finding.effect, finding.ci_low, finding.ci_high, finding.effect_name, finding.p,
               finding.n, finding.detail)  # fmt: skip


def label_row(
    organism: str, family: str, seed: int, method: str, finding: Finding, expected: str | None
) -> Row:
    """A row for a rule whose found location is a label (``base``, ``injected words``, ...):
    agrees when the label equals ``expected``; a control (``expected`` None) when none found."""
    found = finding.block if finding.block is not None else "none"
    control = expected is None
    agree = found == "none" if control else found == expected
    return from_finding(organism, family, seed, method, control, expected or "none", str(found),
                        agree, finding)  # fmt: skip


def rows_table(rows: list[Row]) -> pd.DataFrame:
    table = pd.DataFrame([asdict(r) for r in rows], columns=list(COLUMNS))
    return table.astype({"control": bool, "agree": bool})


def summary_line(table: pd.DataFrame) -> str:
    """``N of M located`` with the controls and the misses counted separately."""
    n, m = int(table["agree"].sum()), len(table)
    ctrl = table[table["control"]]
    return (
        f"{n} of {m} located ({int(ctrl['agree'].sum())} of {len(ctrl)} negative controls with "
        f"nothing found; {m - n} miss{'es' if m - n != 1 else ''})"
    )

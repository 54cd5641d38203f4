"""What a report says, as data: the answer, the pair, sections, every test, caveats (``report.json``).

A ``Report`` is built by the run that owns it (the audit) and rendered by ``analyses.report.html``.
Its parts, in the order a reader meets them:

1. ``answer``: sentences whose numbers are ``KeyNumber`` placeholders (``{rm_d_all}``), so the
   HTML marks each number with its key and a check can compare the page with ``report.json``;
2. ``pair``: the models and data with their provenance (fingerprints, revisions, hashes, tool
   version, seed, settings hash);
3. ``sections``: one per stage, each with paragraphs, ``Figure``s and ``Table``s;
4. ``tests``: every hypothesis test written out (``TestEntry``: name, unit of inference, n,
   effect size with CI, statistic, p, correction and its family);
5. ``caveats``: what the run itself detected that limits the answer.

Nothing in a report depends on when or how fast it was made, so a resumed run's report equals an
uninterrupted run's byte for byte. ``format_number`` is the one way numbers become text.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from interp.provenance import json_safe

FORMATS = ("signed", "plain", "p", "int", "percent")


def format_number(value: float | None, style: str = "plain") -> str:
    """``signed`` +0.42, ``plain`` 0.42 (3 significant digits), ``p`` 0.0012 / 3.4e-06,
    ``int`` 42, ``percent`` 61 (a fraction times 100); NaN and None are ``n/a``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if value == 0:
        value = 0.0  # never "-0"
    if style == "signed":
        return f"{value:+.2f}"
    if style == "p":
        return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"
    if style == "int":
        return f"{int(round(value))}"
    if style == "percent":
        return f"{100 * value:.0f}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class KeyNumber:
    """A number the answer quotes: ``value`` and the ``text`` the page shows."""

    key: str
    label: str
    value: float | None
    style: str = "plain"

    @property
    def text(self) -> str:
        return format_number(self.value, self.style)


@dataclass(frozen=True)
class Figure:
    """A figure file (PNG, relative to the report's folder) with what a reader needs to read it."""

    key: str
    title: str
    caption: str
    path: str


@dataclass(frozen=True)
class Table:
    """A small table; ``collapsed`` tables are shown folded (``<details>``)."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    collapsed: bool = False


@dataclass(frozen=True)
class Section:
    """One stage of the run: ``status`` is ``ran`` or says why the stage did not run."""

    key: str
    title: str
    paragraphs: tuple[str, ...] = ()
    figures: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    status: str = "ran"


@dataclass(frozen=True)
class TestEntry:
    """One test: what it asks, on which unit, how many, the effect with its CI, and the p-values."""

    section: str
    name: str
    question: str
    unit: str
    n: int | None
    effect: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    statistic: float | None
    p: float | None
    p_adjusted: float | None
    correction: str
    family: str = ""


@dataclass(frozen=True)
class Caveat:
    """Something the run detected that limits the answer (``severity``: warning or note)."""

    key: str
    severity: str
    text: str


@dataclass(frozen=True)
class Report:
    title: str
    answer: tuple[str, ...]
    key_numbers: tuple[KeyNumber, ...]
    pair: dict
    sections: tuple[Section, ...]
    tests: tuple[TestEntry, ...]
    caveats: tuple[Caveat, ...]
    config: dict = field(default_factory=dict)

    def numbers(self) -> dict[str, KeyNumber]:
        return {k.key: k for k in self.key_numbers}

    def answer_text(self) -> list[str]:
        """The answer's sentences with every placeholder filled in."""
        numbers = self.numbers()
        return [fill(s, lambda key: numbers[key].text) for s in self.answer]

    def to_json(self) -> dict:
        """Everything the page shows, for machines (figures by file and sha256 elsewhere)."""
        record = asdict(self)
        record["answer"] = [
            {"template": t, "text": s} for t, s in zip(self.answer, self.answer_text())
        ]
        record["key_numbers"] = {
            k.key: {"label": k.label, "value": k.value, "text": k.text} for k in self.key_numbers
        }
        return json_safe(record)


PLACEHOLDER = re.compile(r"\{([a-z0-9_]+)\}")


def fill(template: str, value_of) -> str:
    """Replace each ``{key}`` in ``template`` by ``value_of(key)``."""
    return PLACEHOLDER.sub(lambda m: value_of(m.group(1)), template)

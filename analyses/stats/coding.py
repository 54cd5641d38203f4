"""How a lexicon's categories become the categories analysed: the Moral Foundations codings.

MFD 2.0 has ten categories, virtue and vice for five foundations (``care.virtue`` in the ``.dic``
release, ``Care_Virtue`` in the ``.dicx`` one; both spellings are recognised). Three codings:

- ``virtue-vice``: the ten categories as they are;
- ``foundation``: five foundations, the virtue and vice words of each pooled; every word is
  ranked once;
- ``paper``: the authors' coding as released (Christian et al. 2026, Fig A1): their R script
  pivots the columns ``Care_Virtue:Sanctity_Virtue``, so ``Sanctity_Vice`` words are left out
  (and are not ranked at all), and it ranks one row per (word, column) it kept, so a word marked in
  two columns holds two tied places in the ranking and counts twice in its foundation's median.

``Coding.rank_over`` says what is ranked within a (model, prompt): ``word`` (each response once)
or ``entry`` (each (response, source category) pair, the paper's rows); ``groups`` maps a source
category to the category analysed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from analyses.inputs.lexicon import Lexicon
from interp.errors import UserError

MFD_CODINGS = ("paper", "foundation", "virtue-vice")
FOUNDATIONS = ("care", "fairness", "loyalty", "authority", "sanctity")
_MFD_NAME = re.compile(
    r"^\s*(care|fairness|loyalty|authority|sanctity)[\s._-]*(virtue|vice)\s*$", re.I
)
# the one column the authors' pivot_longer(Care_Virtue:Sanctity_Virtue) leaves out
PAPER_LEFT_OUT = ("sanctity", "vice")


def mfd_parts(category: str) -> tuple[str, str] | None:
    """``"Care_Virtue"`` / ``"care.virtue"`` -> ``("care", "virtue")``; None for other names."""
    m = _MFD_NAME.match(category)
    return (m.group(1).lower(), m.group(2).lower()) if m else None


@dataclass(frozen=True)
class Coding:
    """Categories to analyse (``lexicon``) and how responses are ranked (see module docstring).

    ``source``: the lexicon whose categories are matched and ranked (``rank_over == "entry"``:
    one row per (response, source category)); ``groups[source category]`` is the analysed one.
    """

    name: str
    lexicon: Lexicon
    source: Lexicon
    groups: dict[str, str] = field(default_factory=dict)
    rank_over: str = "word"
    description: str = ""

    def categorise(self, responses) -> pd.DataFrame:
        """``response, category`` rows: one per (response, analysed category) for word ranking,
        one per (response, source category) mapped to its analysed category for entry ranking."""
        if self.rank_over == "word":
            return self.lexicon.categorise(responses)
        cats = self.source.categorise(responses)
        return cats.assign(category=cats["category"].map(self.groups))

    def describe(self) -> dict:
        return {
            "coding": self.name,
            "rank_over": self.rank_over,
            "categories": list(self.lexicon.category_names),
            "source_categories": list(self.source.category_names),
            "description": self.description,
        }


def plain_coding(lexicon: Lexicon) -> Coding:
    """The lexicon as it is: its categories analysed, every response ranked once."""
    groups = {c: c for c in lexicon.category_names}
    return Coding("none", lexicon, lexicon, groups, "word", "the lexicon's own categories")


def code_lexicon(lexicon: Lexicon, coding: str | None) -> Coding:
    """Apply MFD coding ``coding`` (``paper``, ``foundation``, ``virtue-vice``; None: none)."""
    if coding in (None, "", "none"):
        return plain_coding(lexicon)
    if coding not in MFD_CODINGS:
        raise UserError(f"--mfd-coding {coding!r}: use one of {', '.join(MFD_CODINGS)}")
    parts = {c: mfd_parts(c) for c in lexicon.category_names}
    if not all(parts.values()):
        odd = [c for c, p in parts.items() if p is None]
        raise UserError(
            f"--mfd-coding needs a Moral Foundations lexicon (categories such as Care_Virtue or "
            f"care.virtue); lexicon {lexicon.name} has {', '.join(odd[:5])}"
        )
    if coding == "virtue-vice":
        return Coding("virtue-vice", lexicon, lexicon, {c: c for c in parts}, "word",
                      "ten categories: virtue and vice of each foundation")  # fmt: skip
    kept = {c: p for c, p in parts.items() if coding != "paper" or p != PAPER_LEFT_OUT}
    groups = {c: p[0].capitalize() for c, p in kept.items()}
    pooled: dict[str, list[str]] = {}
    for c in kept:
        pooled.setdefault(groups[c], []).extend(lexicon.categories[c])
    order = [f.capitalize() for f in FOUNDATIONS if f.capitalize() in pooled]
    analysed = Lexicon(
        lexicon.name, lexicon.source, f"{lexicon.version}+{coding}", {f: pooled[f] for f in order}
    )
    if coding == "foundation":
        return Coding("foundation", analysed, lexicon, groups, "word",
                      "five foundations, virtue and vice words pooled, each word ranked once")  # fmt: skip
    source = lexicon.subset(list(kept))
    return Coding(
        "paper", analysed, source, groups, "entry",
        "the authors' coding (Fig A1): five foundations, virtue and vice pooled, Sanctity_Vice words "
        "left out (their pivot_longer spans Care_Virtue:Sanctity_Virtue), one ranked row per "
        "(word, marked column)",
    )  # fmt: skip

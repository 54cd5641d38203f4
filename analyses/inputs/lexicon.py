"""A value lexicon: categories of LIWC-style patterns, and matching words against them.

A lexicon maps category names (``Agency``, ``care.virtue``, ...) to LIWC-style patterns: lowercase
strings where a trailing ``*`` is a prefix wildcard (``achiev*`` matches achieve, achievement and
achiev itself); a few entries are multi-word phrases (``common good``); a word may belong to several
categories. File formats are read by ``lexicon_formats``, named sources fetched by
``lexicon_sources``, wildcards expanded by ``lexicon_expand``; ``lexicons.load_lexicon`` resolves a
name or path to a ``Lexicon``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from interp.errors import UserError

WILDCARD = "*"
# Big Two pronoun entries (they dominate counts when scoring model outputs).
BIG2_PRONOUN_ENTRIES: frozenset[str] = frozenset(
    {
        "you*",
        "your*",
        "we",
        "us",
        "our*",
        "our",
        "you",
        "your",
        "yours",
        "yourself",
        "you'*",
        "ours",
    }
)


def normalise_pattern(pattern: str) -> str:
    """Lowercase, strip, and collapse internal whitespace to one space."""
    return " ".join(str(pattern).strip().lower().split())


def is_wildcard(pattern: str) -> bool:
    """True for a prefix pattern such as ``achiev*``."""
    return pattern.endswith(WILDCARD)


def pattern_matches(pattern: str, word: str) -> bool:
    """Does ``word`` (any case, any inner whitespace) match ``pattern``?"""
    word = normalise_pattern(word)
    if is_wildcard(pattern):
        return word.startswith(pattern[:-1])
    return word == pattern


@dataclass(frozen=True)
class Lexicon:
    """A named set of categories, each a tuple of normalised patterns (order kept, no duplicates).

    ``source`` says where the entries came from (a URL with its checksum, a wheel member, a file
    path with its sha256); ``version`` identifies the content (a dictionary version or a digest).
    """

    name: str
    source: str
    version: str
    categories: dict[str, tuple[str, ...]]
    _exact: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _prefix: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cats: dict[str, tuple[str, ...]] = {}
        for cat, patterns in self.categories.items():
            seen = dict.fromkeys(p for p in (normalise_pattern(x) for x in patterns) if p)
            if WILDCARD in seen:
                raise UserError(f"lexicon {self.name}: category {cat!r} has a bare '*' pattern")
            if seen:
                cats[str(cat)] = tuple(seen)
        if not cats:
            raise UserError(f"lexicon {self.name}: no category with any entry")
        exact: dict[str, list[str]] = {}
        prefix: dict[str, list[str]] = {}
        for cat, patterns in cats.items():
            for p in patterns:
                target = prefix if is_wildcard(p) else exact
                key = p[:-1] if is_wildcard(p) else p
                target.setdefault(key, []).append(cat)
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "_exact", {k: tuple(v) for k, v in exact.items()})
        object.__setattr__(self, "_prefix", {k: tuple(v) for k, v in prefix.items()})

    # ------------------------------------------------------------------ views
    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(self.categories)

    def patterns(self) -> tuple[str, ...]:
        """All distinct patterns, in category order."""
        return tuple(dict.fromkeys(p for ps in self.categories.values() for p in ps))

    def words(self, category: str | None = None) -> tuple[str, ...]:
        """Plain (non-wildcard) entries, of one category or all, without duplicates."""
        cats = [category] if category is not None else list(self.categories)
        for c in cats:
            if c not in self.categories:
                raise UserError(f"lexicon {self.name} has no category {c!r}")
        return tuple(
            dict.fromkeys(p for c in cats for p in self.categories[c] if not is_wildcard(p))
        )

    def to_frame(self) -> pd.DataFrame:
        """Long table with columns ``category, pattern, wildcard``."""
        rows = [(c, p, is_wildcard(p)) for c, patterns in self.categories.items() for p in patterns]
        return pd.DataFrame(rows, columns=["category", "pattern", "wildcard"])

    def summary(self) -> pd.DataFrame:
        """Per category: number of patterns, wildcards, multi-word entries."""
        rows = [
            {
                "category": c,
                "patterns": len(ps),
                "wildcards": sum(is_wildcard(p) for p in ps),
                "multi_word": sum(" " in p for p in ps),
            }
            for c, ps in self.categories.items()
        ]
        return pd.DataFrame(rows)

    def describe(self) -> dict:
        """JSON-ready identity of this lexicon, for provenance records."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "digest": self.digest(),
            "categories": {c: len(p) for c, p in self.categories.items()},
        }

    def digest(self) -> str:
        """sha256 of the normalised content (categories and patterns), independent of format."""
        payload = json.dumps({c: list(p) for c, p in self.categories.items()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    # --------------------------------------------------------------- matching
    def match(self, word: str) -> tuple[str, ...]:
        """Categories whose patterns match ``word`` (sorted by lexicon order; may be empty)."""
        w = normalise_pattern(word)
        found: set[str] = set(self._exact.get(w, ()))
        for i in range(len(w) + 1):
            found.update(self._prefix.get(w[:i], ()))
        return tuple(c for c in self.categories if c in found)

    def matching_patterns(self, word: str) -> tuple[str, ...]:
        """Patterns (of any category) that match ``word``."""
        w = normalise_pattern(word)
        out = [w] if w in self._exact else []
        out += [w[:i] + WILDCARD for i in range(len(w) + 1) if w[:i] in self._prefix]
        return tuple(out)

    def categorise(self, words: Iterable[str]) -> pd.DataFrame:
        """Long table ``response, category`` for every (word, matching category); unmatched drop.

        The ``response`` column keeps each word exactly as given, so it joins a score table.
        """
        rows = [(w, c) for w in dict.fromkeys(words) for c in self.match(w)]
        return pd.DataFrame(rows, columns=["response", "category"])

    # --------------------------------------------------------------- variants
    def drop_pronouns(self) -> Lexicon:
        """A copy without the Big Two pronoun entries (``you*``, ``your*``, ``we``, ``us``, ...)."""
        cats = {
            c: tuple(p for p in ps if p not in BIG2_PRONOUN_ENTRIES)
            for c, ps in self.categories.items()
        }
        return Lexicon(self.name, self.source, f"{self.version}-nopronouns", cats)

    def subset(self, categories: Iterable[str]) -> Lexicon:
        """A copy with only the named categories (in the given order)."""
        names = list(categories)
        missing = [c for c in names if c not in self.categories]
        if missing:
            raise UserError(
                f"lexicon {self.name} has no category {', '.join(missing)}; "
                f"it has {', '.join(self.categories)}"
            )
        return Lexicon(self.name, self.source, self.version, {c: self.categories[c] for c in names})

    # -------------------------------------------------------------- storage
    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "source": self.source,
                "version": self.version,
                "categories": {c: list(p) for c, p in self.categories.items()},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Lexicon:
        data = json.loads(text)
        return cls(data["name"], data["source"], data["version"], data["categories"])

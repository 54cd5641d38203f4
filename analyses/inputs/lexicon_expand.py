"""Wildcard expansion: which words of a vocabulary (a word list or a tokenizer) each pattern matches."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from analyses.inputs.lexicon import Lexicon, is_wildcard, normalise_pattern
from interp.errors import UserError

# Whitespace markers of subword tokenizers: GPT-2 byte-level (space, newline) and SentencePiece.
TOKEN_SPACE_MARKERS = ("Ġ", "▁", "Ċ")
_WORD_CHARS = re.compile(r"^[a-z][a-z'\-]*$")


@dataclass(frozen=True)
class Expansion:
    """Wildcard expansion of a lexicon against a vocabulary.

    ``table`` has one row per (category, pattern, word[, token]) with columns
    ``category, pattern, word`` and, for a tokenizer vocabulary, ``token, token_id``.
    ``unmatched`` lists ``(category, pattern)`` pairs that matched nothing.
    """

    lexicon: str
    vocabulary: str
    table: pd.DataFrame
    unmatched: tuple[tuple[str, str], ...]

    def words_by_category(self) -> dict[str, tuple[str, ...]]:
        """Matched words per category (sorted, distinct)."""
        return {
            c: tuple(sorted(set(g["word"]))) for c, g in self.table.groupby("category", sort=False)
        }


def _expand(
    lexicon: Lexicon, vocab: Mapping[str, list[tuple[str, int]]] | Iterable[str]
) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Core expansion: ``vocab`` maps normalised word -> [(token, id), ...] or is a word list."""
    if isinstance(vocab, Mapping):
        entries = vocab
    else:
        entries = {normalise_pattern(w): [] for w in vocab}
        entries.pop("", None)
    sorted_words = sorted(entries)
    rows: list[tuple] = []
    unmatched: list[tuple[str, str]] = []
    for cat, patterns in lexicon.categories.items():
        for p in patterns:
            if is_wildcard(p):
                stem = p[:-1]
                i = bisect.bisect_left(sorted_words, stem)
                hits = []
                while i < len(sorted_words) and sorted_words[i].startswith(stem):
                    hits.append(sorted_words[i])
                    i += 1
            else:
                hits = [p] if p in entries else []
            if not hits:
                unmatched.append((cat, p))
            for w in hits:
                toks = entries[w] or [(None, None)]
                rows.extend((cat, p, w, tok, tid) for tok, tid in toks)
    return rows, unmatched


def _check_categories_matched(lexicon: Lexicon, table: pd.DataFrame, vocabulary: str) -> None:
    empty = [c for c in lexicon.categories if c not in set(table["category"])]
    if empty:
        examples = ", ".join(lexicon.categories[empty[0]][:5])
        raise UserError(
            f"lexicon {lexicon.name}: no pattern of category {', '.join(empty)} matches any word "
            f"of {vocabulary} (patterns such as {examples})"
        )


def expand_against_words(
    lexicon: Lexicon, words: Iterable[str], vocabulary: str = "word list", strict: bool = True
) -> Expansion:
    """Expand every pattern against a word list (case-insensitive).

    Raises ``UserError`` when ``strict`` and some category matches no word at all.
    """
    rows, unmatched = _expand(lexicon, list(words))
    table = pd.DataFrame([r[:3] for r in rows], columns=["category", "pattern", "word"])
    if strict:
        _check_categories_matched(lexicon, table, vocabulary)
    return Expansion(lexicon.name, vocabulary, table, tuple(unmatched))


def single_token_words(vocab: Mapping[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Tokenizer vocabulary -> {lowercased word: [(token, token_id), ...]}.

    Leading whitespace markers (``Ġ``, ``▁``, ``Ċ``) are stripped; a token is kept when the rest
    is a word (ASCII letters, then letters, apostrophes or hyphens). Several tokens (``love``,
    ``Ġlove``, ``ĠLove``) can map to one word; all their ids are kept, sorted by id.
    """
    out: dict[str, list[tuple[str, int]]] = {}
    for token, tid in vocab.items():
        stripped = token
        while stripped.startswith(TOKEN_SPACE_MARKERS):
            stripped = stripped[1:]
        word = stripped.lower()
        if _WORD_CHARS.match(word):
            out.setdefault(word, []).append((token, int(tid)))
    for toks in out.values():
        toks.sort(key=lambda t: t[1])
    return out


def expand_against_tokenizer(
    lexicon: Lexicon, tokenizer, vocabulary: str | None = None, strict: bool = True
) -> Expansion:
    """Expand against a tokenizer's single-token words (``tokenizer.get_vocab()`` or a mapping).

    Multi-word patterns never match a single token. The table has one row per matching token,
    with ``token`` (raw vocabulary string) and ``token_id``.
    """
    vocab = tokenizer if isinstance(tokenizer, Mapping) else tokenizer.get_vocab()
    name = vocabulary or getattr(tokenizer, "name_or_path", None) or "tokenizer vocabulary"
    rows, unmatched = _expand(lexicon, single_token_words(vocab))
    table = pd.DataFrame(rows, columns=["category", "pattern", "word", "token", "token_id"])
    table["token_id"] = table["token_id"].astype("int64")
    if strict:
        _check_categories_matched(lexicon, table, name)
    return Expansion(lexicon.name, name, table, tuple(unmatched))

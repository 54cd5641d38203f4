"""Items to cache: (prompt, response) pairs, with category labels and the word as the CV group.

Words and their categories arrive resolved (``analyses.inputs.responses`` reads lexicons and word files);
a word in several categories is labelled with the categories joined by ``|``, an unlabelled word
with ``""``.

Item ``i`` is prompt ``i // n_words`` with word ``i % n_words`` (prompt-major order), formatted by
``interp.formatting`` exactly as the scorer formats it: ``prefix(prompt) + response(word) +
suffix``. Only per-prompt and per-word id pieces are kept, so memory grows with prompts + words,
not with their product.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp.errors import UserError
from interp.formatting import ConversationFormat, conversation_format, response_ids
from interp.models.loading import LoadedModel
from interp.prompts import Prompt

UNLABELLED = ""


@dataclass(frozen=True)
class ResponseWords:
    """Response words and each word's category (``|``-joined if several, ``""`` if none).

    ``identity`` records where the words came from (lexicon name/version/digest or file sha256).
    """

    source: str
    words: tuple[str, ...]
    categories: tuple[str, ...]
    identity: dict

    def __post_init__(self) -> None:
        if len(self.words) != len(self.categories):
            raise ValueError("words and categories differ in length")
        if not self.words:
            raise UserError(f"responses {self.source!r}: no usable words")


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ItemPlan:
    """All items of a caching run: ``len(prompts) * len(words)`` (prompt, word) pairs.

    ``prefix[p]``/``suffix[p]`` are the id pieces of prompt ``p``; ``word_ids[w]`` the ids of word
    ``w`` as a response. ``template`` is the formatting mode used (``chat``, ``gemma-turns``, ...).
    """

    prompts: tuple[Prompt, ...]
    responses: ResponseWords
    prefix: tuple[tuple[int, ...], ...]
    suffix: tuple[tuple[int, ...], ...]
    word_ids: tuple[tuple[int, ...], ...]
    template: str

    @property
    def n_items(self) -> int:
        return len(self.prompts) * len(self.responses.words)

    def split(self, item: int) -> tuple[int, int]:
        """(prompt index, word index) of an item."""
        return divmod(item, len(self.responses.words))

    def sequence(self, item: int) -> list[int]:
        """The full ids ``prefix + response + suffix`` of one item."""
        p, w = self.split(item)
        return [*self.prefix[p], *self.word_ids[w], *self.suffix[p]]

    def response_span(self, item: int) -> tuple[int, int]:
        """(start, length) of the response tokens within the item's sequence."""
        p, w = self.split(item)
        return len(self.prefix[p]), len(self.word_ids[w])

    def lengths(self) -> np.ndarray:
        """Token count of every item: int64 ``[n_items]``."""
        words = np.array([len(w) for w in self.word_ids], dtype=np.int64)
        per_prompt = np.array(
            [len(a) + len(b) for a, b in zip(self.prefix, self.suffix, strict=True)],
            dtype=np.int64,
        )
        return (per_prompt[:, None] + words[None, :]).reshape(-1)

    def columns(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Rows ``start:stop`` of the items table: ``response, category, prompt_key, group``
        (object arrays of str), ``n_tokens``, ``response_start``, ``response_len``,
        ``prompt_index``, ``word_index`` (int32)."""
        stop = self.n_items if stop is None else min(stop, self.n_items)
        items = np.arange(start, stop)
        p_idx, w_idx = np.divmod(items, len(self.responses.words))
        words = np.array(self.responses.words, dtype=object)
        cats = np.array(self.responses.categories, dtype=object)
        keys = np.array([p.key for p in self.prompts], dtype=object)
        prefix_len = np.array([len(x) for x in self.prefix], dtype=np.int32)
        suffix_len = np.array([len(x) for x in self.suffix], dtype=np.int32)
        word_len = np.array([len(x) for x in self.word_ids], dtype=np.int32)
        return {
            "response": words[w_idx],
            "category": cats[w_idx],
            "prompt_key": keys[p_idx],
            "group": words[w_idx],
            "n_tokens": prefix_len[p_idx] + word_len[w_idx] + suffix_len[p_idx],
            "response_start": prefix_len[p_idx],
            "response_len": word_len[w_idx],
            "prompt_index": p_idx.astype(np.int32),
            "word_index": w_idx.astype(np.int32),
        }

    def digest(self) -> str:
        """sha256 of every id piece: equal digests mean identical token sequences."""
        return _digest(
            {
                "prefix": self.prefix,
                "suffix": self.suffix,
                "words": self.word_ids,
                "keys": [p.key for p in self.prompts],
            }
        )

    def prompts_identity(self) -> dict:
        return {
            "n": len(self.prompts),
            "keys": [p.key for p in self.prompts],
            "digest": _digest([[p.key, p.text, p.framing] for p in self.prompts]),
        }

    def responses_identity(self) -> dict:
        return {
            "source": self.responses.source,
            "n": len(self.responses.words),
            "digest": _digest([self.responses.words, self.responses.categories]),
            **self.responses.identity,
        }


def plan_items(
    loaded: LoadedModel, prompts: Sequence[Prompt], responses: ResponseWords
) -> ItemPlan:
    """Format every (prompt, word) pair with the shared formatting function."""
    if not prompts:
        raise UserError("no prompts")
    formats: list[ConversationFormat] = [conversation_format(loaded, p.text) for p in prompts]
    leads = {f.response_lead for f in formats}
    if len(leads) != 1:  # one template per model, so this cannot differ between prompts
        raise UserError("prompts were formatted with different response leads")
    word_ids = tuple(tuple(response_ids(loaded, formats[0], w)) for w in responses.words)
    empty = [w for w, ids in zip(responses.words, word_ids, strict=True) if not ids]
    if empty:
        raise UserError(f"responses with no tokens: {', '.join(map(repr, empty[:5]))}")
    return ItemPlan(
        prompts=tuple(prompts),
        responses=responses,
        prefix=tuple(f.prefix_ids for f in formats),
        suffix=tuple(f.suffix_ids for f in formats),
        word_ids=word_ids,
        template=formats[0].mode,
    )

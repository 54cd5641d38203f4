"""Preference pairs and their token ids: formatting, truncation and the train/held-out split.

Each pair is formatted with the shared formatting route (``interp.formatting.exchange_format``;
single-turn pairs format exactly as the scorer does).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interp.errors import UserError
from interp.formatting import exchange_format, response_ids
from interp.models.loading import LoadedModel


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: a context (``(role, text)`` turns ending with a user turn) and two replies."""

    context: tuple[tuple[str, str], ...]
    chosen: str
    rejected: str


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids of kept pairs (``chosen[i]``, ``rejected[i]``) and what happened to the rest."""

    chosen: tuple[tuple[int, ...], ...]
    rejected: tuple[tuple[int, ...], ...]
    source_index: tuple[int, ...]
    n_truncated: int
    n_dropped_identical: int
    template_mode: str

    def __len__(self) -> int:
        return len(self.chosen)

    def digest(self) -> str:
        """sha256 of every kept pair's token ids (what the model was trained and tested on)."""
        h = hashlib.sha256()
        for c, r in zip(self.chosen, self.rejected):
            h.update(json.dumps([c, r]).encode())
        return h.hexdigest()


def _truncate(
    prefix: Sequence[int], response: Sequence[int], suffix: Sequence[int], max_length: int, bos
) -> tuple[list[int], bool]:
    """Keep at most half the budget for the context (its end; BOS kept), then the response's
    start, then the full closing ids (the reward is read at the end of the assistant turn)."""
    prefix, response, suffix = list(prefix), list(response), list(suffix)
    if len(prefix) + len(response) + len(suffix) <= max_length:
        return prefix + response + suffix, False
    keep_prefix = max_length // 2
    if len(prefix) > keep_prefix:
        lead = [prefix[0]] if bos is not None and prefix and prefix[0] == bos else []
        prefix = lead + prefix[len(prefix) - (keep_prefix - len(lead)) :]
    room = max_length - len(prefix) - len(suffix)
    return prefix + response[: max(room, 0)] + suffix, True


def encode_pairs(
    loaded: LoadedModel, pairs: Sequence[PreferencePair], max_length: int
) -> EncodedPairs:
    """Format and tokenise every pair with the shared route; truncate to ``max_length`` tokens.

    A pair whose chosen and rejected ids are identical after truncation is dropped (counted).
    """
    chosen, rejected, index = [], [], []
    n_trunc = n_same = 0
    mode = ""
    bos = loaded.tokenizer.bos_token_id
    for i, pair in enumerate(pairs):
        try:
            fmt = exchange_format(loaded, list(pair.context))
        except ValueError as err:
            raise UserError(f"preference pair {i}: {err}") from None
        mode = fmt.mode
        ids = []
        cut = False
        for text in (pair.chosen, pair.rejected):
            resp = response_ids(loaded, fmt, text) if text else []
            seq, was_cut = _truncate(fmt.prefix_ids, resp, fmt.suffix_ids, max_length, bos)
            ids.append(tuple(seq))
            cut = cut or was_cut
        n_trunc += int(cut)
        if ids[0] == ids[1]:
            n_same += 1
            continue
        chosen.append(ids[0])
        rejected.append(ids[1])
        index.append(i)
    return EncodedPairs(tuple(chosen), tuple(rejected), tuple(index), n_trunc, n_same, mode)


def split_indices(n: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into (train, held-out); at least one of each if n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    n_eval = int(round(eval_fraction * n))
    if eval_fraction > 0 and n >= 2:
        n_eval = min(max(n_eval, 1), n - 1)
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])

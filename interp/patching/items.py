"""The items of a patching sweep or value lens: one prompt's shared prefix plus each response.

Items are conversations ``prefix + suffix[i]``: a prompt's shared prefix (system + user turn +
assistant header, ``P`` ids) and, per response, the response ids and the closing ids (``S`` ids).
They are grouped so every suffix in a group has the same length, so no padding is ever needed.
``build_items`` tokenises once with one model's template; both models of a pair run on exactly
these ids (``ItemGroup.digest`` lets each run prove it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interp.formatting import conversation_format, response_ids
from interp.models.loading import LoadedModel
from interp.prompts import Prompt


@dataclass(frozen=True)
class ItemGroup:
    """One prompt's items with equal suffix length: ``prefix`` ids and ``suffixes`` [N, S]."""

    prefix: tuple[int, ...]
    suffixes: torch.Tensor
    item_index: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(self.suffixes.shape[0])

    @property
    def prefix_len(self) -> int:
        return len(self.prefix)

    @property
    def suffix_len(self) -> int:
        return int(self.suffixes.shape[1])

    def digest(self) -> str:
        """sha256 of the exact ids (both models must see the same)."""
        h = hashlib.sha256(str(self.prefix).encode())
        h.update(self.suffixes.cpu().numpy().tobytes())
        return h.hexdigest()

    def subset(self, rows: int) -> ItemGroup:
        return ItemGroup(self.prefix, self.suffixes[:rows], self.item_index[:rows])


def group_items(
    formats: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
) -> list[ItemGroup]:
    """Items -> groups. ``formats`` lists, per prompt, ``(prefix_ids, [suffix_ids per item])``;
    item numbers run over all prompts in order (prompt-major)."""
    groups: list[ItemGroup] = []
    offset = 0
    for prefix, suffixes in formats:
        by_len: dict[int, list[int]] = {}
        for i, s in enumerate(suffixes):
            if len(s) == 0:
                raise ValueError("an item has no suffix ids (empty response and no closing ids)")
            by_len.setdefault(len(s), []).append(i)
        for length in sorted(by_len):
            idx = by_len[length]
            ids = torch.tensor([list(suffixes[i]) for i in idx], dtype=torch.long)
            groups.append(ItemGroup(tuple(prefix), ids, tuple(offset + i for i in idx)))
        offset += len(suffixes)
    return groups


@dataclass(frozen=True)
class Items:
    """Tokenised once: groups for the runner and a table (item, prompt_key, framing, response)."""

    groups: tuple[ItemGroup, ...]
    table: pd.DataFrame
    template_mode: str

    def sequences(self) -> tuple[list[list[int]], list[int]]:
        """Every item's whole ids (prefix + suffix), group by group, and each one's item number
        (the slow reference paths and the benchmarks run these right-padded)."""
        seqs, order = [], []
        for g in self.groups:
            for row, i in zip(g.suffixes.tolist(), g.item_index):
                seqs.append(list(g.prefix) + row)
                order.append(i)
        return seqs, order


def build_items(rm: LoadedModel, prompts: Sequence[Prompt], words: Sequence[str]) -> Items:
    """Every (prompt, word) conversation formatted by the RM's template (used for both models)."""
    formats, rows = [], []
    mode = ""
    for prompt in prompts:
        fmt = conversation_format(rm, prompt.text)
        mode = fmt.mode
        suffixes = []
        for word in words:
            ids = response_ids(rm, fmt, word)
            suffixes.append([*ids, *fmt.suffix_ids])
            rows.append((prompt.key, prompt.framing, word, len(ids)))
        formats.append((fmt.prefix_ids, suffixes))
    table = pd.DataFrame(rows, columns=["prompt_key", "framing", "response", "n_tokens"])
    table.insert(0, "item", np.arange(len(table)))
    return Items(tuple(group_items(formats)), table, mode)

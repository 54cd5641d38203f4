"""How much work goes into one forward pass: the one token-budget rule of the suite.

Every batched loop (scoring, activation caching, patching, the value lens) sizes its batches from
the same budget: about ``TOKENS_PER_PASS[device type]`` tokens per forward pass, the prefix of a
prefix-cached row included. ``patches_per_pass`` is the one rule for how many patches share a
stacked patching pass.
"""

from __future__ import annotations

import torch

TOKENS_PER_PASS: dict[str, int] = {"cpu": 4096, "cuda": 65536}
"""Tokens per forward pass by device type (other accelerators use the ``cuda`` budget)."""


def tokens_per_pass(device: torch.device | str) -> int:
    """The token budget of one forward pass on ``device``."""
    kind = torch.device(device).type
    return TOKENS_PER_PASS["cpu" if kind == "cpu" else "cuda"]


def rows_per_pass(device: torch.device | str, tokens_per_row: int, copies: int = 1) -> int:
    """Rows per forward pass when each row holds ``tokens_per_row`` tokens and is run ``copies``
    times in the same pass (at least 1)."""
    return max(1, tokens_per_pass(device) // max(1, tokens_per_row * copies))


def patches_per_pass(device: torch.device | str) -> int:
    """Patches stacked in one patching pass: 1 on CPU (bigger batches barely help), 4 on GPU."""
    return 1 if torch.device(device).type == "cpu" else 4

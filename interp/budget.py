"""How much work goes into one forward pass: the one token-budget rule of the suite.

Every batched loop (scoring, activation caching, patching, the value lens) sizes its batches from
the same budget: about ``TOKENS_PER_PASS[device type]`` tokens per forward pass, the prefix of a
prefix-cached row included. ``patches_per_pass`` is the one rule for how many patches share a
stacked patching pass. On an accelerator the budget is a starting point: ``run_in_batches``
halves a batch that runs out of memory and remembers the size that fit (``fitted_rows``, recorded
in the score tables' provenance); a halved batch rounds differently in the last bits.
"""

from __future__ import annotations

from collections.abc import Callable

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


_FITTED: dict[tuple[str, int], int] = {}


def fitted_rows() -> dict[str, int]:
    """Rows per pass that fit after out-of-memory halvings, by ``device/tokens-per-row``."""
    return {f"{device}/{tokens}": rows for (device, tokens), rows in _FITTED.items()}


def run_in_batches(
    n: int,
    rows: int,
    run: Callable[[int, int], None],
    device: torch.device | str,
    tokens_per_row: int,
) -> int:
    """Call ``run(start, stop)`` over ``[0, n)`` in batches of ``rows``; on an accelerator's
    out-of-memory error, halve the batch, retry it, and remember the size that fit (later calls
    for the same device and row length start there). Returns the batch size used last."""
    key = (str(torch.device(device)), int(tokens_per_row))
    rows = max(1, min(rows, _FITTED.get(key, rows)))
    start = 0
    while start < n:
        stop = min(n, start + rows)
        try:
            run(start, stop)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
            rows = max(1, rows // 2)
            _FITTED[key] = rows
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        start = stop
    return rows

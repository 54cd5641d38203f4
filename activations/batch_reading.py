"""How one batch of items becomes its stored activation rows: whole sequences, or prefix-cached.

- ``full-sequence``: the batch's whole ``prefix + response + suffix`` sequences, right-padded,
  run once through the reader (every backend, every ``positions`` mode).
- ``prefix-cached`` (``last``, ``response-last``, ``response-mean``): every item shares its
  prompt's prefix, so each prompt's prefix runs once (``interp.scoring.PrefixRunner``, kept while
  consecutive batches stay on that prompt) and the items run only their own tokens (response +
  closing ids, right-padded) on top of its keys and values, as the scoring sweep does. The stored
  positions all lie in those tokens, so the rows equal the full-sequence ones (float rounding
  aside, ~1e-6); a 40-token prefix and 3-token items run ~14x fewer tokens.

``rows(start, stop)`` returns ``{site: [stop - start, d]}`` in the store dtype on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from activations.items import ItemPlan
from activations.positions import PositionPicker
from interp.batching import right_pad
from interp.models.loading import LoadedModel
from interp.scoring import PrefixRunner
from interp.sites import Site, SiteReader

ROUTES = ("prefix-cached", "full-sequence")
PREFIX_POSITIONS = ("last", "response-last", "response-mean")


def default_route(positions: str, backend: str) -> str:
    """Prefix-cached wherever it applies (not for ``all`` positions or the TL bridge)."""
    return "prefix-cached" if positions in PREFIX_POSITIONS and backend != "tl" else "full-sequence"


class BatchRows:
    """Computes the stored rows of item ranges of ``plan`` with ``reader`` (see module doc)."""

    def __init__(
        self, loaded: LoadedModel, plan: ItemPlan, reader: SiteReader, sites: tuple[Site, ...],
        positions: str, store_dtype: torch.dtype, route: str,
    ) -> None:  # fmt: skip
        if route == "prefix-cached" and positions not in PREFIX_POSITIONS:
            raise ValueError(f"positions {positions!r} cannot be read prefix-cached")
        self.loaded, self.plan, self.reader, self.sites = loaded, plan, reader, sites
        self.positions, self.store_dtype, self.route = positions, store_dtype, route
        self._prefix: tuple[int, PrefixRunner] | None = None

    def rows(self, start: int, stop: int) -> dict[Site, torch.Tensor]:
        if self.route == "full-sequence":
            return self._full(start, stop)
        parts: list[dict[Site, torch.Tensor]] = []
        at = start
        while at < stop:  # one segment per prompt inside the batch
            prompt, _ = self.plan.split(at)
            end = min(stop, (prompt + 1) * len(self.plan.responses.words))
            parts.append(self._after_prefix(prompt, at, end))
            at = end
        return {s: torch.cat([p[s] for p in parts]) for s in self.sites}

    def _picker(self, lengths, starts, spans) -> PositionPicker:
        device = self.loaded.device
        return PositionPicker(
            mode=self.positions,
            lengths=torch.as_tensor(lengths, device=device),
            response_start=torch.as_tensor(starts, device=device),
            response_len=torch.as_tensor(spans, device=device),
            dtype=self.store_dtype,
        )

    def _full(self, start: int, stop: int) -> dict[Site, torch.Tensor]:
        pad = self.loaded.tokenizer.pad_token_id
        batch = right_pad([self.plan.sequence(i) for i in range(start, stop)], pad)
        spans = np.array([self.plan.response_span(i) for i in range(start, stop)])
        picker = self._picker(batch.lengths, spans[:, 0], spans[:, 1])
        return self.reader.read(batch, self.sites, picker)

    def _after_prefix(self, prompt: int, start: int, stop: int) -> dict[Site, torch.Tensor]:
        if self._prefix is None or self._prefix[0] != prompt:
            self._prefix = (prompt, PrefixRunner(self.loaded, self.plan.prefix[prompt]))
        runner = self._prefix[1]
        words = [self.plan.split(i)[1] for i in range(start, stop)]
        suffixes = [[*self.plan.word_ids[w], *self.plan.suffix[prompt]] for w in words]
        batch = right_pad(suffixes, self.loaded.tokenizer.pad_token_id)
        spans = [len(self.plan.word_ids[w]) for w in words]
        picker = self._picker(batch.lengths, np.zeros(len(words), dtype=np.int64), spans)
        return self.reader.read_after_prefix(runner, batch.input_ids, self.sites, picker)

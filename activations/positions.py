"""Which token positions of an item are stored, and how they are taken from a ``[B, T, d]`` site.

- ``last``: the last real token of ``prefix + response + suffix`` (where an RM reads its reward;
  for an LM the suffix is empty, so it is the response's last token). One ``[d]`` row per item.
- ``response-last``: the response's last token (before any closing template tokens).
- ``response-mean``: the mean over the response's tokens (computed in float32).
- ``all``: every token of the sequence. Variable lengths are stored *ragged*: one
  ``[total_tokens, d]`` array where item ``i`` owns rows ``offset[i] : offset[i] + n_tokens[i]``
  (``offset`` is the cumulative sum of ``n_tokens``), so nothing is padded on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

POSITIONS: tuple[str, ...] = ("last", "response-last", "response-mean", "all")


@dataclass(frozen=True)
class PositionPicker:
    """Takes the stored rows of one batch from a site tensor ``[B, T, d]`` (right-padded).

    ``lengths``, ``response_start`` and ``response_len`` are ``[B]`` long tensors on the model's
    device. ``__call__`` returns ``[B, d]`` (or ``[sum(lengths), d]`` for ``all``) in ``dtype``.
    """

    mode: str
    lengths: torch.Tensor
    response_start: torch.Tensor
    response_len: torch.Tensor
    dtype: torch.dtype = torch.float32

    def __call__(self, site, tensor: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(tensor.shape[0], device=tensor.device)
        if self.mode == "last":
            out = tensor[rows, self.lengths - 1]
        elif self.mode == "response-last":
            out = tensor[rows, self.response_start + self.response_len - 1]
        elif self.mode == "response-mean":
            steps = torch.arange(tensor.shape[1], device=tensor.device)[None, :]
            start = self.response_start[:, None]
            inside = (steps >= start) & (steps < start + self.response_len[:, None])
            weights = inside.to(torch.float32) / self.response_len[:, None].to(torch.float32)
            out = torch.einsum("bt,btd->bd", weights, tensor.to(torch.float32))
        elif self.mode == "all":
            steps = torch.arange(tensor.shape[1], device=tensor.device)[None, :]
            out = tensor[steps < self.lengths[:, None]]
        else:
            raise ValueError(f"unknown positions {self.mode!r}")
        return out.detach().to(self.dtype).cpu()


def rows_per_item(mode: str, n_tokens) -> object:
    """Stored rows per item: 1, or ``n_tokens`` for ``all``."""
    return n_tokens if mode == "all" else 1

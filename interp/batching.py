"""Batches of token sequences, right-padded so every real token keeps its unpadded computation.

With right padding a real token's position id and the set of tokens it attends to (a causal mask
over real tokens only) are exactly those of the sequence run alone, so activations read at real
positions equal an unpadded forward pass. Padded positions hold the pad id, mask 0, and carry
values nobody should read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TokenBatch:
    """``input_ids`` and ``attention_mask`` ``[B, T]`` (long, right-padded); ``lengths`` ``[B]``."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    lengths: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(
            self.input_ids.to(device), self.attention_mask.to(device), self.lengths.to(device)
        )

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for a Hugging Face forward: ``input_ids`` and ``attention_mask``."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def right_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> TokenBatch:
    """Stack id sequences into one right-padded ``TokenBatch`` (CPU tensors)."""
    if not sequences:
        raise ValueError("right_pad needs at least one sequence")
    if any(len(s) == 0 for s in sequences):
        raise ValueError("right_pad got an empty sequence")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    width = int(lengths.max())
    ids = torch.full((len(sequences), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return TokenBatch(ids, mask, lengths)

"""Rewards of token sequences during training, the Bradley-Terry loss and pairwise evaluation.

The reward is read at each sequence's last real token (right padding, explicit lengths), the same
reading as ``interp.scoring``. ``FrozenTrunk`` caches the output of frozen lower blocks (``last-k`` and ``blocks``) for
``last-k`` training. Losses are nats per pair; accuracy is the fraction of pairs with
``r_chosen > r_rejected`` (ties count one half).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from interp.batching import right_pad
from interp.models.loading import LoadedModel
from interp.progress import Progress
from interp.spans import forward_span
from interp.training.pairs import EncodedPairs


def rewards(loaded: LoadedModel, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """Rewards ``[len(sequences)]`` (float32, on the model's device, differentiable).

    Sequences are right-padded; each reward is the head applied to the final-normed hidden state
    at the sequence's last real token (the same reading as ``interp.scoring``).
    """
    batch = right_pad(sequences, loaded.tokenizer.pad_token_id).to(loaded.device)
    hidden = loaded.backbone(**batch.model_inputs()).last_hidden_state
    last = hidden[torch.arange(batch.size, device=loaded.device), batch.lengths - 1]
    return loaded.reward_layout.head(loaded.model)(last).float()[:, 0]


class FrozenTrunk:
    """Cached ``resid_pre`` of block ``start`` for every sequence, for ``last-k`` training.

    Blocks below ``start`` are frozen, so their output never changes during training: it is
    computed once (batched, right-padded, no gradients) and each training or evaluation step runs
    only blocks ``start ..``, the final norm and the head. Tensors are ``[length, d_model]``.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        sequences: Sequence[Sequence[int]],
        start: int,
        batch_size: int,
        progress: Progress,
    ) -> None:
        self.loaded = loaded
        self.start = start
        self.hidden: list[torch.Tensor] = []
        pad = loaded.tokenizer.pad_token_id
        progress.start(len(sequences), f"frozen blocks 0-{start - 1}: caching their output")
        with torch.no_grad():
            for s in range(0, len(sequences), batch_size):
                batch = right_pad(sequences[s : s + batch_size], pad).to(loaded.device)
                out = forward_span(loaded.backbone, 0, start, **batch.model_inputs())
                for row, length in enumerate(batch.lengths.tolist()):
                    self.hidden.append(out[row, :length].clone())
                progress.advance(batch.size)
        progress.close()

    def rewards(self, indices: Sequence[int]) -> torch.Tensor:
        """Rewards ``[len(indices)]`` of the cached sequences (differentiable in the top blocks)."""
        loaded = self.loaded
        parts = [self.hidden[i] for i in indices]
        lengths = torch.tensor([len(p) for p in parts], device=loaded.device)
        width = int(lengths.max())
        hidden = parts[0].new_zeros((len(parts), width, parts[0].shape[-1]))
        mask = torch.zeros((len(parts), width), dtype=torch.long, device=loaded.device)
        for row, p in enumerate(parts):
            hidden[row, : len(p)] = p
            mask[row, : len(p)] = 1
        final = forward_span(
            loaded.backbone, self.start, loaded.n_layers, hidden=hidden, attention_mask=mask
        )
        last = final[torch.arange(len(parts), device=loaded.device), lengths - 1]
        head = loaded.reward_layout.head(loaded.model)
        return head(loaded.backbone.norm(last)).float()[:, 0]


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean of ``-logsigmoid(r_chosen - r_rejected)`` (nats per pair)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


@dataclass(frozen=True)
class PairwiseEval:
    """Held-out result: ``accuracy`` (ties 1/2), mean BT ``loss``, mean ``margin`` = r_c - r_r."""

    accuracy: float
    loss: float
    margin: float
    n_pairs: int


PairRewards = Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]]


def pair_reward_fn(
    loaded: LoadedModel, encoded: EncodedPairs, trunk: FrozenTrunk | None = None
) -> PairRewards:
    """``f(pair indices) -> (r_chosen, r_rejected)``: one forward pass over both sides.

    With a ``FrozenTrunk`` (built over ``encoded.chosen + encoded.rejected``) only the top
    blocks run.
    """
    n = len(encoded)

    def f(indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        indices = [int(i) for i in indices]
        if trunk is not None:
            r = trunk.rewards(indices + [n + i for i in indices])
        else:
            seqs = [encoded.chosen[i] for i in indices] + [encoded.rejected[i] for i in indices]
            r = rewards(loaded, seqs)
        return r[: len(indices)], r[len(indices) :]

    return f


@torch.no_grad()
def evaluate_pairs(
    loaded: LoadedModel,
    encoded: EncodedPairs,
    indices: Sequence[int],
    batch_size: int = 16,
    reward_fn: PairRewards | None = None,
) -> PairwiseEval:
    """Pairwise accuracy, loss and margin of the model on the pairs ``indices`` of ``encoded``."""
    indices = list(indices)
    if not indices:
        return PairwiseEval(math.nan, math.nan, math.nan, 0)
    reward_fn = reward_fn or pair_reward_fn(loaded, encoded)
    was_training = loaded.model.training
    loaded.model.eval()
    margins = []
    for start in range(0, len(indices), batch_size):
        r_c, r_r = reward_fn(indices[start : start + batch_size])
        margins.append((r_c - r_r).cpu())
    loaded.model.train(was_training)
    m = torch.cat(margins).double()
    acc = float(((m > 0).double() + 0.5 * (m == 0).double()).mean())
    loss = float(-F.logsigmoid(m).mean())
    return PairwiseEval(acc, loss, float(m.mean()), len(indices))

"""Value lens: the reward an RM "would give" if it stopped after block ``l``.

The readout of an RM is its final norm followed by its score head: ``r(h) = head(norm(h))`` for a
residual-stream vector ``h`` (before the final norm). The value lens applies this readout to the
residual stream after each depth ``0 .. L`` (depth 0 = the embeddings, depth ``L`` = after the last
block, where the lens equals the RM's actual reward). Applied to a base model's residual stream,
the *same* readout (the RM's norm and head) says how the RM would score what the base model had
computed at that depth; at depth ``L`` this equals patching the base's whole final residual
stream into the RM, which is why the patching sweep uses it as the base reading.

Everything is read at the last position of each conversation (where the reward is read);
readings are float32 in the RM's reward units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from interp.loading import LoadedModel
from interp.patch_runner import ItemGroup, clean_run


@dataclass(frozen=True)
class RewardReadout:
    """``head(norm(h))[..., 0]``: maps residual vectors ``[..., d]`` to rewards ``[...]``."""

    norm: nn.Module
    head: nn.Linear
    source: str

    @torch.no_grad()
    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(hidden))[..., 0]


def reward_readout(rm: LoadedModel) -> RewardReadout:
    """The RM's own readout (final norm and score head)."""
    if rm.kind != "rm" or rm.reward_layout is None:
        raise ValueError(f"{rm.name} is not loaded as a reward model")
    return RewardReadout(rm.backbone.norm, rm.reward_layout.head(rm.model), rm.name)


def rows_per_pass(device: torch.device, tokens_per_row: int, copies: int = 1) -> int:
    """Rows per forward pass: ~8k tokens (prefix included) on CPU, ~128k on GPU."""
    budget = 131072 if device.type == "cuda" else 8192
    return max(1, budget // max(1, tokens_per_row * copies))


@torch.no_grad()
def value_lens_readings(
    model: LoadedModel,
    groups: Sequence[ItemGroup],
    readout: RewardReadout,
    device: torch.device,
    n_items: int,
) -> np.ndarray:
    """Readings ``[n_items, L + 1]`` (float32): the readout of the residual at every depth."""
    n_layers = model.n_layers
    out = np.full((n_items, n_layers + 1), np.nan, dtype=np.float32)
    for group in groups:
        rows = rows_per_pass(device, group.prefix_len + group.suffix_len)
        run = clean_run(model, group, set(), 1, rows, device, lens=True)
        out[list(group.item_index)] = readout(run.lens_last).float().cpu().numpy()
    return out

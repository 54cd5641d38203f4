"""Value lens: the reward an RM "would give" if it stopped after block ``l``.

The readout of an RM is its final norm followed by its score head: ``r(h) = head(norm(h))`` for a
residual-stream vector ``h`` (before the final norm). The value lens applies this readout to the
residual stream after each depth ``0 .. L`` (depth 0 = the embeddings, depth ``L`` = after the last
block, where the lens equals the RM's actual reward). Applied to a base model's residual stream,
the *same* readout (the RM's norm and head) says how the RM would score what the base model had
computed at that depth; at depth ``L`` this equals patching the base's whole final residual
stream into the RM, which is why the patching sweep uses it as the base reading. The readout
itself is ``interp.models.readout.RewardReadout``.

A linear readout reads the last position of each conversation (where the reward is read); an RM
whose head is not one linear map is read by its own head module applied to the normed residual
stream of the whole conversation at each depth (labelled ``head-module`` in the outputs).
Readings are float32 in the RM's reward units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interp.budget import rows_per_pass
from interp.models.loading import LoadedModel
from interp.models.readout import RewardReadout
from interp.patching.items import ItemGroup
from interp.patching.runner import clean_run


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
        run = clean_run(model, group, set(), 1, rows, device, lens=readout)
        out[list(group.item_index)] = run.lens.numpy()
    return out

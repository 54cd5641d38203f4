"""An RM's readout: how a residual-stream vector becomes a reward, and its score direction.

``RewardReadout`` is the map ``r(h) = head(norm(h))[..., 0]`` from a residual-stream vector ``h``
(before the final norm) to the reward; the value lens and patching read every number through it.

An RM's reward is ``w . norm(h) + b`` where ``h`` is the last block's ``resid_post`` at the read
position, ``norm`` the final RMSNorm (``h / rms(h) * g``) and ``w`` the score head's weight
``[d_model]``. Up to the positive scalar ``1 / rms(h)``, the reward grows along ``w * g``: that
*effective* direction is what a residual-stream probe direction should be compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from interp.models.loading import LoadedModel


@dataclass(frozen=True)
class ScoreDirection:
    """``weight``: the head's row ``[d]``; ``gain``: the final norm's per-dimension gain ``[d]``
    (ones when the model has no recognisable RMSNorm); ``effective = weight * gain``. float32."""

    weight: np.ndarray
    gain: np.ndarray
    effective: np.ndarray


def final_norm_gain(loaded: LoadedModel) -> np.ndarray:
    """Per-dimension gain of the final norm: its output for an all-ones input (rms = 1).

    Works for any RMSNorm variant (Llama's ``g``, Gemma's ``1 + g``); eps shifts it by a common
    factor, which no cosine sees. Ones when there is no ``norm`` or it maps ones to zero (a
    mean-centring LayerNorm).
    """
    norm = getattr(loaded.backbone, "norm", None)
    if norm is None:
        return np.ones(loaded.d_model, dtype=np.float32)
    with torch.no_grad():
        ones = torch.ones(1, loaded.d_model, dtype=loaded.dtype, device=loaded.device)
        gain = norm(ones)[0].float().cpu().numpy()
    if not np.isfinite(gain).all() or np.abs(gain).max() == 0:
        return np.ones(loaded.d_model, dtype=np.float32)
    return gain.astype(np.float32)


def score_direction(loaded: LoadedModel) -> ScoreDirection | None:
    """The score head's direction for an RM (``None`` for an LM or a multi-output head)."""
    if loaded.kind != "rm" or loaded.reward_layout is None:
        return None
    head = loaded.reward_layout.head(loaded.model)
    weight = head.weight.detach().float().cpu().numpy()
    if weight.ndim != 2 or weight.shape[1] != loaded.d_model:
        return None
    row = weight[0].astype(np.float32)
    gain = final_norm_gain(loaded)
    return ScoreDirection(weight=row, gain=gain, effective=(row * gain).astype(np.float32))


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

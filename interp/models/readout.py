"""An RM's readout: how a residual stream becomes a reward, and its score direction.

``RewardReadout`` maps residual streams (before the final norm) to rewards; the value lens and
patching read every number through it. Two kinds (``RewardReadout.kind``):

- ``linear``: ``r(h) = head(norm(h))[..., 0]`` of the last position's vector ``h`` (one linear
  head: the fast readout, and the only one with a score *direction*);
- ``head-module``: the model's own head code (``interp.models.head_module``) run on
  ``norm(h)`` for the *whole* sequence (a gating head reads a prompt position as well as the last
  token), so a patched or lensed residual is scored exactly as the RM would score it.

``read(suffix, prefix, ids)`` takes a prompt's shared prefix residual ``[1 or B, P, d]``, each
row's own suffix residual ``[B, S, d]`` and the ids ``[B, P + S]``; a linear readout only looks
at ``suffix[:, -1]``.

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

from interp.models.head_module import HeadModule
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
    """The score head's direction for an RM (``None`` for an LM, a multi-output or a
    non-linear head)."""
    if loaded.kind != "rm" or loaded.reward_layout is None or not loaded.reward_layout.linear:
        return None
    head = loaded.reward_layout.head(loaded.model)
    weight = head.weight.detach().float().cpu().numpy()
    if weight.ndim != 2 or weight.shape[1] != loaded.d_model:
        return None
    row = weight[0].astype(np.float32)
    gain = final_norm_gain(loaded)
    return ScoreDirection(weight=row, gain=gain, effective=(row * gain).astype(np.float32))


READOUT_DESCRIPTIONS = {
    "linear": "the RM's final norm and linear score head at the last token",
    "head-module": "the RM's own head module (its custom code) on the final norm of the residual "
    "stream at every position",
}


@dataclass(frozen=True)
class RewardReadout:
    """Residual streams -> rewards, with the RM's final ``norm`` and its ``head`` (a linear map,
    or the model's own ``module``). See the module docstring."""

    norm: nn.Module
    head: nn.Linear | None
    source: str
    module: HeadModule | None = None
    rows: int = 256

    @property
    def kind(self) -> str:
        return "linear" if self.module is None else "head-module"

    @property
    def description(self) -> str:
        return READOUT_DESCRIPTIONS[self.kind]

    @torch.no_grad()
    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        """Linear readouts only: last-position vectors ``[..., d]`` -> rewards ``[...]``."""
        if self.module is not None:
            raise ValueError("a head-module readout reads whole sequences: use read()")
        return self.head(self.norm(hidden))[..., 0]

    @torch.no_grad()
    def read(
        self,
        suffix: torch.Tensor,
        prefix: torch.Tensor | None = None,
        ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rewards ``[B]`` of residual streams ``prefix [1|B, P, d] + suffix [B, S, d]``."""
        if self.module is None:
            return self(suffix[:, -1])
        if prefix is None or ids is None:
            raise ValueError("a head-module readout needs the prefix residual and the ids")

        def hidden(start: int, stop: int) -> torch.Tensor:
            pre = prefix if prefix.shape[0] == 1 else prefix[start:stop]
            pre = pre.to(suffix.device).expand(stop - start, *pre.shape[1:])
            return self.norm(torch.cat([pre, suffix[start:stop]], dim=1))

        return self.module.reward_chunked(hidden, ids, self.rows).to(suffix.device)


def reward_readout(rm: LoadedModel) -> RewardReadout:
    """The RM's own readout: final norm and linear score head, or its own head module."""
    if rm.kind != "rm" or rm.reward_layout is None:
        raise ValueError(f"{rm.name} is not loaded as a reward model")
    if rm.reward_layout.linear:
        return RewardReadout(rm.backbone.norm, rm.reward_layout.head(rm.model), rm.name)
    return RewardReadout(rm.backbone.norm, None, rm.name, module=rm.head_module())

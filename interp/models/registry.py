"""How each reward-model family exposes its scalar: one registry entry per layout (rewardbench-style).

Every entry says where the backbone is (a module returning final, normed hidden states
``[batch, seq, d_model]``), which linear head maps a hidden state to the reward, which checkpoint
keys prove that head was trained, and how to read the reward from the model's own forward output
(used by the load-time self-check that the two routes agree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from interp.errors import UserError


@dataclass(frozen=True)
class RewardLayout:
    """One way a reward model exposes its scalar."""

    name: str
    description: str
    matches: Callable[[nn.Module], bool]
    head: Callable[[nn.Module], nn.Linear]
    head_keys: tuple[str, ...]
    reward_from_output: Callable[[Any], torch.Tensor]

    def backbone(self, model: nn.Module) -> nn.Module:
        """The transformer without its head: ``forward(input_ids=...)`` -> last_hidden_state."""
        return model.base_model


def _is_linear(obj: Any) -> bool:
    return isinstance(obj, nn.Linear)


REWARD_LAYOUTS: tuple[RewardLayout, ...] = (
    RewardLayout(
        name="sequence-classification",
        description="AutoModelForSequenceClassification with a `score` head; reward = logits[:, 0]",
        matches=lambda m: _is_linear(getattr(m, "score", None)),
        head=lambda m: m.score,
        head_keys=("score.weight",),
        reward_from_output=lambda out: out.logits[:, 0],
    ),
    RewardLayout(
        name="classifier-head",
        description="a `classifier` linear head on a decoder; reward = logits[:, 0]",
        matches=lambda m: _is_linear(getattr(m, "classifier", None)),
        head=lambda m: m.classifier,
        head_keys=("classifier.weight",),
        reward_from_output=lambda out: out.logits[:, 0],
    ),
    RewardLayout(
        name="value-head",
        description="a TRL-style `v_head` (value head) module; reward = value at the last token",
        matches=lambda m: _is_linear(getattr(getattr(m, "v_head", None), "summary", None)),
        head=lambda m: m.v_head.summary,
        head_keys=("v_head.summary.weight",),
        reward_from_output=lambda out: out[2][:, -1],
    ),
)


def find_reward_layout(model: nn.Module, model_name: str) -> RewardLayout:
    """The first registry entry that matches ``model``; a clear error naming what was tried."""
    for layout in REWARD_LAYOUTS:
        if layout.matches(model):
            return layout
    tried = ", ".join(f"{lay.name} ({lay.description})" for lay in REWARD_LAYOUTS)
    raise UserError(
        f"{model_name}: {type(model).__name__} exposes no known reward head; tried: {tried}"
    )

"""How each reward-model family exposes its scalar: one registry entry per layout (rewardbench-style).

Two sorts of entry:

- *linear* layouts (``linear=True``): the reward is one linear head on the backbone's final,
  normed hidden state at the last token (``sequence-classification``, ``classifier-head``,
  ``value-head``). Each names the head module, the checkpoint keys that prove it was trained, and
  how to read the reward from the model's own forward output. Recognised by module structure.
- *head-module* layouts (``linear=False``) for checkpoints with their own model code: the reward
  is whatever the model's own head computes from the final hidden states (a gating network over
  objectives, a quantile head, an uncertainty head), read from the forward output as
  ``outputs.score`` (``custom-score``: ArmoRM's gated sum of 19 objectives, QRM's expectation
  over quantiles), as ``logits[:, 0]`` (``custom-logits0``: URM's mean of a (mean, uncertainty)
  pair), or as the mean of a multi-objective vector ``outputs.rewards`` when the model exposes
  no scalar (``multi-objective-mean``: equal weights, the documented reduction). Recognised by
  probing one forward output.

Every entry has a load-time self-check (``interp.models.loading.self_check``): the reward read
through the registry (head on the backbone's hidden states) equals the model's own output.
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
    """One way a reward model exposes its scalar.

    ``matches(model)`` (linear layouts) recognises the module structure; ``matches_output(out)``
    (head-module layouts) recognises a forward output. ``reward_from_output(out)`` -> ``[B]``.
    """

    name: str
    description: str
    reward_from_output: Callable[[Any], torch.Tensor]
    linear: bool = True
    matches: Callable[[nn.Module], bool] = lambda m: False
    matches_output: Callable[[Any], bool] = lambda out: False
    head: Callable[[nn.Module], nn.Linear] | None = None
    head_keys: tuple[str, ...] = ()

    def backbone(self, model: nn.Module) -> nn.Module:
        """The transformer without its head: ``forward(input_ids=...)`` -> last_hidden_state."""
        return model.base_model


def _is_linear(obj: Any) -> bool:
    return isinstance(obj, nn.Linear)


def _field(out: Any, name: str) -> Any:
    value = getattr(out, name, None)
    if value is None and isinstance(out, dict):
        value = out.get(name)
    return value if isinstance(value, torch.Tensor) else None


def _scalar(value: torch.Tensor) -> torch.Tensor:
    """``[B]`` or ``[B, 1]`` -> ``[B]``."""
    return value.reshape(value.shape[0], -1)[:, 0] if value.dim() > 1 else value


LINEAR_LAYOUTS: tuple[RewardLayout, ...] = (
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

HEAD_MODULE_LAYOUTS: tuple[RewardLayout, ...] = (
    RewardLayout(
        name="custom-score",
        description="the model's own head returns `outputs.score` (ArmoRM gating over objectives, "
        "QRM expectation over quantiles); reward = outputs.score",
        linear=False,
        matches_output=lambda out: _field(out, "score") is not None,
        reward_from_output=lambda out: _scalar(_field(out, "score")),
    ),
    RewardLayout(
        name="multi-objective-mean",
        description="the model's own head returns a vector `outputs.rewards` [B, K] and no scalar; "
        "reward = its mean over the K objectives (equal weights)",
        linear=False,
        matches_output=lambda out: (
            _field(out, "rewards") is not None and _field(out, "score") is None
        ),
        reward_from_output=lambda out: (
            _field(out, "rewards").reshape(_field(out, "rewards").shape[0], -1).mean(-1)
        ),
    ),
    RewardLayout(
        name="custom-logits0",
        description="the model's own head returns logits [B, k] (URM: mean and uncertainty); "
        "reward = logits[:, 0]",
        linear=False,
        matches_output=lambda out: _field(out, "logits") is not None,
        reward_from_output=lambda out: _scalar(_field(out, "logits")),
    ),
)

REWARD_LAYOUTS: tuple[RewardLayout, ...] = LINEAR_LAYOUTS + HEAD_MODULE_LAYOUTS


def layout_named(name: str) -> RewardLayout:
    for layout in REWARD_LAYOUTS:
        if layout.name == name:
            return layout
    raise UserError(
        f"unknown reward layout {name!r}; known: {', '.join(x.name for x in REWARD_LAYOUTS)}"
    )


def _first(layouts: tuple[RewardLayout, ...], fits: Callable[[RewardLayout], bool], failure: str):
    for layout in layouts:
        if fits(layout):
            return layout
    tried = ", ".join(f"{lay.name} ({lay.description})" for lay in layouts)
    raise UserError(f"{failure}; tried: {tried}")


def find_reward_layout(model: nn.Module, model_name: str) -> RewardLayout:
    """The first linear registry entry that matches ``model``; a clear error naming what was tried."""
    failure = f"{model_name}: {type(model).__name__} exposes no known reward head"
    return _first(LINEAR_LAYOUTS, lambda lay: lay.matches(model), failure)


def find_output_layout(output: Any, model_name: str) -> RewardLayout:
    """The first head-module entry whose reading fits a forward ``output`` of the model."""
    failure = f"{model_name}: its forward output has no reward the registry can read"
    return _first(HEAD_MODULE_LAYOUTS, lambda lay: lay.matches_output(output), failure)

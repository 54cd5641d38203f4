"""A prompt: the user turn a response answers. Every layer that formats or scores uses this type.

Loading prompt sets (the paper's 54-prompt design, prompt files) is an input concern and lives in
``analyses.inputs.prompts``; the type lives here so that ``interp`` and ``activations`` need no
protocol of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

FRAMINGS: tuple[str, ...] = ("positive", "negative", "none")
"""``none``: a prompt outside the paper's positive/negative design."""


@dataclass(frozen=True)
class Prompt:
    """A user turn. ``framing`` is ``positive``, ``negative`` or ``none`` (not from the design)."""

    key: str
    text: str
    framing: str = "none"

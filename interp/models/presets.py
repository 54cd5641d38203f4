"""The paper's ten reward models as named presets: Hub id, revision, dtype, custom-code need, layout.

``--model armorm-llama3-8b`` resolves through ``PRESETS`` to its Hub id, loads as a reward model
(``--as rm`` is implied), in the preset's dtype on an accelerator (float32 on CPU unless
``--dtype`` says otherwise), and checks that the reward layout found at load time is the one the
preset expects. A preset that needs custom model code is refused unless the user passes
``--trust-remote-code`` themselves: a preset never implies it.

Revisions: the paper pins Hub revisions, but its released data do not list the commit hashes, so
``revision`` is ``None`` (the Hub's ``main``) until a user pins one with ``--revision``; the
revision actually resolved is recorded in every output's provenance.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RMPreset:
    """One of the paper's reward models. ``layout`` names its ``interp.models.registry`` entry."""

    name: str
    hf_id: str
    family: str
    dtype: str
    layout: str
    trust_remote_code: bool = False
    revision: str | None = None
    note: str = ""


PRESETS: dict[str, RMPreset] = {
    p.name: p
    for p in (
        RMPreset("skywork-gemma2-27b", "Skywork/Skywork-Reward-Gemma-2-27B", "Gemma", "bfloat16",
                 "sequence-classification", note="54 GB in bf16: --device-map auto"),
        RMPreset("skywork-gemma2-27b-v0.2", "Skywork/Skywork-Reward-Gemma-2-27B-v0.2", "Gemma",
                 "bfloat16", "sequence-classification", note="54 GB in bf16: --device-map auto"),
        RMPreset("skywork-llama3.1-8b-v0.2", "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2", "Llama",
                 "bfloat16", "sequence-classification"),
        RMPreset("grm-llama3-8b", "Ray2333/GRM-Llama3-8B-rewardmodel-ft", "Llama", "float16",
                 "sequence-classification"),
        RMPreset("grm-llama3.2-3b", "Ray2333/GRM-Llama3.2-3B-rewardmodel-ft", "Llama", "float16",
                 "sequence-classification"),
        RMPreset("grm-gemma2-2b", "Ray2333/GRM-gemma2-2B-rewardmodel-ft", "Gemma", "float16",
                 "sequence-classification"),
        RMPreset("urm-llama3.1-8b", "LxzGordon/URM-LLaMa-3.1-8B", "Llama", "float16",
                 "custom-logits0", trust_remote_code=True,
                 note="uncertainty head; reward = logits[:, 0]"),
        RMPreset("armorm-llama3-8b", "RLHFlow/ArmoRM-Llama3-8B-v0.1", "Llama", "bfloat16",
                 "custom-score", trust_remote_code=True,
                 note="gating over 19 objectives; reward = outputs.score"),
        RMPreset("qrm-llama3.1-8b", "nicolinho/QRM-Llama3.1-8B", "Llama", "bfloat16",
                 "custom-score", trust_remote_code=True,
                 note="quantile head; reward = outputs.score"),
        RMPreset("qrm-gemma2-27b", "nicolinho/QRM-Gemma-2-27B", "Gemma", "bfloat16",
                 "custom-score", trust_remote_code=True,
                 note="quantile head; reward = outputs.score; --device-map auto"),
    )
}  # fmt: skip


def preset(name: str) -> RMPreset | None:
    """The preset called ``name`` (or whose Hub id is ``name``), else ``None``."""
    if name in PRESETS:
        return PRESETS[name]
    return next((p for p in PRESETS.values() if p.hf_id == name), None)

"""Tiny look-alikes of the paper's custom-code reward models, and of its standard big-model configs.

``build_remote_rm(folder, layout)`` writes a local checkpoint folder whose ``config.json`` has an
``auto_map`` to a modeling file written into the folder (as ArmoRM, QRM and URM ship theirs):

- ``gating``: ArmoRM-like. Objectives from the last token, a gating network on a *prompt*
  position (the last ``<|im_start|>``, where ArmoRM gates on its assistant header), a transform
  matrix; ``outputs.score`` is the gated sum (Llama backbone).
- ``quantile``: QRM-like. A non-linear quantile head (monotone quantiles); ``outputs.score`` is
  their mean, ``outputs.reward_quantiles`` the vector (Gemma 2 backbone, soft-capped attention,
  sliding windows).
- ``uncertainty``: URM-like. A two-output MLP head (mean, log-variance) as ``logits``; the reward
  is ``logits[:, 0]`` (Llama backbone).
- ``objectives``: a multi-objective vector ``outputs.rewards`` and no scalar (Llama backbone).

``build_standard_rm(folder, arch)`` saves a standard ``Gemma2ForSequenceClassification``
(``gemma2``: soft-capping, alternating sliding windows) or ``LlamaForSequenceClassification``
with Llama-3.1 rope scaling (``llama31``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch

from tests.helpers import build_tokenizer

MODELING = '''"""Look-alike custom reward heads written by the valuebias tests (not real checkpoints)."""
from dataclasses import dataclass

import torch
from torch import nn
from transformers import Gemma2Model, Gemma2PreTrainedModel, LlamaModel, LlamaPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutputWithPast
from transformers.utils import ModelOutput


def last_real(input_ids, pad_id):
    """Rightmost non-pad token of each row (as transformers' sequence classifiers find it)."""
    idx = torch.arange(input_ids.shape[-1], device=input_ids.device)
    non_pad = (input_ids != pad_id).int() if pad_id is not None else torch.ones_like(input_ids)
    return (idx * non_pad).argmax(-1)


@dataclass
class RewardOutput(ModelOutput):
    score: torch.FloatTensor | None = None
    rewards: torch.FloatTensor | None = None
    gating_output: torch.FloatTensor | None = None
    reward_quantiles: torch.FloatTensor | None = None


class GatingRewardModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        d, k = config.hidden_size, config.num_objectives
        self.regression_layer = nn.Linear(d, k, bias=False)
        self.gating = nn.Sequential(nn.Linear(d, 16), nn.GELU(), nn.Linear(16, k))
        self.reward_transform_matrix = nn.Parameter(torch.eye(k))
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        rewards = self.regression_layer(hidden[rows, last_real(input_ids, self.config.pad_token_id)])
        is_gate = (input_ids == self.config.gating_token_id).int()
        idx = torch.arange(input_ids.shape[-1], device=input_ids.device)
        gate_pos = (idx * is_gate).argmax(-1)  # last gating token (0 when there is none)
        gates = torch.softmax(self.gating(hidden[rows, gate_pos]), dim=-1)
        score = (gates * (rewards @ self.reward_transform_matrix)).sum(-1)
        return RewardOutput(score=score, rewards=rewards, gating_output=gates)


class QuantileRewardModel(Gemma2PreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = Gemma2Model(config)
        self.quantile_head = nn.Sequential(
            nn.Linear(config.hidden_size, 24), nn.Tanh(), nn.Linear(24, config.num_quantiles)
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        raw = self.quantile_head(hidden[rows, last_real(input_ids, self.config.pad_token_id)])
        quantiles = raw[:, :1] + torch.cumsum(nn.functional.softplus(raw[:, 1:]), dim=-1)
        quantiles = torch.cat([raw[:, :1], quantiles], dim=-1)
        return RewardOutput(score=quantiles.mean(-1), reward_quantiles=quantiles)


class UncertaintyRewardModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.regression_head = nn.Sequential(
            nn.Linear(config.hidden_size, 16), nn.SiLU(), nn.Linear(16, 2)
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        logits = self.regression_head(hidden[rows, last_real(input_ids, self.config.pad_token_id)])
        return SequenceClassifierOutputWithPast(logits=logits)


class ObjectivesRewardModel(LlamaPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.objectives = nn.Sequential(
            nn.Linear(config.hidden_size, 16), nn.ReLU(), nn.Linear(16, config.num_objectives)
        )
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        rewards = self.objectives(hidden[rows, last_real(input_ids, self.config.pad_token_id)])
        return RewardOutput(rewards=rewards)
'''

LAYOUTS = {
    # layout: (class name, backbone arch, the registry layout it should be read with)
    "gating": ("GatingRewardModel", "llama", "custom-score"),
    "quantile": ("QuantileRewardModel", "gemma2", "custom-score"),
    "uncertainty": ("UncertaintyRewardModel", "llama", "custom-logits0"),
    "objectives": ("ObjectivesRewardModel", "llama", "multi-objective-mean"),
}


def _llama_config(vocab: int, n_layers: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=False, **extra,
    )  # fmt: skip


def _gemma2_config(vocab: int, n_layers: int):
    from transformers import Gemma2Config

    return Gemma2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
        sliding_window=12, query_pre_attn_scalar=16, attn_logit_softcapping=5.0,
        final_logit_softcapping=30.0,
        layer_types=["sliding_attention", "full_attention"] * (n_layers // 2),
    )  # fmt: skip


def _finish(model, tok, folder: Path, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():  # larger weights than the default init, so outputs vary visibly
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    model.save_pretrained(folder)


def _configure(config, tok) -> None:
    config.pad_token_id = tok.pad_token_id
    config.bos_token_id = tok.bos_token_id
    config.eos_token_id = tok.eos_token_id


def build_remote_rm(folder: Path, layout: str, n_layers: int = 4, seed: int = 0) -> Path:
    """A local custom-code RM checkpoint of ``layout`` (see the module docstring)."""
    cls_name, arch, _ = LAYOUTS[layout]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, "llama" if arch == "llama" else "gemma")
    (folder / "modeling_lookalike.py").write_text(MODELING)
    spec = importlib.util.spec_from_file_location(
        f"lookalike_{folder.name}", folder / "modeling_lookalike.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    config = (_llama_config if arch == "llama" else _gemma2_config)(len(tok), n_layers)
    _configure(config, tok)
    config.num_objectives = 5
    config.num_quantiles = 7
    config.gating_token_id = tok.convert_tokens_to_ids("<|im_start|>") if arch == "llama" else 0
    config.auto_map = {"AutoModelForSequenceClassification": f"modeling_lookalike.{cls_name}"}
    torch.manual_seed(seed)
    model = getattr(module, cls_name)(config)
    _finish(model, tok, folder, seed)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = config.auto_map  # what transformers reads to find the code
    cfg["architectures"] = [cls_name]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    return folder


def build_standard_rm(folder: Path, arch: str, n_layers: int = 4, seed: int = 0) -> Path:
    """``gemma2``: Gemma2ForSequenceClassification; ``llama31``: Llama with Llama-3.1 rope scaling."""
    from transformers import AutoModelForSequenceClassification

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, "gemma" if arch == "gemma2" else "llama")
    if arch == "gemma2":
        config = _gemma2_config(len(tok), n_layers)
    else:
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16}  # fmt: skip
        config = _llama_config(len(tok), n_layers, rope_parameters=rope)
    _configure(config, tok)
    config.num_labels = 1
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    _finish(model, tok, folder, seed)
    return folder

"""Load a model by embedded name, HF id or local folder, as a causal LM or a reward model.

``load_model(ModelSpec(...))`` returns a ``LoadedModel``: the module, its tokenizer, what kind it
is (``lm`` or ``rm``), its base-model family, shape facts, the reward layout (for RMs) and a
fingerprint recorded in every output. Loading runs nnterp-style self-checks: the layer count and
width match the config, and for an RM the reward read by hand (backbone -> head at the last token)
equals the model's own forward output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from interp.errors import UserError
from interp.models import zoo
from interp.models.fingerprint import fingerprint
from interp.models.registry import RewardLayout, find_reward_layout

Kind = Literal["lm", "rm"]
TemplateMode = Literal["chat", "gemma-turns", "plain"]


@dataclass(frozen=True)
class ModelSpec:
    """What to load. ``dtype``/``device`` of ``None`` mean automatic (float32 on CPU, bfloat16 on GPU)."""

    name: str
    kind: Kind = "lm"
    revision: str | None = None
    dtype: str | None = None
    device: str | None = None
    random_head_seed: int | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A ready model. ``n_layers`` decoder blocks of width ``d_model``; ``vocab_size`` logits."""

    spec: ModelSpec
    name: str
    source: str
    model: nn.Module
    tokenizer: object
    kind: Kind
    family: str
    n_layers: int
    d_model: int
    vocab_size: int
    template_mode: TemplateMode
    fingerprint: str
    device: torch.device
    dtype: torch.dtype
    reward_layout: RewardLayout | None = None

    @property
    def backbone(self) -> nn.Module:
        """The decoder stack returning final-normed hidden states (``model.base_model``)."""
        return self.model.base_model

    @property
    def layers(self) -> nn.ModuleList:
        return self.backbone.layers

    def provenance(self) -> dict:
        """What every output file records about the model."""
        return {
            "model": self.name,
            "source": self.source,
            "revision": self.spec.revision,
            "kind": self.kind,
            "family": self.family,
            "fingerprint": self.fingerprint,
            "dtype": str(self.dtype).removeprefix("torch."),
            "template_mode": self.template_mode,
            "random_head_seed": self.spec.random_head_seed,
            "reward_layout": self.reward_layout.name if self.reward_layout else None,
        }


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve_source(name: str) -> str:
    """Embedded name -> cached HF folder (fetched on first use); local folder; or HF Hub id."""
    if name in zoo.EMBEDDED:
        try:
            return str(zoo.fetch_embedded(name))
        except zoo.ZooError as err:
            raise UserError(str(err)) from None
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise UserError(f"{name}: not a model folder (no config.json)")
        return str(path)
    looks_like_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if looks_like_hub_id:
        return name
    raise UserError(
        f"unknown model {name!r}: not an embedded model ({', '.join(zoo.EMBEDDED)}), "
        "not a local folder, not a Hugging Face id (owner/name)"
    )


def check_revision(name: str, revision: str | None) -> None:
    """Refuse ``--revision`` for a model that is not a Hugging Face id: a local folder or an
    embedded model has one version, so a revision would be recorded without being used."""
    if revision is None:
        return
    if name in zoo.EMBEDDED:
        raise UserError(f"--revision {revision}: {name} is an embedded model (one fixed version)")
    if Path(name).expanduser().exists():
        raise UserError(
            f"--revision {revision}: {name} is a local folder; a revision applies to Hugging Face "
            "ids only (check out the revision you want into the folder instead)"
        )


def family_of(config) -> str:
    """Base-model family from the config: ``Llama``, ``Gemma``, or the model type."""
    model_type = getattr(config, "model_type", "") or ""
    if model_type.startswith("llama"):
        return "Llama"
    if "gemma" in model_type:
        return "Gemma"
    return model_type or "unknown"


def _template_mode(tokenizer) -> TemplateMode:
    if getattr(tokenizer, "chat_template", None):
        return "chat"
    vocab = tokenizer.get_vocab()
    if "<start_of_turn>" in vocab and "<end_of_turn>" in vocab:
        return "gemma-turns"
    return "plain"


DTYPES = ("float32", "bfloat16", "float16")


def check_device(name: str | None) -> torch.device | None:
    """``--device`` as a ``torch.device`` that exists on this machine (None: automatic), else
    ``UserError`` (an unknown name, CUDA or MPS where there is none, a GPU index too high)."""
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(
            f"--device {name!r}: not a device name (use cpu, cuda, cuda:1, mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(
                f"--device {name}: CUDA is not available on this machine; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(
                f"--device {name}: MPS is not available on this machine; use --device cpu"
            )
    elif device.type != "cpu":
        raise UserError(f"--device {name!r}: use cpu, cuda[:N] or mps")
    return device


def check_dtype(name: str | None) -> torch.dtype | None:
    """``--dtype`` as a floating ``torch.dtype`` (None: automatic), else ``UserError``."""
    if name is None:
        return None
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r} (use {', '.join(DTYPES)})")
    return getattr(torch, name)


def _resolve_device_dtype(spec: ModelSpec) -> tuple[torch.device, torch.dtype]:
    device = check_device(spec.device) or torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    dtype = check_dtype(spec.dtype)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return device, dtype


def _seed_random_head(head: nn.Linear, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    std = head.in_features**-0.5
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * std)
        if head.bias is not None:
            head.bias.zero_()


def _load_modules(spec: ModelSpec, source: str, dtype: torch.dtype):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    kwargs = {"revision": spec.revision} if spec.revision else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if spec.kind == "rm":
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=1, dtype=dtype, output_loading_info=True, **kwargs
            )
        else:
            model, info = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, output_loading_info=True, **kwargs
            )
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load {spec.name!r} as {spec.kind}: {first_line}") from None
    return tokenizer, model, set(info.get("missing_keys", ()))


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load, prepare (eval mode, pad token, RM head checks) and self-check a model."""
    _quiet_transformers()
    check_revision(spec.name, spec.revision)
    source = resolve_source(spec.name)
    device, dtype = _resolve_device_dtype(spec)
    tokenizer, model, missing = _load_modules(spec, source, dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    layout = None
    if spec.kind == "rm":
        layout = find_reward_layout(model, spec.name)
        untrained = [k for k in layout.head_keys if k in missing]
        if untrained and spec.random_head_seed is None:
            raise UserError(
                f"{spec.name} has no trained reward head ({', '.join(untrained)} missing from the "
                "checkpoint; transformers would silently initialise a random one). Pass "
                "--random-head SEED to use a seeded random head on purpose."
            )
        if spec.random_head_seed is not None:
            _seed_random_head(layout.head(model), spec.random_head_seed)
    model.to(device).eval()

    config = model.config.get_text_config()
    n_layers = len(model.base_model.layers)
    if n_layers != config.num_hidden_layers:
        raise UserError(
            f"{spec.name}: found {n_layers} decoder blocks but config says {config.num_hidden_layers}"
        )
    loaded = LoadedModel(
        spec=spec,
        name=spec.name,
        source=source,
        model=model,
        tokenizer=tokenizer,
        kind=spec.kind,
        family=family_of(config),
        n_layers=n_layers,
        d_model=config.hidden_size,
        vocab_size=config.vocab_size,
        template_mode=_template_mode(tokenizer),
        fingerprint=fingerprint(model, tokenizer, spec.kind),
        device=device,
        dtype=dtype,
        reward_layout=layout,
    )
    self_check(loaded)
    return loaded


@torch.no_grad()
def self_check(loaded: LoadedModel) -> None:
    """Check that reading hidden states by hand reproduces the model's own output.

    For an LM: ``lm_head(final hidden)`` equals the logits. For an RM: the registry's head on the
    backbone's last hidden state equals the registry's reading of the forward output.
    """
    ids = loaded.tokenizer("Self check: the quick brown fox.", add_special_tokens=False).input_ids
    ids = [i for i in ids if i != loaded.tokenizer.pad_token_id][:12]
    input_ids = torch.tensor([ids], device=loaded.device)
    hidden = loaded.backbone(input_ids=input_ids).last_hidden_state
    out = loaded.model(input_ids=input_ids)
    if loaded.kind == "rm":
        assert loaded.reward_layout is not None
        by_hand = loaded.reward_layout.head(loaded.model)(hidden[:, -1]).float()[:, 0]
        by_model = loaded.reward_layout.reward_from_output(out).float()
    else:
        by_hand = loaded.model.get_output_embeddings()(hidden[:, -1]).float()
        by_model = out.logits[:, -1].float()
    tol = 1e-3 if loaded.dtype == torch.float32 else 5e-2 * max(1.0, by_model.abs().max().item())
    if not torch.allclose(by_hand, by_model, atol=tol, rtol=1e-3):
        raise UserError(
            f"{loaded.name}: self-check failed, reading the head by hand differs from the model's "
            f"output by {(by_hand - by_model).abs().max().item():.3g}"
        )

"""Load a model by embedded name, preset, HF id or local folder, as a causal LM or a reward model.

``load_model(ModelSpec(...))`` returns a ``LoadedModel``: the module, its tokenizer, what kind it
is (``lm`` or ``rm``), its base-model family, shape facts, the reward layout (for RMs) and a
fingerprint recorded in every output. Loading runs nnterp-style self-checks: the layer count and
width match the config, and for an RM the reward read through the registry (backbone -> linear
head at the last token, or the model's own head module on the backbone's hidden states) equals
the model's own forward output.

Big models: ``device_map`` (``auto``, ``balanced``, ``sequential`` ...) and ``max_memory``
(``{"0": "20GiB", "cpu": "64GiB"}``) go to accelerate through ``from_pretrained``; the model then
stays where accelerate put it and inputs go to the device of its embeddings. Custom model code
runs only with ``trust_remote_code`` (``interp.models.remote_code``); a preset never implies it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from interp.errors import UserError
from interp.models import zoo
from interp.models.fingerprint import fingerprint
from interp.models.head_module import HeadModule
from interp.models.placement import placement, resolve_device_dtype
from interp.models.presets import preset
from interp.models.registry import (
    RewardLayout,
    find_output_layout,
    find_reward_layout,
)
from interp.models.remote_code import RemoteCode, check_remote_code
from interp.progress import NoProgress, Progress

Kind = Literal["lm", "rm"]
TemplateMode = Literal["chat", "gemma-turns", "plain"]


@dataclass(frozen=True)
class ModelSpec:
    """What to load. ``dtype``/``device`` of ``None`` mean automatic (float32 on CPU; on GPU the
    preset's dtype or bfloat16). ``device_map``/``max_memory`` spread a big model (accelerate);
    ``max_memory`` is ``((device, size), ...)``, e.g. ``(("0", "20GiB"), ("cpu", "64GiB"))``."""

    name: str
    kind: Kind = "lm"
    revision: str | None = None
    dtype: str | None = None
    device: str | None = None
    random_head_seed: int | None = None
    trust_remote_code: bool = False
    device_map: str | None = None
    max_memory: tuple[tuple[str, str], ...] | None = None


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
    remote_code: RemoteCode | None = None

    @property
    def readout_kind(self) -> str | None:
        """``linear`` (one linear head: the fast readout), ``head-module`` (the model's own head
        code on the final hidden states), or None for an LM."""
        if self.reward_layout is None:
            return None
        return "linear" if self.reward_layout.linear else "head-module"

    def head_module(self) -> HeadModule:
        """The RM's own head code as a function of final hidden states (any layout)."""
        assert self.reward_layout is not None
        return HeadModule(self.model, self.reward_layout.reward_from_output)

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
            "readout": self.readout_kind,
            "trust_remote_code": self.spec.trust_remote_code,
            "remote_code": self.remote_code.record() if self.remote_code else None,
            "device_map": self.spec.device_map,
        }


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def resolve_source(name: str) -> str:
    """Embedded name -> cached HF folder (fetched on first use); preset -> its Hub id; local
    folder; or HF Hub id."""
    found = preset(name)
    if found is not None:
        return found.hf_id
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


def _seed_random_head(head: nn.Linear, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    std = head.in_features**-0.5
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * std)
        if head.bias is not None:
            head.bias.zero_()


def _load_modules(spec: ModelSpec, source: str, dtype: torch.dtype, trusted: bool):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    kwargs: dict = {"revision": spec.revision} if spec.revision else {}
    if trusted:
        kwargs["trust_remote_code"] = True
    placement_kwargs = placement(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if spec.kind == "rm":
            extra = {} if trusted else {"num_labels": 1}  # custom heads keep their own outputs
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, dtype=dtype, output_loading_info=True, **extra, **placement_kwargs, **kwargs
            )
        else:
            model, info = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype, output_loading_info=True, **placement_kwargs, **kwargs
            )
    except (OSError, ValueError, KeyError, ImportError, SafetensorError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load {spec.name!r} as {spec.kind}: {first_line}") from None
    return tokenizer, model, set(info.get("missing_keys", ()))


def _untrained_head(model: nn.Module, layout: RewardLayout, missing: set[str]) -> list[str]:
    if layout.linear:
        return [k for k in layout.head_keys if k in missing]
    prefix = model.base_model_prefix + "."
    return sorted(k for k in missing if not k.startswith(prefix))


def _head_layout(model: nn.Module, name: str, tokenizer, device: torch.device) -> RewardLayout:
    """The head-module layout that reads a probe forward output of a custom-code RM."""
    ids = torch.tensor([_probe_ids(tokenizer)], device=device)
    with torch.no_grad():
        return find_output_layout(model(input_ids=ids), name)


def _probe_ids(tokenizer) -> list[int]:
    ids = tokenizer("Self check: the quick brown fox.", add_special_tokens=False).input_ids
    return [i for i in ids if i != tokenizer.pad_token_id][:12]


def check_loadable(spec: ModelSpec, progress: Progress) -> tuple[str, RemoteCode | None]:
    """Resolve the source and refuse what must not load: a preset as an LM, custom code without
    ``trust_remote_code`` (one line naming the flag; a preset never implies it). With the flag,
    ``progress`` is told which files will run and their revision. Returns (source, code)."""
    _quiet_transformers()
    check_revision(spec.name, spec.revision)
    source = resolve_source(spec.name)
    found = preset(spec.name)
    if found is not None and spec.kind != "rm":
        raise UserError(f"{spec.name} is a reward-model preset; load it with --as rm")
    if found is not None and found.trust_remote_code and not spec.trust_remote_code:
        raise UserError(
            f"{spec.name} ({found.hf_id}) needs its own model code; pass --trust-remote-code to "
            "run it (only for checkpoints you trust)"
        )
    code = check_remote_code(spec.name, source, spec.kind, spec.revision, spec.trust_remote_code)
    if code is not None:
        progress.note(code.describe())
    return source, code


def load_model(spec: ModelSpec, progress: Progress | None = None) -> LoadedModel:
    """Load, prepare (eval mode, pad token, RM head checks) and self-check a model.

    Custom model code is refused unless ``spec.trust_remote_code``; when trusted, ``progress``
    is told which files will run (and at which revision) before they are imported."""
    progress = progress or NoProgress()
    source, code = check_loadable(spec, progress)
    found = preset(spec.name)
    device, dtype = resolve_device_dtype(spec)
    tokenizer, model, missing = _load_modules(spec, source, dtype, code is not None)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if spec.device_map is None:
        model.to(device)
    else:
        device = model.get_input_embeddings().weight.device
    model.eval()

    layout = None
    if spec.kind == "rm":
        remote = not type(model).__module__.startswith("transformers.")
        try:
            layout = find_reward_layout(model, spec.name)
        except UserError:
            if not remote:
                raise
            layout = _head_layout(model, spec.name, tokenizer, device)
        untrained = _untrained_head(model, layout, missing)
        if untrained and (spec.random_head_seed is None or not layout.linear):
            raise UserError(
                f"{spec.name} has no trained reward head ({', '.join(untrained[:4])} missing from "
                "the checkpoint; transformers would silently initialise a random one). Pass "
                "--random-head SEED to use a seeded random head on purpose."
                if layout.linear
                else f"{spec.name}: its custom head has untrained parameters ({', '.join(untrained[:4])})"
            )
        if spec.random_head_seed is not None and layout.linear:
            _seed_random_head(layout.head(model), spec.random_head_seed)
    else:
        remote = False

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
        remote_code=code,
    )
    try:
        self_check(loaded)
    except UserError:
        if not (remote and layout is not None and layout.linear):
            raise
        # a custom model with a linear-looking module whose output is not that module's reading
        layout = _head_layout(model, spec.name, tokenizer, device)
        loaded = dataclasses.replace(loaded, reward_layout=layout)
        self_check(loaded)
    if found is not None and layout is not None and layout.name != found.layout:
        raise UserError(
            f"{spec.name}: preset expects reward layout {found.layout}, the checkpoint exposes "
            f"{layout.name} ({layout.description})"
        )
    return loaded


@torch.no_grad()
def self_check(loaded: LoadedModel) -> None:
    """Check that reading hidden states by hand reproduces the model's own output.

    For an LM: ``lm_head(final hidden)`` equals the logits. For an RM: the registry's reading of
    the backbone's hidden states (its linear head at the last token, or the model's own head
    module run on them) equals the registry's reading of the forward output.
    """
    input_ids = torch.tensor([_probe_ids(loaded.tokenizer)], device=loaded.device)
    hidden = loaded.backbone(input_ids=input_ids).last_hidden_state
    out = loaded.model(input_ids=input_ids)
    if loaded.kind == "rm":
        layout = loaded.reward_layout
        assert layout is not None
        if layout.linear:
            by_hand = layout.head(loaded.model)(hidden[:, -1]).float()[:, 0]
        else:
            by_hand = loaded.head_module().reward(hidden, input_ids)
        try:
            by_model = layout.reward_from_output(out).float()
        except (AttributeError, TypeError, IndexError, KeyError):
            raise UserError(
                f"{loaded.name}: self-check failed, its output cannot be read as {layout.name}"
            ) from None
    else:
        by_hand = loaded.model.get_output_embeddings()(hidden[:, -1]).float()
        cap = getattr(loaded.model.config.get_text_config(), "final_logit_softcapping", None)
        if cap:  # Gemma 2 soft-caps its logits
            by_hand = torch.tanh(by_hand / cap) * cap
        by_model = out.logits[:, -1].float()
    by_hand, by_model = by_hand.cpu(), by_model.cpu()
    tol = 1e-3 if loaded.dtype == torch.float32 else 5e-2 * max(1.0, by_model.abs().max().item())
    if by_hand.shape != by_model.shape or not torch.allclose(
        by_hand, by_model, atol=tol, rtol=1e-3
    ):
        diff = (
            (by_hand - by_model).abs().max().item() if by_hand.shape == by_model.shape else "shape"
        )
        raise UserError(
            f"{loaded.name}: self-check failed, reading the head by hand differs from the model's "
            f"output by {diff if isinstance(diff, str) else f'{diff:.3g}'}"
        )

"""A model's identity without its weights: what a sweep plan is addressed by.

Planning a sweep (how many candidates, which units, their content addresses) needs the tokenizer
and the config, not the weights: a driver that only hands units to a Ray cluster, or a rerun
whose units are all done, never loads a 27B model. ``model_identity`` loads the tokenizer and
the config (after the same custom-code checks as ``load_model``) and records what would change
a unit's rows: source, revision, kind, compute dtype, device type, tokenizer, config, custom
code. The weights' own fingerprint is recorded by the workers that load them, in every unit's
done marker, and the assembler refuses units made with different weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from interp.errors import UserError
from interp.models.fingerprint import tokenizer_digest
from interp.models.loading import ModelSpec, check_loadable
from interp.models.placement import resolve_device_dtype
from interp.models.remote_code import RemoteCode
from interp.progress import NoProgress, Progress


@dataclass(frozen=True)
class ModelIdentity:
    """The tokenizer, the vocabulary size and the record that addresses a sweep's units."""

    spec: ModelSpec
    source: str
    tokenizer: object
    vocab_size: int
    record: dict
    remote_code: RemoteCode | None = None


def model_identity(spec: ModelSpec, progress: Progress | None = None) -> ModelIdentity:
    """Load the tokenizer and config of ``spec`` (no weights) and describe the model."""
    from transformers import AutoConfig, AutoTokenizer

    progress = progress or NoProgress()
    source, code = check_loadable(spec, progress)
    device, dtype = resolve_device_dtype(spec)
    kwargs: dict = {"revision": spec.revision} if spec.revision else {}
    if code is not None:
        kwargs["trust_remote_code"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        config = AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load {spec.name!r}: {first}") from None
    text = config.get_text_config()
    settings = config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        settings.pop(volatile, None)
    config_digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    record = {
        "model": spec.name,
        "source": source,
        "revision": spec.revision,
        "kind": spec.kind,
        "dtype": str(dtype).removeprefix("torch."),
        "device_type": device.type,
        "random_head_seed": spec.random_head_seed,
        "trust_remote_code": spec.trust_remote_code,
        "remote_code": code.record() if code else None,
        "config_digest": config_digest.hexdigest()[:16],
        "tokenizer_digest": tokenizer_digest(tokenizer)[:16],
    }
    vocab = min(len(tokenizer), int(text.vocab_size))
    return ModelIdentity(spec, source, tokenizer, vocab, record, code)

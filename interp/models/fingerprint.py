"""Model fingerprints: the identity of a loaded model (config, weights, tokenizer, chat template, kind).

Recorded in every output, so a result can be traced to the exact model that made it and a resumed
run can refuse a different one. Weights are identified by a strided sample of every parameter
(not a full hash: a 27B model would take minutes to hash).
"""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn


def weights_digest(model: nn.Module, samples_per_tensor: int = 4096) -> str:
    """Identity of the weights: names, shapes and a strided sample of every parameter (sha256)."""
    h = hashlib.sha256()
    for name, param in model.named_parameters():
        flat = param.detach().reshape(-1)
        step = max(1, flat.numel() // samples_per_tensor)
        sample = flat[::step].to(torch.float32).cpu().numpy().tobytes()
        h.update(name.encode())
        h.update(str(tuple(param.shape)).encode())
        h.update(sample)
    return h.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """Hash of the tokenizer's full definition and its chat template."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(
        tokenizer, "_tokenizer", None
    )
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update((getattr(tokenizer, "chat_template", None) or "").encode())
    return h.hexdigest()


def fingerprint(model: nn.Module, tokenizer, kind: str) -> str:
    """sha256 of config, weights' identity, tokenizer and chat template, and kind (first 16 hex)."""
    config = model.config.to_dict()
    for volatile in ("_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        config.pop(volatile, None)
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(weights_digest(model).encode())
    h.update(tokenizer_digest(tokenizer).encode())
    h.update(kind.encode())
    return h.hexdigest()[:16]

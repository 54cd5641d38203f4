"""Where a model goes and in what precision: device, dtype, accelerate's device_map and max_memory.

``resolve_device_dtype`` picks the input device and compute dtype (float32 on CPU; on an
accelerator the preset's dtype, else bfloat16; ``--dtype`` overrides). ``placement`` turns
``--device-map``/``--max-memory`` into ``from_pretrained`` keywords (accelerate spreads the
weights over the devices, e.g. a 27B model in bf16 over several GPUs).
"""

from __future__ import annotations

import torch

from interp.errors import UserError
from interp.models.presets import RMPreset, preset


def parse_max_memory(text: str | None) -> tuple[tuple[str, str], ...] | None:
    """``"0=20GiB,1=20GiB,cpu=64GiB"`` -> ``(("0", "20GiB"), ...)``; None/empty -> None."""
    if not text:
        return None
    pairs = []
    for part in text.split(","):
        device, sep, size = part.strip().partition("=")
        if not sep or not device.strip() or not size.strip():
            raise UserError(
                f"--max-memory {text!r}: expected DEVICE=SIZE pairs, e.g. 0=20GiB,cpu=64GiB"
            )
        pairs.append((device.strip(), size.strip()))
    return tuple(pairs)


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


def resolve_device_dtype(spec) -> tuple[torch.device, torch.dtype]:
    """The device inputs go to and the compute dtype (see ``ModelSpec``)."""
    device = check_device(spec.device) or torch.device(
        "cuda" if torch.cuda.is_available() else "cpu"
    )
    dtype = check_dtype(spec.dtype)
    if dtype is None:
        found: RMPreset | None = preset(spec.name)
        if device.type == "cpu":
            dtype = torch.float32
        else:
            dtype = getattr(torch, found.dtype) if found else torch.bfloat16
    return device, dtype


def placement(spec) -> dict:
    """``from_pretrained`` keywords for ``spec.device_map``/``spec.max_memory`` ({} without)."""
    if spec.device_map is None:
        if spec.max_memory:
            raise UserError("--max-memory needs --device-map (e.g. --device-map auto)")
        return {}
    out: dict = {"device_map": spec.device_map}
    if spec.max_memory:
        out["max_memory"] = {int(d) if d.isdigit() else d: size for d, size in spec.max_memory}
    return out

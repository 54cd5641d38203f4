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


def resolve_device_dtype(spec) -> tuple[torch.device, torch.dtype]:
    """The device inputs go to and the compute dtype (see ``ModelSpec``)."""
    try:
        device = torch.device(spec.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        raise UserError(f"--device {spec.device!r}: not a device (cpu, cuda, cuda:1 ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {spec.device}: this machine has no CUDA device")
    found: RMPreset | None = preset(spec.name)
    if spec.dtype is None:
        if device.type == "cpu":
            dtype = torch.float32
        else:
            dtype = getattr(torch, found.dtype) if found else torch.bfloat16
    else:
        dtype = getattr(torch, spec.dtype, None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise UserError(f"unknown dtype {spec.dtype!r} (use float32, bfloat16 or float16)")
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

"""Provenance records for result files: input hashes, lexicon identity, seed, tool version."""

from __future__ import annotations

import importlib.metadata
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from interp.downloads import file_sha256

__all__ = ["file_sha256", "json_safe", "provenance", "tool_version"]

import numpy as np


def tool_version() -> str:
    """Installed version of the ``valuebias`` distribution ("unknown" when not installed)."""
    try:
        return importlib.metadata.version("valuebias")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provenance(
    inputs: Iterable[str | Path] = (),
    lexicon: Any = None,
    seed: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A JSON-ready provenance record.

    ``inputs``: files read (each recorded with its sha256); ``lexicon``: a ``Lexicon`` (its
    ``describe()`` is stored) or a dict; ``extra``: any further settings (JSON-serialisable).
    """
    record: dict[str, Any] = {
        "tool": "valuebias",
        "tool_version": tool_version(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "inputs": [{"path": str(p), "sha256": file_sha256(p)} for p in inputs],
        "seed": seed,
    }
    if lexicon is not None:
        record["lexicon"] = lexicon.describe() if hasattr(lexicon, "describe") else dict(lexicon)
    record.update(extra)
    return record


def json_safe(obj: Any) -> Any:
    """Make a value JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

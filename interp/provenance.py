"""How a result was made: the tool version, file digests and JSON-ready provenance records.

Every output of the suite records its provenance (model fingerprints, inputs with their sha256,
lexicon identity, seed, settings, tool version). This module holds the one implementation of each
piece: ``tool_version``, ``file_sha256``, ``settings_hash``, ``json_safe``, ``provenance`` and
``FrameDigest`` (the content digest of a table, computable chunk by chunk).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np


def tool_version() -> str:
    """Installed version of the ``valuebias`` distribution ("unknown" when not installed)."""
    try:
        return importlib.metadata.version("valuebias")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def utc_now() -> str:
    """The current time as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def settings_hash(settings: Any) -> str:
    """sha256 (first 16 hex) of a JSON-serialisable settings record, independent of key order."""
    payload = json.dumps(json_safe(settings), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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
        "created_utc": utc_now(),
        "inputs": [{"path": str(p), "sha256": file_sha256(p)} for p in inputs],
        "seed": seed,
    }
    if lexicon is not None:
        record["lexicon"] = lexicon.describe() if hasattr(lexicon, "describe") else dict(lexicon)
    record.update(extra)
    return record


DIGEST_METHOD = "sha256 of pandas.util.hash_pandas_object(rows, index=False) in row order"


class FrameDigest:
    """Content digest of a table fed in row chunks: equal digests mean equal rows in equal order
    (the same for one frame or any split of it). ``columns`` fixes which columns count."""

    def __init__(self, columns: Iterable[str] | None = None) -> None:
        self.columns = list(columns) if columns is not None else None
        self.rows = 0
        self._h = hashlib.sha256()

    def update(self, frame) -> FrameDigest:
        import pandas as pd

        part = frame if self.columns is None else frame[self.columns]
        if len(part):
            self._h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        self.rows += len(part)
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()

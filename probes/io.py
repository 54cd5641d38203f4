"""A probe directory on disk: ``probes.parquet``, ``summary.json`` and ``directions.npz``.

- ``probes.parquet``: one row per (site, layer, method) (see ``LayerProbeResult.row``).
- ``summary.json``: settings, the store's path and model provenance, sample sizes, the best layer
  per (site kind, method), and the sign convention of directions.
- ``directions.npz``: per (site, method) the unit ``direction``, raw ``weight`` and ``bias`` and
  the method's own parameters, keyed ``"<site>::<method>::<name>"``; for an RM store also
  ``score_head::weight``, ``score_head::gain`` and ``score_head::effective``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from interp.atomic import atomic_path, atomic_write_text, write_table
from interp.errors import UserError
from interp.files import read_json, read_parquet
from probes.fit import LinearProbe
from probes.layerwise import ProbeResults

TABLE = "probes.parquet"
SUMMARY = "summary.json"
DIRECTIONS = "directions.npz"


def summary_of(results: ProbeResults) -> dict:
    first, second = results.settings.classes
    model = results.store_manifest.get("model", {})
    return {
        "what": "layerwise linear probes",
        "acts": results.store_path,
        "model": model,
        "store_settings": results.store_manifest.get("settings", {}),
        "settings": asdict(results.settings),
        "direction_sign": f"directions point from {second!r} (0) to {first!r} (1)",
        "data": results.data_summary,
        "best": results.best(),
        "has_score_head": results.score_head is not None,
        "files": [TABLE, SUMMARY, DIRECTIONS],
    }


def save_probe_dir(results: ProbeResults, out_dir: str | Path) -> Path:
    """Write the three files (each atomically); returns the folder."""
    out = Path(out_dir)
    write_table(results.table(), out / TABLE)
    arrays: dict[str, np.ndarray] = {}
    for r in results.results:
        key = f"{r.site}::{r.method}"
        arrays[f"{key}::direction"] = r.probe.direction.astype(np.float32)
        arrays[f"{key}::weight"] = r.probe.weight
        arrays[f"{key}::bias"] = np.array(r.probe.bias)
        for name, value in r.probe.params.items():
            arrays[f"{key}::param:{name}"] = np.asarray(value)
    if results.score_head:
        for name, value in results.score_head.items():
            arrays[f"score_head::{name}"] = np.asarray(value, dtype=np.float32)
    with atomic_path(out / DIRECTIONS) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)
    atomic_write_text(out / SUMMARY, json.dumps(summary_of(results), indent=1, default=str))
    return out


class ProbeDir:
    """A saved probe directory: ``table``, ``summary``, directions and probes per (site, method)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        missing = [n for n in (TABLE, SUMMARY, DIRECTIONS) if not (self.path / n).is_file()]
        if missing:
            raise UserError(
                f"{self.path}: not a probe directory (missing {', '.join(missing)}); "
                "make one with train-probes"
            )
        self.table = read_parquet(self.path / TABLE, "probe table")
        self.summary = read_json(self.path / SUMMARY, "probe summary")
        if not isinstance(self.summary, dict) or "settings" not in self.summary:
            raise UserError(f"{self.path / SUMMARY}: not a train-probes summary")
        try:
            with np.load(self.path / DIRECTIONS, allow_pickle=False) as npz:
                self._arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise UserError(
                f"{self.path / DIRECTIONS}: not a readable directions file ({err})"
            ) from None

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.table["method"]))

    @property
    def sites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.table["site"]))

    @property
    def classes(self) -> tuple[str, str]:
        return tuple(self.summary["settings"]["classes"])

    @property
    def acts(self) -> str:
        return self.summary["acts"]

    def direction(self, site: str, method: str) -> np.ndarray:
        return self._arrays[f"{site}::{method}::direction"]

    def probe(self, site: str, method: str) -> LinearProbe:
        prefix = f"{site}::{method}::param:"
        params = {k[len(prefix) :]: v for k, v in self._arrays.items() if k.startswith(prefix)}
        return LinearProbe(
            method,
            self._arrays[f"{site}::{method}::weight"],
            float(self._arrays[f"{site}::{method}::bias"]),
            params,
        )

    def score_head(self) -> dict[str, np.ndarray] | None:
        heads = {
            k.split("::", 1)[1]: v for k, v in self._arrays.items() if k.startswith("score_head::")
        }
        return heads or None

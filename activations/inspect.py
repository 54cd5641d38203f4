"""``inspect``: what an activation store holds, how complete it is, and whether its values are finite."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from activations.store import ActivationStore
from interp.locks import OutputLock
from interp.sites import describe_sites

SCAN_ROWS = 8192


@dataclass(frozen=True)
class SiteReport:
    """One dataset: ``shape`` ``[n_rows, d_model]``, dtype, non-finite counts over done rows,
    and the mean L2 norm of done rows (float32)."""

    name: str
    shape: tuple[int, int]
    dtype: str
    n_nan: int
    n_inf: int
    mean_norm: float


@dataclass(frozen=True)
class StoreReport:
    path: Path
    manifest: dict
    n_items: int
    n_done: int
    complete: bool
    categories: dict[str, int]
    sites: tuple[SiteReport, ...]
    size_bytes: int
    writer: str = ""

    @property
    def finite(self) -> bool:
        return all(s.n_nan == 0 and s.n_inf == 0 for s in self.sites)

    def text(self) -> str:
        m = self.manifest
        model, settings = m["model"], m["settings"]
        prompts, responses = m.get("prompts") or {}, m.get("responses") or {}
        lines = [
            f"{self.path} ({self.size_bytes / 2**20:.1f} MiB), format v{m.get('format_version')}, "
            f"valuebias {m.get('tool_version')}, created {m.get('created_utc')}",
            f"model: {model['model']} ({model['kind']}, {model.get('family')}, "
            f"{model.get('n_layers')} layers, d={model.get('d_model')}), fingerprint "
            f"{model.get('fingerprint')}, revision {model.get('revision')}, compute dtype "
            f"{model.get('dtype')}, template {settings.get('template')}",
            f"tokenizer+template hash: {str(settings.get('tokenizer_hash'))[:16]}",
            f"prompts: {prompts.get('n')} (digest {str(prompts.get('digest'))[:12]}); responses: "
            f"{responses.get('n')} from {responses.get('source')} "
            f"({_responses_identity(responses)}, digest {str(responses.get('digest'))[:12]})",
            f"positions: {settings['positions']} ({m.get('layout')}); store dtype "
            f"{settings['store_dtype']}; backend {settings.get('backend')}; batch size "
            f"{settings['batch_size']}",
            f"items: {self.n_items}, done {self.n_done} "
            f"({'complete' if self.complete else 'INCOMPLETE: rerun cache-activations'})",
            "categories: " + ", ".join(f"{k or '(none)'} {v}" for k, v in self.categories.items()),
            f"sites: {len(self.sites)} ({describe_sites([s.name for s in self.sites])})",
        ]
        if self.writer:
            lines.insert(1, f"being written by {self.writer} (the counts below are a snapshot)")
        for s in self.sites:
            flag = "" if s.n_nan == 0 and s.n_inf == 0 else f"  NaN {s.n_nan} inf {s.n_inf}"
            lines.append(
                f"  {s.name:32s} {s.shape[0]} x {s.shape[1]} {s.dtype}  "
                f"mean |x| {s.mean_norm:.3g}{flag}"
            )
        lines.append("values: all finite" if self.finite else "values: NON-FINITE values found")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "path": str(self.path),
                "manifest": self.manifest,
                "n_items": self.n_items,
                "n_done": self.n_done,
                "complete": self.complete,
                "writer": self.writer,
                "categories": self.categories,
                "sites": [s.__dict__ for s in self.sites],
            },
            indent=1,
            default=list,
        )


def _responses_identity(record: dict) -> str:
    lexicon = record.get("lexicon")
    if isinstance(lexicon, dict):
        return f"lexicon {lexicon.get('name')} v{lexicon.get('version')}"
    if record.get("sha256"):
        return f"file sha256 {record['sha256'][:12]}"
    return record.get("kind", "words")


def _scan(store: ActivationStore, site, done_rows: np.ndarray) -> SiteReport:
    data = store[site]
    n_nan = n_inf = 0
    norm_sum, counted = 0.0, 0
    for start in range(0, data.shape[0], SCAN_ROWS):
        stop = min(data.shape[0], start + SCAN_ROWS)
        keep = done_rows[start:stop]
        if not keep.any():
            continue
        block = data[start:stop][keep].astype(np.float32)
        n_nan += int(np.isnan(block).sum())
        n_inf += int(np.isinf(block).sum())
        finite = block[np.isfinite(block).all(axis=1)]
        norm_sum += float(np.linalg.norm(finite, axis=1).sum())
        counted += len(finite)
    return SiteReport(
        name=data.name.rsplit("/", 1)[-1],
        shape=tuple(data.shape),
        dtype=str(data.dtype),
        n_nan=n_nan,
        n_inf=n_inf,
        mean_norm=norm_sum / counted if counted else float("nan"),
    )


def inspect_store(path: str | Path) -> StoreReport:
    """Manifest, shapes, completeness and a NaN/inf scan (over done rows) of a store."""
    with ActivationStore(path) as store:
        done = store.done
        offsets = store.offsets
        rows_per_item = np.diff(offsets)
        done_rows = np.repeat(done, rows_per_item)
        cats, counts = np.unique(store.labels("category"), return_counts=True)
        return StoreReport(
            path=Path(path),
            manifest=store.manifest,
            n_items=store.n_items,
            n_done=int(done.sum()),
            complete=store.complete,
            categories={str(c): int(n) for c, n in zip(cats, counts, strict=True)},
            sites=tuple(_scan(store, site, done_rows) for site in store.sites),
            size_bytes=Path(path).stat().st_size,
            writer=writer_of(path),
        )


def writer_of(path: str | Path) -> str:
    """ "process N on HOST since T" when another process holds the store's output lock, else ""."""
    who = OutputLock(path).current_holder()
    if who is None:
        return ""
    return f"process {who.get('pid', '?')} on {who.get('host', '?')} since {who.get('since', '?')}"

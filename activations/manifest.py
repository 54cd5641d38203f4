"""How an activation store is made: its settings, its manifest, and what a resume must match.

``build_manifest`` records the model (fingerprint, source, revision, kind, compute dtype, tokenizer
and template hash), the settings (sites, positions, store dtype, backend, batch size, caching
route: ``prefix-cached`` or ``full-sequence``), the
prompts' and responses' identity, the items digest and the tool version. ``settings`` is what a
resumed run must match; ``settings_differences`` names what differs, for the refusal message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from activations.batch_reading import PREFIX_POSITIONS, ROUTES, default_route
from activations.items import ItemPlan
from activations.positions import POSITIONS
from activations.store import FORMAT, FORMAT_VERSION, STORE_DTYPES
from interp.errors import UserError
from interp.models.fingerprint import tokenizer_digest
from interp.models.loading import LoadedModel
from interp.provenance import tool_version, utc_now
from interp.sites import BACKENDS, Site, describe_sites


@dataclass(frozen=True)
class CacheSettings:
    """What to store. ``batch_size`` None: the file's on resume, else a token-budget default."""

    sites: tuple[Site, ...]
    positions: str = "last"
    store_dtype: str = "float16"
    backend: str = "nnsight"
    batch_size: int | None = None
    route: str | None = None

    def __post_init__(self) -> None:
        if self.route is None:  # prefix-cached wherever it applies
            object.__setattr__(self, "route", default_route(self.positions, self.backend))
        if self.route not in ROUTES:
            raise UserError(f"unknown caching route {self.route!r}; use {', '.join(ROUTES)}")
        if self.route == "prefix-cached" and self.positions not in PREFIX_POSITIONS:
            raise UserError(f"--positions {self.positions} is cached from whole sequences")
        if self.route == "prefix-cached" and self.backend == "tl":
            raise UserError("--backend tl caches whole sequences (use --full-sequences)")
        if self.positions not in POSITIONS:
            raise UserError(f"--positions {self.positions!r}: use {', '.join(POSITIONS)}")
        if self.store_dtype not in STORE_DTYPES:
            raise UserError(
                f"--store-dtype {self.store_dtype!r}: use {' or '.join(STORE_DTYPES)} "
                "(HDF5 has no bfloat16)"
            )
        if self.backend not in BACKENDS:
            raise UserError(f"--backend {self.backend!r}: use {', '.join(BACKENDS)}")
        if not self.sites:
            raise UserError("no sites to cache")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")


# settings key -> how a message names it
SETTING_NAMES = {
    "model_fingerprint": "model (weights, config, tokenizer or kind)",
    "kind": "--as (rm or lm)",
    "compute_dtype": "--dtype (compute dtype)",
    "revision": "--revision",
    "tokenizer_hash": "tokenizer or chat template",
    "template": "conversation template",
    "sites": "--sites/--layers",
    "positions": "--positions",
    "store_dtype": "--store-dtype",
    "backend": "--backend",
    "batch_size": "--batch-size",
    "route": "--full-sequences (caching route)",
    "prompts_digest": "--prompts",
    "responses_digest": "--responses",
    "items_digest": "formatted items (token ids)",
}


def build_manifest(
    loaded: LoadedModel, plan: ItemPlan, settings: CacheSettings, batch_size: int
) -> dict:
    """The manifest (see ``activations.store``); ``settings`` holds what a resume must match."""
    lengths = plan.lengths()
    n_rows = int(lengths.sum()) if settings.positions == "all" else plan.n_items
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": tool_version(),
        "created_utc": utc_now(),
        "model": {
            **loaded.provenance(),
            "tokenizer_hash": tokenizer_digest(loaded.tokenizer),
            "n_layers": loaded.n_layers,
            "d_model": loaded.d_model,
            "device": str(loaded.device),
        },
        "settings": {
            "model_fingerprint": loaded.fingerprint,
            "kind": loaded.kind,
            "compute_dtype": str(loaded.dtype).removeprefix("torch."),
            "revision": loaded.spec.revision,
            "tokenizer_hash": tokenizer_digest(loaded.tokenizer),
            "template": plan.template,
            "sites": [s.name for s in sorted(settings.sites, key=lambda s: s.order)],
            "positions": settings.positions,
            "store_dtype": settings.store_dtype,
            "backend": settings.backend,
            "batch_size": batch_size,
            "route": settings.route,
            "prompts_digest": plan.prompts_identity()["digest"],
            "responses_digest": plan.responses_identity()["digest"],
            "items_digest": plan.digest(),
        },
        "prompts": plan.prompts_identity(),
        "responses": plan.responses_identity(),
        "n_items": plan.n_items,
        "n_rows": n_rows,
        "d_model": loaded.d_model,
        "n_layers": loaded.n_layers,
        "layout": "ragged token rows (offsets)" if settings.positions == "all" else "one row/item",
    }


def _describe(key: str, value) -> str:
    if key == "sites" and isinstance(value, list):
        return describe_sites(value)
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def settings_differences(old: dict, new: dict) -> list[str]:
    """Human-readable ``name (file: x, now: y)`` for every setting that differs."""
    out = []
    for key, label in SETTING_NAMES.items():
        if old.get(key) != new.get(key):
            old_text, new_text = _describe(key, old.get(key)), _describe(key, new.get(key))
            out.append(f"{label} (file: {old_text}, now: {new_text})")
    return out

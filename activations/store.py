"""The HDF5 activation store: layout, validation and the lazy reading API.

Layout (format ``valuebias.activations`` version 2; version 1 is read too)::

    /                      attrs: vb_format, vb_format_version, manifest (JSON)
    /items/<column>        [n_items]  response, category, prompt_key, group (UTF-8 strings),
                                      n_tokens, response_start, response_len, prompt_index,
                                      word_index (int32)
    /prompts/<column>      [n_prompts] key, text, framing
    /done                  [n_items] bool; an item is done once all its sites are on disk
    /offsets               [n_items + 1] int64; item i owns rows offsets[i]:offsets[i+1] of every
                           site dataset (one row per item, or n_tokens rows for positions=all)
    /tokens                [sum n_tokens] int32; every item's input ids, ragged like ``all``
    /acts/<site name>      [n_rows, d_model] float16|float32, contiguous and allocated when the
                           store is created (version 1: chunked, gzip); named canonically
                           (``blocks.12.hook_resid_post``), one per (site, layer)
    /score_head/weight, /score_head/gain, /score_head/effective   [d_model] (RMs only)

The manifest records the model (fingerprint, source, revision, kind, compute dtype, tokenizer
and template hash), the settings (sites, positions, store dtype, backend, batch size), the
prompts' and responses' identity (keys, digests, lexicon name/version), the items digest, the
tool version and creation/update times. ``settings`` are what a resume must match.

How a store is written so that faults cannot damage it is ``activations.writer``.

``ActivationStore(path)`` opens a store read-only, checks it is one (and not truncated or
foreign) and gives per-site arrays lazily (``store[site]`` is an ``h5py.Dataset``; slicing reads
only those rows), plus labels, groups and the items table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from interp.errors import UserError
from interp.sites import Site

FORMAT = "valuebias.activations"
FORMAT_VERSION = 2
STRING_COLUMNS = ("response", "category", "prompt_key", "group")
INT_COLUMNS = ("n_tokens", "response_start", "response_len", "prompt_index", "word_index")
STORE_DTYPES = ("float16", "float32")


def open_h5(path: str | Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning "in use / not HDF5 / truncated / damaged" into one clear
    ``UserError``. Readers do not take HDF5's file lock: a store being written can be read
    (after creation its writer changes only rows and done marks in place)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an activation store")
    try:
        return h5py.File(path, mode, locking=False if mode == "r" else None)
    except OSError as err:
        text = str(err)
        if "lock" in text.lower() or "errno = 11" in text:
            raise UserError(
                f"{path} is in use by another process (it holds the file open for writing); "
                "wait for it to finish"
            ) from None
        detail = text.split("(")[0].strip() or type(err).__name__
        if "truncated" in text.lower():
            found = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
            size = f": {found.group(1)} of {found.group(2)} bytes are there" if found else ""
            hint = f" The file is truncated{size} (a copy cut short?); its items cannot be read."
        elif "signature" in text.lower():
            hint = " It is not an HDF5 file."
        else:
            hint = " It is damaged or not an HDF5 file."
        raise UserError(f"{path}: cannot open as an activation store: {detail}.{hint}") from None


def read_manifest(f: h5py.File, path: str | Path) -> dict:
    """The manifest of an open file; ``UserError`` if the file is not a valuebias store."""
    fmt = f.attrs.get("vb_format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        raise UserError(
            f"{path}: an HDF5 file but not a valuebias activation store (no vb_format="
            f"{FORMAT!r} attribute); refusing to read or overwrite it without --overwrite"
        )
    version = int(f.attrs.get("vb_format_version", -1))
    if version > FORMAT_VERSION:
        raise UserError(
            f"{path}: activation store format version {version} is newer than this tool's "
            f"({FORMAT_VERSION}); upgrade valuebias"
        )
    try:
        manifest = json.loads(f.attrs["manifest"])
    except (KeyError, ValueError, TypeError):
        raise UserError(f"{path}: activation store has no readable manifest") from None
    check_manifest(manifest, path)
    return manifest


# what readers rely on: key -> type (a dict: nested keys)
MANIFEST_SCHEMA: dict = {
    "n_items": int,
    "d_model": int,
    "n_rows": int,
    "model": {"model": str, "kind": str},
    "settings": {"sites": list, "positions": str, "store_dtype": str, "batch_size": int},
}


def check_manifest(
    manifest, path: str | Path, schema: dict = MANIFEST_SCHEMA, at: str = ""
) -> None:
    """Refuse a manifest whose fields readers rely on are missing or of the wrong type (a
    hand-edited or foreign file), naming the field, instead of failing later in a reader."""
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: the store's manifest{at and ' ' + at} is not a mapping")
    for key, kind in schema.items():
        name = f"{at}.{key}" if at else key
        if key not in manifest:
            raise UserError(f"{path}: the store's manifest lacks {name}")
        value = manifest[key]
        if isinstance(kind, dict):
            check_manifest(value, path, kind, name)
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UserError(
                f"{path}: the store's manifest field {name} is {value!r}, expected {kind.__name__}"
            )
    if not at:
        if manifest["n_items"] < 1 or manifest["d_model"] < 1:
            raise UserError(f"{path}: the store's manifest gives no items or no width")
        sites = manifest["settings"]["sites"]
        if not sites or not all(isinstance(x, str) for x in sites):
            raise UserError(f"{path}: the store's manifest lists no site names")
        if manifest["settings"]["store_dtype"] not in STORE_DTYPES:
            raise UserError(f"{path}: the store's manifest names an unknown store dtype")


def check_structure(f: h5py.File, manifest: dict, path: str | Path) -> None:
    """Every dataset the manifest promises is there, with the promised shape."""
    n = int(manifest["n_items"])
    d = int(manifest["d_model"])
    problems = []

    def need(name: str, shape: tuple[int, ...] | None = None) -> None:
        if name not in f:
            problems.append(f"missing {name}")
        elif shape is not None and tuple(f[name].shape) != shape:
            problems.append(f"{name} has shape {tuple(f[name].shape)}, expected {shape}")

    for col in STRING_COLUMNS + INT_COLUMNS:
        need(f"items/{col}", (n,))
    need("done", (n,))
    need("offsets", (n + 1,))
    n_rows = int(f["offsets"][-1]) if "offsets" in f and f["offsets"].shape == (n + 1,) else None
    need("tokens")
    for name in manifest["settings"]["sites"]:
        need(f"acts/{name}", (n_rows, d) if n_rows is not None else None)
    if problems:
        raise UserError(f"{path}: damaged activation store: {'; '.join(problems[:4])}")


class ActivationStore:
    """Read-only view of an activation store; use as a context manager or call ``close()``.

    ``store[site]`` (a ``Site`` or canonical name) is the lazy ``[n_rows, d_model]`` dataset;
    ``load(site, items)`` reads rows as a float32 array ``[len(items), d_model]`` (positions other
    than ``all``); ``item_rows(site, i)`` reads item ``i``'s ``[n_tokens_i, d_model]`` rows.
    """

    def __init__(self, path: str | Path, require_complete: bool = False) -> None:
        self.path = Path(path)
        self._f = open_h5(self.path, "r")
        try:
            self.manifest = read_manifest(self._f, self.path)
            check_structure(self._f, self.manifest, self.path)
        except Exception:
            self._f.close()
            raise
        if require_complete and not self.complete:
            n_done = int(self.done.sum())
            self._f.close()
            raise UserError(
                f"{self.path}: incomplete ({n_done} of {self.n_items} items done); rerun the "
                "cache-activations command to finish it"
            )

    # ------------------------------------------------------------ context
    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ facts
    @property
    def settings(self) -> dict:
        return self.manifest["settings"]

    @property
    def n_items(self) -> int:
        return int(self.manifest["n_items"])

    @property
    def d_model(self) -> int:
        return int(self.manifest["d_model"])

    @property
    def positions(self) -> str:
        return self.settings["positions"]

    @property
    def sites(self) -> tuple[Site, ...]:
        return tuple(Site.parse(name) for name in self.settings["sites"])

    def layers(self, kind: str) -> tuple[int, ...]:
        """Layers stored for one site kind, ascending."""
        return tuple(s.layer for s in self.sites if s.kind == kind)

    @property
    def site_kinds(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.kind for s in self.sites))

    @property
    def done(self) -> np.ndarray:
        """bool ``[n_items]``."""
        return self._f["done"][:].astype(bool)

    @property
    def complete(self) -> bool:
        if int(self._f.attrs.get("vb_format_version", 1)) < 2:
            return bool(self._f.attrs.get("complete", False)) and bool(self.done.all())
        return bool(self.done.all())

    @property
    def model(self) -> dict:
        return self.manifest["model"]

    # ------------------------------------------------------------ items
    def column(self, name: str) -> np.ndarray:
        data = self._f[f"items/{name}"]
        if name in STRING_COLUMNS:
            return data.asstr()[:].astype(object)
        return data[:]

    @property
    def items(self) -> pd.DataFrame:
        """One row per item: ``response, category, prompt_key, group, n_tokens, ...``."""
        table = pd.DataFrame({c: self.column(c) for c in STRING_COLUMNS + INT_COLUMNS})
        table["done"] = self.done
        return table

    def labels(self, column: str = "category") -> np.ndarray:
        return self.column(column)

    def groups(self) -> np.ndarray:
        """The cross-validation group of each item (its response word)."""
        return self.column("group")

    def prompts(self) -> pd.DataFrame:
        return pd.DataFrame({c: self._f[f"prompts/{c}"].asstr()[:] for c in self._f["prompts"]})

    @property
    def offsets(self) -> np.ndarray:
        return self._f["offsets"][:]

    def tokens(self, item: int) -> np.ndarray:
        """The input ids of one item (int32 ``[n_tokens]``)."""
        start = int(self._f["items/n_tokens"][:item].sum())
        n = int(self._f["items/n_tokens"][item])
        return self._f["tokens"][start : start + n]

    # ------------------------------------------------------------ activations
    def _name(self, site: Site | str) -> str:
        name = site.name if isinstance(site, Site) else str(site)
        if name not in self.settings["sites"]:
            raise UserError(
                f"{self.path}: no site {name} (has {', '.join(self.settings['sites'])})"
            )
        return name

    def __getitem__(self, site: Site | str) -> h5py.Dataset:
        return self._f[f"acts/{self._name(site)}"]

    def __iter__(self) -> Iterator[Site]:
        return iter(self.sites)

    def load(self, site: Site | str, items: np.ndarray | None = None) -> np.ndarray:
        """float32 ``[len(items), d_model]`` (all items when ``items`` is None), one row per item."""
        if self.positions == "all":
            raise UserError("positions=all stores token rows; use item_rows(site, i)")
        data = self[site]
        if items is None:
            return data[:].astype(np.float32)
        items = np.asarray(items, dtype=np.int64)
        unique, inverse = np.unique(items, return_inverse=True)
        if len(unique) == 0:
            return np.empty((0, self.d_model), dtype=np.float32)
        if len(unique) > data.shape[0] // 4:  # many rows: one sequential read beats fancy indexing
            rows = data[int(unique[0]) : int(unique[-1]) + 1][unique - unique[0]]
        else:
            rows = data[unique]
        return rows.astype(np.float32)[inverse]

    def item_rows(self, site: Site | str, item: int) -> np.ndarray:
        """float32 rows of one item: ``[1, d]`` or ``[n_tokens, d]`` for ``all``."""
        offsets = self._f["offsets"]
        start, stop = int(offsets[item]), int(offsets[item + 1])
        return self[site][start:stop].astype(np.float32)

    def score_head(self) -> dict[str, np.ndarray] | None:
        """The RM's score direction (``weight``, ``gain``, ``effective``), or None for an LM."""
        if "score_head" not in self._f:
            return None
        return {k: self._f[f"score_head/{k}"][:] for k in self._f["score_head"]}

"""Preference data for RM training: HH-RLHF JSONL, ShareGPT-style DPO JSON, HF datasets, and an
embedded default that works without the Hugging Face Hub.

``load_preference_data(spec)`` accepts:

- ``default`` (or ``llamafactory-dpo-en-demo``): ``data/dpo_en_demo.json`` from the PyPI sdist
  ``llamafactory-0.9.5.tar.gz`` (300 pairs, Apache-2.0), downloaded once straight from the
  index (``interp.models.downloads``: no build backend or other code of the package runs), its
  sha256 checked before the archive is opened, the member read in memory by name and checked by
  sha256 too, then cached in ``<cache>/preference/``. Its labels are AI-judged, not human, and there are few of them: good for a demo of the
  method, not for conclusions.
- a ``.jsonl`` / ``.jsonl.gz`` file in the Anthropic HH-RLHF format: ``chosen`` and ``rejected``
  are whole transcripts (``\\n\\nHuman: ...\\n\\nAssistant: ...``); the prompt is everything
  before the last ``\\n\\nAssistant:``, the response everything after it (stripped).
- a ``.json`` file in the ShareGPT-style DPO format: a list of ``{"conversations": [{"from",
  "value"}...], "chosen": {"from", "value"}, "rejected": {...}}`` (``from``: system, human/user,
  gpt/assistant). A ``.json`` list of HH-style ``{chosen, rejected}`` strings works too.
- a Hugging Face dataset id ``owner/name`` (optionally ``owner/name:split``, default ``train``),
  loaded with ``datasets`` (needs the Hub): HH-style or DPO-style columns, or
  ``prompt``/``chosen``/``rejected`` strings.

Every loader returns ``PreferenceData``: the pairs and a provenance record (source, sha256,
counts, how the labels were made).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from interp import files
from interp.atomic import atomic_write_bytes
from interp.errors import UserError
from interp.models.downloads import (
    DistFile,
    DownloadError,
    Transport,
    fetch_verified,
    index_transport,
)
from interp.models.zoo import cache_root
from interp.training.pairs import PreferencePair

DEFAULT_NAMES = ("default", "llamafactory-dpo-en-demo")
LLAMAFACTORY_SDIST = DistFile(
    "llamafactory", "llamafactory-0.9.5.tar.gz",
    "1702c0bfb864e80577a59521d2edcacd2aab05ec6aee06188fcba335a589681f",
)  # fmt: skip
LLAMAFACTORY_REQUIREMENT = LLAMAFACTORY_SDIST.requirement
LLAMAFACTORY_MEMBER = "data/dpo_en_demo.json"
LLAMAFACTORY_SHA256 = "b949be2421cfa62744afcf1b479f95b299d643d1a4c1c97d1341b314a1aa5cb3"
DEFAULT_LABEL_NOTE = (
    "AI-judged labels (not human preferences), only 300 pairs: LLaMA-Factory's DPO demo set "
    "(data/dpo_en_demo.json in llamafactory==0.9.5, Apache-2.0). Enough to demonstrate the "
    "method on a CPU, far too few and too indirect to support claims about human preferences."
)
HH_MARKER = "\n\nAssistant:"
_ROLE_NAMES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}


@dataclass(frozen=True)
class PreferenceData:
    """Pairs plus provenance (``record``: source, sha256, counts, label note)."""

    pairs: tuple[PreferencePair, ...]
    record: dict

    def __len__(self) -> int:
        return len(self.pairs)


# ------------------------------------------------------------------------------ HH-RLHF
def split_hh_transcript(text: str) -> tuple[str, str]:
    """``(prompt, response)``: split at the last ``\\n\\nAssistant:``; response stripped."""
    cut = text.rfind(HH_MARKER)
    if cut < 0:
        raise ValueError("no '\\n\\nAssistant:' turn")
    return text[:cut], text[cut + len(HH_MARKER) :].strip()


def hh_context(prompt: str) -> tuple[tuple[str, str], ...]:
    """The turns of an HH-RLHF prompt (``\\n\\nHuman:`` / ``\\n\\nAssistant:`` markers)."""
    turns: list[tuple[str, str]] = []
    rest = prompt
    markers = (("\n\nHuman:", "user"), ("\n\nAssistant:", "assistant"))
    pos = 0
    current_role = None
    current_start = 0
    while True:
        hits = [(rest.find(m, pos), m, role) for m, role in markers]
        hits = [h for h in hits if h[0] >= 0]
        if not hits:
            break
        at, marker, role = min(hits)
        if current_role is not None:
            turns.append((current_role, rest[current_start:at].strip()))
        current_role, current_start = role, at + len(marker)
        pos = current_start
    if current_role is not None:
        turns.append((current_role, rest[current_start:].strip()))
    if not turns or turns[-1][0] != "user":
        raise ValueError("the prompt does not end with a Human turn")
    return tuple(turns)


def pairs_from_hh(rows: list[dict]) -> tuple[list[PreferencePair], dict]:
    """HH-RLHF rows -> pairs. Rows whose chosen and rejected contexts differ are dropped."""
    pairs, bad, context_mismatch = [], 0, 0
    for row in rows:
        try:
            p_c, r_c = split_hh_transcript(str(row["chosen"]))
            p_r, r_r = split_hh_transcript(str(row["rejected"]))
            if p_c != p_r:
                context_mismatch += 1
                continue
            pairs.append(PreferencePair(hh_context(p_c), r_c, r_r))
        except (KeyError, ValueError):
            bad += 1
    counts = {
        "n_rows": len(rows),
        "dropped_malformed": bad,
        "dropped_context_mismatch": context_mismatch,
    }
    return pairs, counts


# ------------------------------------------------------------------------------ ShareGPT DPO
def _message(item) -> tuple[str, str]:
    role = _ROLE_NAMES.get(str(item.get("from", item.get("role", ""))).lower())
    if role is None:
        raise ValueError(f"unknown speaker {item.get('from', item.get('role'))!r}")
    return role, str(item.get("value", item.get("content", "")))


def pairs_from_sharegpt(rows: list[dict]) -> tuple[list[PreferencePair], dict]:
    """ShareGPT-style DPO rows -> pairs (the context must end with a human turn)."""
    pairs, bad = [], 0
    for row in rows:
        try:
            context = tuple(_message(m) for m in row["conversations"])
            chosen, rejected = row["chosen"], row["rejected"]
            chosen = _message(chosen)[1] if isinstance(chosen, dict) else str(chosen)
            rejected = _message(rejected)[1] if isinstance(rejected, dict) else str(rejected)
            if not context or context[-1][0] != "user":
                raise ValueError("context does not end with a user turn")
            pairs.append(PreferencePair(context, chosen, rejected))
        except (KeyError, ValueError, TypeError, AttributeError):
            bad += 1
    return pairs, {"n_rows": len(rows), "dropped_malformed": bad}


def pairs_from_rows(rows: list[dict]) -> tuple[list[PreferencePair], dict, str]:
    """Detect the row format (DPO ShareGPT, HH transcripts, or prompt/chosen/rejected strings)."""
    if not rows:
        raise UserError("preference data: no rows")
    first = rows[0]
    if "conversations" in first:
        pairs, counts = pairs_from_sharegpt(rows)
        return pairs, counts, "sharegpt-dpo"
    if "prompt" in first and isinstance(first.get("chosen"), str):
        pairs, bad = [], 0
        for row in rows:
            try:
                prompt = row["prompt"]
                context = (
                    (("user", prompt),)
                    if isinstance(prompt, str)
                    else tuple(_message(m) for m in prompt)
                )
                pairs.append(PreferencePair(context, str(row["chosen"]), str(row["rejected"])))
            except (KeyError, ValueError, TypeError, AttributeError):
                bad += 1
        return pairs, {"n_rows": len(rows), "dropped_malformed": bad}, "prompt-chosen-rejected"
    if "chosen" in first and "rejected" in first:
        pairs, counts = pairs_from_hh(rows)
        return pairs, counts, "hh-rlhf"
    raise UserError(
        f"preference data: unknown row format (keys {sorted(first)}); expected HH-RLHF "
        "chosen/rejected transcripts or ShareGPT-style conversations/chosen/rejected"
    )


# ------------------------------------------------------------------------------ files
def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_rows(path: Path, encoding: str | None = None) -> tuple[list[dict], bytes]:
    what = "preference data"
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith((".jsonl", ".json")):
        raise UserError(f"{what} {path}: expected a .jsonl, .jsonl.gz, .json or .json.gz file")
    raw = path.read_bytes()
    if name.endswith(".jsonl"):
        rows = files.read_jsonl(path, what, encoding)
    else:
        rows = files.read_json(path, what, encoding)
    if isinstance(rows, dict):
        rows = next((v for v in rows.values() if isinstance(v, list)), None)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{path}: expected a list of objects (one per preference pair)")
    return rows, raw


def load_preference_file(
    path: Path, label_note: str | None = None, encoding: str | None = None
) -> PreferenceData:
    rows, raw = _read_rows(path, encoding)
    pairs, counts, fmt = pairs_from_rows(rows)
    if not pairs:
        raise UserError(f"{path}: no usable preference pair ({counts})")
    record = {
        "source": str(path),
        "kind": "file",
        "format": fmt,
        "sha256": _sha256_bytes(raw),
        "n_pairs": len(pairs),
        **counts,
        "labels": label_note or "as given by the file",
    }
    return PreferenceData(tuple(pairs), record)


# ------------------------------------------------------------------------------ embedded default
def preference_cache_dir() -> Path:
    return cache_root() / "preference"


def fetch_default_data(
    transport: Transport = index_transport,
    sdist: DistFile = LLAMAFACTORY_SDIST,
    member_sha256: str = LLAMAFACTORY_SHA256,
) -> Path:
    """The embedded default (``dpo_en_demo.json``) in the cache, fetched and verified if needed.

    ``transport``/``sdist``/``member_sha256`` replace the index and the pinned file (tests)."""
    target = preference_cache_dir() / "llamafactory-0.9.5-dpo_en_demo.json"
    if target.exists() and _sha256_bytes(target.read_bytes()) == member_sha256:
        return target
    with tempfile.TemporaryDirectory(prefix="valuebias-pref-") as tmp:
        try:
            archive = fetch_verified(sdist, Path(tmp), transport)  # sha256 checked: now open it
            with tarfile.open(archive, "r:gz") as tf:
                member = next(
                    (m for m in tf.getmembers() if m.name.endswith("/" + LLAMAFACTORY_MEMBER)), None
                )
                if member is None or not member.isfile():
                    raise UserError(f"{sdist.filename} has no {LLAMAFACTORY_MEMBER}")
                data = tf.extractfile(member).read()  # in memory, by name: nothing is extracted
        except (DownloadError, tarfile.TarError) as err:
            raise UserError(f"default preference data: {err}") from None
    digest = _sha256_bytes(data)
    if digest != member_sha256:
        raise UserError(
            f"{LLAMAFACTORY_MEMBER} from {sdist.filename} has sha256 {digest}, "
            f"expected {member_sha256}; refusing to use it"
        )
    return atomic_write_bytes(target, data)


def load_default_data() -> PreferenceData:
    path = fetch_default_data()
    data = load_preference_file(path, DEFAULT_LABEL_NOTE)
    record = dict(data.record)
    record.update(
        source=f"{LLAMAFACTORY_REQUIREMENT} sdist: {LLAMAFACTORY_MEMBER}",
        sdist_sha256=LLAMAFACTORY_SDIST.sha256,
        kind="embedded-default",
        cached_at=str(path),
        licence="Apache-2.0",
    )
    return PreferenceData(data.pairs, record)


# ------------------------------------------------------------------------------ HF datasets
def load_hf_dataset(spec: str) -> PreferenceData:
    name, _, split = spec.partition(":")
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"{spec!r} looks like a Hugging Face dataset id, but `datasets` is not installed "
            "(pip install 'valuebias[hub]')"
        ) from None
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as err:  # the Hub raises many kinds of errors; show the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load dataset {spec!r}: {first}") from None
    rows = [dict(r) for r in ds]
    pairs, counts, fmt = pairs_from_rows(rows)
    if not pairs:
        raise UserError(f"{spec}: no usable preference pair ({counts})")
    fingerprint = getattr(ds, "_fingerprint", None)
    record = {
        "source": spec,
        "kind": "hf-dataset",
        "format": fmt,
        "dataset_fingerprint": fingerprint,
        "sha256": hashlib.sha256(
            json.dumps(rows, sort_keys=True, default=str).encode()
        ).hexdigest(),
        "n_pairs": len(pairs),
        **counts,
        "labels": "as given by the dataset",
    }
    return PreferenceData(tuple(pairs), record)


def load_preference_data(spec: str, encoding: str | None = None) -> PreferenceData:
    """Resolve ``--data``: ``default``, a file, or a Hugging Face dataset id (see module doc);
    ``encoding`` decodes a file (default UTF-8)."""
    if spec in DEFAULT_NAMES:
        return load_default_data()
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_file():
            raise UserError(
                f"preference data {spec!r} is a folder; give the .jsonl(.gz)/.json file"
            )
        return load_preference_file(path, encoding=encoding)
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        return load_hf_dataset(spec)
    raise UserError(
        f"preference data {spec!r}: not a file, not 'default', not a dataset id (owner/name)"
    )


def describe_pairs(data: PreferenceData) -> str:
    """A short human-readable line about the data (counts and label provenance)."""
    return f"{len(data)} pairs from {data.record['source']} ({data.record.get('labels')})"

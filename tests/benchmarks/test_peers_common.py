"""The peer benchmark's pure rules (``benchmarks/peers_common.py``): agreement, who is ahead on
which measure, the table's rows for failures, the memory sampler. Nothing here is timed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from peers_common import agreement, comparison, failed, table, versions  # noqa: E402


def test_agreement_is_relative_to_max_one_abs_value_and_treats_nans():
    ref = np.array([[1000.0, 0.5], [np.nan, -2.0]])
    near = ref + np.array([[0.05, 1e-6], [0.0, 0.0]])
    got = agreement(ref, near, tolerance=1e-4)
    assert got["max_abs_diff"] == pytest.approx(0.05)
    assert got["max_rel_diff"] == pytest.approx(0.05 / 1000)
    assert got["agrees"] and got["nan_mismatches"] == 0
    off = ref.copy()
    off[0, 1] = 0.5 + 1e-3  # below |value| 1, so relative = absolute
    assert not agreement(ref, off, tolerance=1e-4)["agrees"]
    one_sided = np.nan_to_num(ref, nan=0.0)
    found = agreement(ref, one_sided, tolerance=1.0)
    assert found["nan_mismatches"] == 1 and not found["agrees"]
    with pytest.raises(ValueError, match="shapes differ"):
        agreement(ref, ref[0], tolerance=1.0)


def _m(tool, rate, rate_cpu=None, mem=10.0, **extra):
    return {"tool": tool, "route": "r", "wall_s": 1.0 / rate, "rate": rate,
            "rate_cpu": rate_cpu or rate, "peak_rss_mib": mem, **extra}  # fmt: skip


def test_comparison_names_the_measures_a_peer_is_ahead_on():
    ours_slow, ours_fast = _m("valuebias", 2.0, mem=100.0), _m("valuebias", 4.0, mem=100.0)
    tl, hf = _m("TL", 8.0, rate_cpu=3.0, mem=20.0), _m("HF", 1.0, mem=99.0)
    part = {"work": "w", "unit": "u/s", "methods": [ours_slow, ours_fast, tl, hf]}
    text, ahead = comparison(part, tl)  # against valuebias's fastest method (rate 4)
    assert text == "PEER 2.0x faster" and ahead == ["speed", "memory"]
    text, ahead = comparison(part, hf)
    assert text == "valuebias 4.0x faster" and ahead == []
    assert comparison(part, ours_fast) == ("", [])


def test_comparison_matches_dtype_and_table_reports_failures():
    part = {
        "work": "sweep",
        "unit": "c/s",
        "methods": [
            _m("valuebias", 10.0, dtype="float32"),
            _m("valuebias", 30.0, dtype="bfloat16"),
            _m("HF", 20.0, dtype="float32", agreement=agreement([1.0], [1.0], 1e-4)),
            failed("reward-lens", "load", OSError("no such folder")),
        ],
    }
    assert comparison(part, part["methods"][2])[0] == "PEER 2.0x faster"
    text = table({"sweep": part, "lens": {"work": "lens", "error": "exit 1: boom"}})
    lines = text.splitlines()
    assert len(lines) == 2 + 4 + 1
    assert "could not run: OSError: no such folder" in text
    assert "| lens | | | | | | failed: exit 1: boom | | |" in lines
    assert "0 ok | PEER 2.0x faster | speed, CPU time |" in lines[4]


_ALLOCATE = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from peers_common import Measured
with Measured() as clock:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    block.sum()
print(clock.peak_rss_mib, clock.wall_s, clock.cpu_s)
"""


def test_measured_counts_what_the_body_allocates():
    # in a fresh process: a long test session's allocator may hand back memory that is still
    # resident, so RSS need not grow there
    import subprocess

    bench = str(Path(__file__).resolve().parents[2] / "benchmarks")
    out = subprocess.run([sys.executable, "-c", _ALLOCATE, bench], capture_output=True,
                         text=True, check=True).stdout.split()  # fmt: skip
    peak, wall, cpu = map(float, out)
    assert peak > 40 and wall >= 0 and cpu >= 0


def test_versions_records_missing_packages_as_none():
    found = versions(["numpy", "no-such-package-valuebias"])
    assert found["numpy"] == np.__version__ and found["no-such-package-valuebias"] is None

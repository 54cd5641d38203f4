"""The prepared one-call GPU check (``benchmarks/gpu_oneshot.py``) runs its whole code path on a CPU
with tiny shapes: every phase reports, the prefix-cached caching agrees with full sequences, and
the patching self-test passes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_script_code_path_on_cpu(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "gpu_oneshot", ROOT / "benchmarks" / "gpu_oneshot.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--tiny", "--out", str(tmp_path), "--budget-s", "600"])
    phases = results["phases"]
    assert set(phases) == {"matmul", "sweep_float32", "sweep_bfloat16", "caching", "patching"}
    assert all(isinstance(v, dict) for v in phases.values()), phases  # none failed or skipped
    assert phases["sweep_float32"]["candidates"] == module.TINY["vocab_size"]
    assert phases["sweep_float32"]["finite"] and phases["sweep_float32"]["candidates_per_s"] > 0
    assert 0 < phases["sweep_float32"]["fraction_of_matmul_peak"]
    assert phases["caching"]["max_abs_diff"] < 1e-4
    assert phases["patching"]["self_test_passed"]
    assert json.loads((tmp_path / "gpu_results.json").read_text())["tiny"] is True
    assert (tmp_path / "gpu_cpu.txt").read_text().startswith("# benchmarks/gpu_oneshot.py on cpu")

"""Run every benchmark in this folder, one after another: ``python benchmarks/run.py [names...]``.

Each benchmark prints its own ratios, measured within its own run (never against numbers from
another machine or another run). Names: scoring, activations, patching.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "scoring": "bench_scoring.py",
    "activations": "bench_activations.py",
    "patching": "bench_patching.py",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    status = 0
    for name in names:
        print(f"== {name}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / BENCHMARKS[name])])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run every benchmark in this folder, one after another: ``python benchmarks/run.py [names...]``.

Each benchmark prints its own ratios, measured within its own run (never against numbers from
another machine or another run). Names: scoring, activations, patching, peers (valuebias against TransformerLens,
nnsight, reward-lens and plain transformers: ``bench_peers.py``; extra arguments after ``peers``
go to it, e.g. ``run.py peers --quick``).
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
    "peers": "bench_peers.py",
}


def main(argv: list[str]) -> int:
    if argv[:1] == ["peers"]:  # the peer comparison takes its own options
        return subprocess.call([sys.executable, str(HERE / BENCHMARKS["peers"]), *argv[1:]])
    names = argv or [n for n in BENCHMARKS if n != "peers"]
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

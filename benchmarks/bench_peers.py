"""valuebias against the tools a user would pick instead, side by side in one run.

Run: ``python benchmarks/run.py peers`` (or ``make bench-peers``, or this file directly):
``python benchmarks/bench_peers.py [--quick] [--out benchmarks/results/peers_cpu.json]
[--parts caching,patching,lens,sweep]``.

Four parts, each in a child process of its own (so one part's memory and failures stay its
own), one after another on the same machine in the same run:

- ``caching`` (``peers_caching.py``): all 30 ``resid_post`` at the last token to HDF5, valuebias
  full-sequence and prefix-cached vs TransformerLens ``run_with_cache`` vs nnsight ``.save()``
  vs HF ``output_hidden_states``: items/s, peak memory, max difference of the stored values;
- ``patching`` (``peers_patching.py``): a residual patching sweep over every layer, base -> RM:
  valuebias vs TransformerLens's patching helpers vs a plain nnsight loop: seconds, agreement;
- ``lens`` (``peers_lens.py``): the value lens vs reward-lens's reward lens on the same RM;
- ``sweep`` (``peers_sweep.py``): the exhaustive one-token sweep, valuebias vs plain HF batching
  of exact ids vs the FAccT route, float32 and bfloat16, as a fraction of measured matmul.

The result file (written atomically) holds the machine (CPU model, cores, load averages at the
start and the end), every package's version, the command, the settings, each part's methods and
the table; the table is printed on stdout. ``--quick`` runs every code path on tiny settings
(a minute or two of model work; numbers not meaningful). Never a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from peers_common import machine, table, versions  # noqa: E402

from interp.atomic import atomic_write_text, check_writable  # noqa: E402
from interp.provenance import settings_hash, utc_now  # noqa: E402

PARTS = {
    "caching": "peers_caching.py",
    "patching": "peers_patching.py",
    "lens": "peers_lens.py",
    "sweep": "peers_sweep.py",
}
DEFAULT_OUT = HERE / "results" / "peers_cpu.json"


def run_part(name: str, quick: bool, folder: Path) -> dict:
    """One part in a child process; its JSON, or its failure (exit status and last lines)."""
    out = folder / f"{name}.json"
    cmd = [sys.executable, str(HERE / PARTS[name]), "--json-out", str(out)]
    if quick:
        cmd.append("--quick")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not out.is_file():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        return {"work": name, "error": f"exit {done.returncode}: {tail}", "part_seconds": seconds}
    part = json.loads(out.read_text())
    part["part_seconds"] = seconds
    return part


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings: code paths only")
    ap.add_argument("--out", type=Path, default=None, help=f"result JSON (default {DEFAULT_OUT})")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of parts")
    ap.add_argument("--note", default="", help="a remark saved with the results")
    args = ap.parse_args(argv)
    names = [p for p in args.parts.split(",") if p]
    unknown = [p for p in names if p not in PARTS]
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
        raise SystemExit(2)
    out = args.out or (
        Path(tempfile.gettempdir()) / "peers_quick.json" if args.quick else DEFAULT_OUT
    )
    check_writable(out)
    load_start = os.getloadavg()
    started = utc_now()
    t0 = time.perf_counter()
    parts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"== {name}", file=sys.stderr, flush=True)
            parts[name] = run_part(name, args.quick, Path(tmp))
    settings = {"quick": args.quick, "parts": names, "threads": 2}
    result = {
        "benchmark": "benchmarks/bench_peers.py",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": started,
        "finished": utc_now(),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "settings": settings,
        "settings_hash": settings_hash(settings),
        "machine": machine(load_start),
        "versions": versions(),
        "note": args.note,
        "parts": parts,
        "table": table(parts),
    }
    atomic_write_text(out, json.dumps(result, indent=1, default=float))
    print(result["table"])
    print(f"\nsaved {out} ({result['total_seconds']} s; load {load_start} -> "
          f"{result['machine']['load_average_end']})")  # fmt: skip
    return result


if __name__ == "__main__":
    main()

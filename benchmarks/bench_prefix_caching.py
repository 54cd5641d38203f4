"""Prefix-cached activation caching against today's full-sequence caching, in the same run.

Run: ``.venv/bin/python benchmarks/bench_prefix_caching.py [--prompts 54] [--backend nnsight]``

On ``smollm2-135m-instruct`` (LM, float32 compute, float32 store so values compare exactly)
over the paper's 263 Big Two nouns (``dict_big2_nouns.csv`` when ``../shared`` is beside the
checkout, else the big2 lexicon) x ``--prompts`` of the 54 paper prompts, caching every block's
``resid_post`` at the last position:

- ``full``: ``cache_activations`` with ``route="full-sequence"`` (every item's whole sequence);
- ``prefix``: the same with ``route="prefix-cached"`` (each prompt's prefix once, items' own
  tokens on top).

The two runs alternate prompt by prompt (one prompt's items cached by one route, then by the
other), so load from other processes on a shared machine hits both alike. Reported: wall and
process CPU seconds per route (CPU time counts every thread of this process, so it is the fairer
ratio on a loaded machine), the speed-up of each, the machine's load average, and the largest
difference between the two stores' values, absolute and relative to ``max(1, |value|)`` (deep
residual streams of SmolLM2 reach magnitudes of ~1e3, where float32 rounding alone is ~1e-4). Prints a table on stderr, JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_activations import MODEL, WORDS, log  # noqa: E402
from peers_common import agreement  # noqa: E402

from activations.cache import cache_activations  # noqa: E402
from activations.items import plan_items  # noqa: E402
from activations.manifest import CacheSettings  # noqa: E402
from analyses.inputs.prompts import paper_prompts  # noqa: E402
from analyses.inputs.responses import response_words  # noqa: E402
from interp.models.loading import ModelSpec, load_model  # noqa: E402
from interp.sites import make_sites  # noqa: E402


def cache_once(loaded, plan, sites, route: str, backend: str, path: Path) -> tuple[float, float]:
    settings = CacheSettings(sites, "last", "float32", backend, route=route)
    wall, cpu = time.perf_counter(), time.process_time()
    cache_activations(loaded, plan, settings, path)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=54, help="how many of the 54 prompts")
    ap.add_argument("--words", type=int, default=0, help="first N words only (0: all)")
    ap.add_argument("--backend", default="nnsight", choices=("nnsight", "torch"))
    ap.add_argument("--model", default=MODEL)
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    loaded = load_model(ModelSpec(args.model, kind="lm", dtype="float32"))
    words = response_words(WORDS)
    if args.words:
        words = type(words)(
            words.source, words.words[: args.words], words.categories[: args.words], {}
        )
    prompts = paper_prompts()[: args.prompts]
    sites = make_sites(["resid_post"], range(loaded.n_layers))
    load_before = os.getloadavg()
    totals = {"full": [0.0, 0.0], "prefix": [0.0, 0.0]}
    max_diff, max_rel, n_items, tokens = 0.0, 0.0, 0, {"full": 0, "prefix": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for i, prompt in enumerate(prompts):
            plan = plan_items(loaded, [prompt], words)
            n_items += plan.n_items
            tokens["full"] += int(plan.lengths().sum())
            tokens["prefix"] += len(plan.prefix[0]) + sum(
                len(w) + len(plan.suffix[0]) for w in plan.word_ids
            )
            stores = {}
            for route, name in (("full-sequence", "full"), ("prefix-cached", "prefix")):
                path = Path(tmp) / f"{name}-{i}.h5"
                wall, cpu = cache_once(loaded, plan, sites, route, args.backend, path)
                totals[name][0] += wall
                totals[name][1] += cpu
                with h5py.File(path, "r") as f:
                    stores[name] = {k: f[f"acts/{k}"][:] for k in f["acts"]}
                path.unlink()
            for key in stores["full"]:
                # relative to max(1, |value|): residual streams of SmolLM2 reach ~1e3
                found = agreement(stores["full"][key], stores["prefix"][key], tolerance=1.0)
                max_diff = max(max_diff, found["max_abs_diff"])
                max_rel = max(max_rel, found["max_rel_diff"])
            log(f"prompt {i + 1}/{len(prompts)}: full {totals['full'][0]:.1f}s, "
                f"prefix {totals['prefix'][0]:.1f}s (cumulative wall)")  # fmt: skip
    result = {
        "model": args.model,
        "backend": args.backend,
        "prompts": len(prompts),
        "words": len(words.words),
        "items": n_items,
        "sites": len(sites),
        "tokens_run": tokens,
        "full_wall_s": round(totals["full"][0], 2),
        "full_cpu_s": round(totals["full"][1], 2),
        "prefix_wall_s": round(totals["prefix"][0], 2),
        "prefix_cpu_s": round(totals["prefix"][1], 2),
        "speedup_wall": round(totals["full"][0] / totals["prefix"][0], 2),
        "speedup_cpu": round(totals["full"][1] / totals["prefix"][1], 2),
        "max_abs_diff": max_diff,
        "max_diff_relative_to_max_1_abs_value": max_rel,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpu_count": os.cpu_count(),
    }
    log(
        f"{n_items} items x {len(sites)} sites: full-sequence {result['full_wall_s']}s wall / "
        f"{result['full_cpu_s']}s CPU, prefix-cached {result['prefix_wall_s']}s / "
        f"{result['prefix_cpu_s']}s CPU -> {result['speedup_wall']}x wall, "
        f"{result['speedup_cpu']}x CPU; max |diff| {max_diff:.2e} (relative to max(1, |value|): "
        f"{max_rel:.2e}); load {load_before}"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

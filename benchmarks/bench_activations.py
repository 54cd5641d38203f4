"""Activation caching throughput against a bare forward pass, and peak memory as items grow.

Run: ``.venv/bin/python benchmarks/bench_activations.py [--prompts 2] [--words 0] [--memory-words 40]``

Everything is measured in the same run on the same machine, on ``smollm2-135m-instruct`` (LM,
float32) over the Big Two nouns of the paper (``dict_big2_nouns.csv``, 263 words) x a subsample
of the 54 paper prompts (``--prompts``; all 54 take ~45 min per pass on 2 CPU cores):

- ``cache``: ``cache_activations`` end to end (formatting, forward with reads of all 30
  ``resid_post`` sites at the last position, float16 to HDF5, commits), with the default nnsight
  backend and with plain hooks (``torch``);
- ``bare``: the backbone's forward pass (all 30 blocks + final norm, no head, nothing kept) over
  exactly the batches the cache uses (same items, same right padding, same batch size), run
  right after each cached batch (see ``PairedTimer``), so both see the same machine load;
- memory: child processes cache ``N`` (1 prompt x N words) and ``10 N`` (10 prompts x the same
  words) items (same sites, batch 16) and report the resident set size before caching and its
  peak during caching (sampled every 5 ms), and the tracemalloc peak of Python/NumPy allocations.

Prints a readable table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from peers_common import current_rss_mib  # noqa: E402

from activations.cache import cache_activations, default_batch_size  # noqa: E402
from activations.items import plan_items  # noqa: E402
from activations.manifest import CacheSettings  # noqa: E402
from analyses.inputs.prompts import paper_prompts  # noqa: E402
from analyses.inputs.responses import response_words  # noqa: E402
from interp.batching import right_pad  # noqa: E402
from interp.models.loading import ModelSpec, load_model  # noqa: E402
from interp.sites import make_sites  # noqa: E402

MODEL = "smollm2-135m-instruct"
# The paper's 263 Big Two nouns when ../shared is beside the checkout, else the big2 lexicon
# (plain entries) fetched from PyPI.
PAPER_NOUNS = ROOT.parent / "shared" / "paper-data" / "corpora" / "dict_big2_nouns.csv"
WORDS = str(PAPER_NOUNS) if PAPER_NOUNS.is_file() else "big2"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(n_prompts: int, n_words: int):
    torch.set_num_threads(2)
    loaded = load_model(ModelSpec(MODEL, kind="lm"))
    prompts = paper_prompts()
    step = max(1, len(prompts) // n_prompts)
    chosen = prompts[::step][:n_prompts]  # spread over adjectives (both framings)
    words = response_words(WORDS)
    if n_words:
        words = type(words)(words.source, words.words[:n_words], words.categories[:n_words], {})
    plan = plan_items(loaded, chosen, words)
    sites = make_sites(["resid_post"], range(loaded.n_layers))
    return loaded, plan, sites


class PairedTimer:
    """A ``Progress`` that, after each cached batch, runs the bare forward pass of that same batch.

    Cache and bare passes alternate batch by batch, so load from other processes hits both alike.
    ``cache[k]``: seconds from the end of the previous bare pass to the end of batch ``k``'s write
    (its forward with reads, the float16 copy, the HDF5 write and any commit); the first one also
    holds the reader's setup. ``bare[k]``: the backbone's forward over batch ``k`` alone.
    """

    def __init__(self, loaded, plan, batch_size: int) -> None:
        self.loaded, self.plan, self.batch_size = loaded, plan, batch_size
        self.cache: list[float] = []
        self.bare: list[float] = []
        self._last = 0.0

    def start(self, total: int, desc: str) -> None:
        self._last = time.perf_counter()

    def advance(self, n: int = 1) -> None:
        if n == 0:
            return
        self.cache.append(time.perf_counter() - self._last)
        lo = len(self.bare) * self.batch_size
        hi = min(self.plan.n_items, lo + self.batch_size)
        pad = self.loaded.tokenizer.pad_token_id
        batch = right_pad([self.plan.sequence(i) for i in range(lo, hi)], pad)
        start = time.perf_counter()
        with torch.no_grad():
            self.loaded.backbone(**batch.model_inputs(), use_cache=False)
        self.bare.append(time.perf_counter() - start)
        self._last = time.perf_counter()

    def close(self) -> None:
        pass


def paired_run(loaded, plan, sites, batch_size: int, backend: str, folder: Path) -> dict:
    timer = PairedTimer(loaded, plan, batch_size)
    settings = CacheSettings(sites, "last", "float16", backend, batch_size, route="full-sequence")
    start = time.perf_counter()
    cache_activations(loaded, plan, settings, folder / f"{backend}.h5", progress=timer)
    wall = time.perf_counter() - start - sum(timer.bare)
    cache, bare = timer.cache, timer.bare
    return {
        "batches": len(cache),
        "cache_s": sum(cache),
        "bare_s": sum(bare),
        "cache_wall_s": wall,
        "overhead": sum(cache) / sum(bare) - 1,
        "overhead_wall": wall / sum(bare) - 1,
        "overhead_without_first_batch": sum(cache[1:]) / sum(bare[1:]) - 1
        if len(cache) > 1
        else None,
        "median_batch_ratio": float(sorted(c / b for c, b in zip(cache, bare))[len(cache) // 2]),
        "items_per_s_cache": plan.n_items / wall,
        "items_per_s_bare": plan.n_items / sum(bare),
        "store_mib": (folder / f"{backend}.h5").stat().st_size / 2**20,
    }


class RssTrace:
    """A ``Progress`` recording (items done, current RSS in MiB) after every batch."""

    def __init__(self) -> None:
        self.done = 0
        self.trace: list[tuple[int, float]] = []

    def start(self, total: int, desc: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        self.done += n
        if n:
            self.trace.append((self.done, current_rss_mib()))

    def close(self) -> None:
        pass


def memory_child(n_prompts: int, n_words: int) -> None:
    """Cache ``n_prompts x n_words`` items; print RSS before caching, its peak during caching
    (sampled every 5 ms), RSS after each batch, and the tracemalloc peak, as JSON."""
    loaded, plan, sites = build(n_prompts, n_words)
    before = current_rss_mib()
    peak = [before]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], current_rss_mib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    trace = RssTrace()
    with tempfile.TemporaryDirectory() as tmp:
        settings = CacheSettings(sites, "last", "float16", "nnsight", 16, route="full-sequence")
        cache_activations(loaded, plan, settings, Path(tmp) / "m.h5", progress=trace)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    running.clear()
    sampler.join()
    print(
        json.dumps(
            {
                "n_items": plan.n_items,
                "rss_before_mib": before,
                "rss_peak_mib": peak[0],
                "rss_growth_mib": peak[0] - before,
                "tracemalloc_peak_mib": traced_peak / 2**20,
                "rss_after_batches": trace.trace,
            }
        )
    )


def run_memory(n_words: int) -> list[dict]:
    """N = 1 prompt x ``n_words`` words, then 10 prompts x the same words (10 N items)."""
    out = []
    for n_prompts in (1, 10):
        log(f"memory: caching {n_prompts} x {n_words} items in a child process ...")
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", f"{n_prompts},{n_words}"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2, help="Paper prompts (of 54) to use.")
    parser.add_argument("--words", type=int, default=0, help="First N Big Two words (0 = all).")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--memory-words", type=int, default=40, help="N: 1 x N items, then 10 prompts x N."
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(*(int(x) for x in args.memory_child.split(",")))
        return

    loaded, plan, sites = build(args.prompts, args.words)
    batch_size = args.batch_size or default_batch_size(loaded, plan)
    tokens = int(plan.lengths().sum())
    log(
        f"{MODEL}: {plan.n_items} items ({len(plan.prompts)} prompts x "
        f"{len(plan.responses.words)} words), {tokens} tokens, batch {batch_size}, "
        f"{len(sites)} sites, torch threads {torch.get_num_threads()}"
    )
    warm = plan_items(loaded, plan.prompts[:1], plan.responses)
    warm_timer = PairedTimer(loaded, warm, min(batch_size, warm.n_items))
    warm_timer.advance(1)  # warm-up (allocator, kernels)
    result = {
        "model": MODEL,
        "device": str(loaded.device),
        "n_items": plan.n_items,
        "n_prompts": len(plan.prompts),
        "n_words": len(plan.responses.words),
        "tokens": tokens,
        "batch_size": batch_size,
        "sites": len(sites),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("nnsight", "torch"):
            run = paired_run(loaded, plan, sites, batch_size, backend, Path(tmp))
            result[backend] = run
            log(
                f"{backend:8s} cache {run['cache_wall_s']:.1f} s end to end "
                f"({run['items_per_s_cache']:.2f} items/s) vs bare {run['bare_s']:.1f} s "
                f"({run['items_per_s_bare']:.2f} items/s): overhead {run['overhead_wall']:+.1%} "
                f"end to end, {run['overhead']:+.1%} per batch, median batch ratio "
                f"{run['median_batch_ratio']:.3f} (target <= +25%)"
            )
    if not args.no_memory:
        small, large = run_memory(args.memory_words)
        result["memory"] = {"small": small, "large": large}
        log(
            f"memory: {small['n_items']} items: RSS {small['rss_before_mib']:.0f} -> peak "
            f"{small['rss_peak_mib']:.0f} MiB (+{small['rss_growth_mib']:.0f}), tracemalloc "
            f"{small['tracemalloc_peak_mib']:.1f} MiB; {large['n_items']} items: RSS "
            f"{large['rss_before_mib']:.0f} -> {large['rss_peak_mib']:.0f} MiB "
            f"(+{large['rss_growth_mib']:.0f}), tracemalloc {large['tracemalloc_peak_mib']:.1f} MiB"
        )
        trace = large["rss_after_batches"]
        tenth = next(rss for done, rss in trace if done >= small["n_items"])
        log(
            f"memory, within the {large['n_items']}-item run: RSS {tenth:.0f} MiB after "
            f"{small['n_items']} items, {trace[-1][1]:.0f} MiB after all, max "
            f"{max(r for _, r in trace):.0f} MiB"
        )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

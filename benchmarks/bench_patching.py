"""Benchmark: a full residual patching sweep, fast path vs the plain way, in the same run.

Plain way (as TransformerLens's patching helpers do it): cache the source's activations, then
one full forward pass of the receiver per patched layer over right-padded full sequences.
Fast way (``interp.patching.sweep.patch_sweep``): the shared prompt prefix runs once per model, each
patch at block ``l`` starts from the receiver's cached ``resid_pre`` of block ``l``, and
``--patches-per-pass`` patches can share one forward pass; its timing includes the exact
self-test and both clean passes (with the value lens).

Default pair: ``smollm2-135m-instruct`` as the base and, unless ``--rm`` names a trained RM, the
same weights as an RM with a seeded random head and a small seeded perturbation of every weight
(so the two models differ at every layer, as a trained RM does). Sites: ``resid_pre`` of every
block, all positions. Wall-clock and process CPU seconds are reported (the minimum over
``--repeats`` alternating runs): on a shared machine the CPU-time ratio is the steadier one.
Usage::

    python benchmarks/bench_patching.py [--rm PATH] [--words 48] [--prompts 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.inputs.prompts import paper_prompts  # noqa: E402
from interp.models.loading import ModelSpec, load_model  # noqa: E402
from interp.models.readout import reward_readout  # noqa: E402
from interp.patching.items import build_items  # noqa: E402
from interp.patching.pair import check_pair  # noqa: E402
from interp.patching.reference import plain_patched_scores  # noqa: E402
from interp.patching.specs import PatchSpec  # noqa: E402
from interp.patching.sweep import patch_sweep  # noqa: E402

FALLBACK_WORDS = (
    "achievement ambition power success strength victory leadership competence confidence "
    "love friendship family kindness care trust community warmth compassion honesty loyalty"
).split()


def benchmark_words(n: int) -> list[str]:
    """The first ``n`` Big Two plain words per category (built-in list if the lexicon is absent)."""
    try:
        from analyses.inputs.lexicons import load_lexicon

        lex = load_lexicon("big2").drop_pronouns()
        a, c = lex.words("Agency"), lex.words("Communion")
        words = [w for pair in zip(a, c) for w in pair][:n]
    except Exception:  # offline and not cached: a fixed list keeps the benchmark runnable
        words = FALLBACK_WORDS[:n]
    return words


def perturbed_rm(name: str, seed: int, scale: float = 0.02):
    rm = load_model(ModelSpec(name, kind="rm", dtype="float32", random_head_seed=seed))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in rm.backbone.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale * p.detach().std())
    return rm


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--rm", default=None, help="A trained RM of the same architecture.")
    parser.add_argument("--words", type=int, default=48)
    parser.add_argument("--prompts", type=int, default=1)
    parser.add_argument("--patches-per-pass", type=int, default=1)
    parser.add_argument("--plain-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--repeats", type=int, default=1, help="Alternate fast/plain this many times; min is kept."
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    base = load_model(ModelSpec(args.base, kind="lm", dtype="float32"))
    rm = (
        load_model(ModelSpec(args.rm, kind="rm", dtype="float32"))
        if args.rm
        else perturbed_rm(args.base, seed=0)
    )
    check_pair(base, rm)
    readout = reward_readout(rm)
    words = benchmark_words(args.words)
    items = build_items(rm, paper_prompts()[: args.prompts], words)
    patches = [PatchSpec("resid_pre", layer) for layer in range(rm.n_layers)]

    seqs, order = items.sequences()

    def run_fast():
        return patch_sweep(rm, base, readout, items, patches, args.patches_per_pass)

    def run_plain():
        return plain_patched_scores(
            rm, base, seqs, patches, readout, rm.tokenizer.pad_token_id, args.plain_batch, rm.device
        )

    timings: dict[str, list[tuple[float, float]]] = {"fast": [], "plain": []}
    for rep in range(args.repeats):
        order_of_runs = ("fast", "plain") if rep % 2 == 0 else ("plain", "fast")
        for which in order_of_runs:
            wall, cpu = time.perf_counter(), time.process_time()
            if which == "fast":
                fast = run_fast()
            else:
                plain, clean = run_plain()
            timings[which].append((time.perf_counter() - wall, time.process_time() - cpu))
    t_fast, c_fast = (min(t[i] for t in timings["fast"]) for i in (0, 1))
    t_plain, c_plain = (min(t[i] for t in timings["plain"]) for i in (0, 1))
    diff = float(np.nanmax(np.abs(plain.numpy() - fast.patched[:, order])))
    spread = float(np.nanstd(fast.patched))
    result = {
        "base": args.base,
        "rm": args.rm or f"{args.base} + seeded random head + 2% weight noise",
        "device": str(rm.device),
        "threads": args.threads,
        "n_items": len(seqs),
        "prompt_tokens": len(items.groups[0].prefix),
        "patches": len(patches),
        "patches_per_pass": args.patches_per_pass,
        "repeats": args.repeats,
        "seconds_plain": round(t_plain, 2),
        "seconds_fast": round(t_fast, 2),
        "speedup": round(t_plain / t_fast, 2),
        "cpu_seconds_plain": round(c_plain, 2),
        "cpu_seconds_fast": round(c_fast, 2),
        "speedup_cpu_time": round(c_plain / c_fast, 2),
        "max_abs_diff": diff,
        "score_spread_sd": spread,
        "self_test": fast.self_test.passed,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    if diff > 1e-4 * max(1.0, spread):
        raise SystemExit(f"fast and plain sweeps disagree by {diff:.3g}")
    return result


if __name__ == "__main__":
    main()

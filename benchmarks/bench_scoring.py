"""Exhaustive-sweep throughput: prefix-cached vs naive scoring, against measured matmul throughput.

Run: ``.venv/bin/python benchmarks/bench_scoring.py [--model smollm2-135m-instruct] [--n 2048]``

Everything is measured in the same run on the same machine:

- ``matmul``: float32 GEMM throughput (best of a few square and model-shaped products), FLOP/s;
- ``naive``: each full conversation's exact ids, right-padded in batches (``score_full_sequences``);
- ``cached``: the shared prefix once, then only [token, <end of turn> ...] per candidate;
- ``cached bf16``: the same in bfloat16;
- achieved fraction = 2 x non-embedding parameters x tokens processed / time / matmul FLOP/s;
- the FAccT route (decode each token id, re-render the chat template, re-tokenise) against exact
  ids: how many candidates get different ids and the largest reward difference.

The RM is the model with a seeded random score head (``--random-head 0``): same FLOPs as a
trained head. Prints one JSON object (and a readable table on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interp.formatting import conversation_format  # noqa: E402
from interp.models.loading import ModelSpec, load_model  # noqa: E402
from interp.scoring import score_candidates, score_full_sequences  # noqa: E402

PROMPT = "What, in one word, is the greatest thing ever?"


def matmul_flops(seconds: float = 3.0, dtype: torch.dtype = torch.float32) -> float:
    """Best GEMM throughput in ``dtype`` over a few square and model-shaped products (FLOP/s)."""
    best = 0.0
    for m, k, n in ((2048, 2048, 2048), (3072, 576, 1536), (4096, 1536, 576)):
        a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        a @ b  # warm-up
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 3:
            a @ b
            reps += 1
        best = max(best, 2 * m * k * n * reps / (time.perf_counter() - start))
    return best


def non_embedding_params(loaded) -> int:
    emb = loaded.model.get_input_embeddings().weight.numel()
    head = loaded.reward_layout.head(loaded.model).weight.numel()
    return sum(p.numel() for p in loaded.model.parameters()) - emb - head


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def facct_route_ids(loaded, token_id: int) -> list[int]:
    """The FAccT paper's route: decode the token, render the template, tokenise the string."""
    tok = loaded.tokenizer
    text = tok.apply_chat_template(
        [
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": tok.decode([token_id])},
        ],
        tokenize=False,
    )
    return list(tok(text, add_special_tokens=False).input_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=2048, help="candidates for the cached path")
    parser.add_argument("--n-naive", type=int, default=192, help="candidates for the naive path")
    parser.add_argument("--batch-size", type=int, default=None, help="cached path batch size")
    parser.add_argument("--facct", type=int, default=2000, help="tokens for the FAccT-route check")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rm = load_model(ModelSpec(args.model, kind="rm", random_head_seed=0))
    fmt = conversation_format(rm, PROMPT)
    vocab = min(len(rm.tokenizer), rm.vocab_size)
    stride = max(1, vocab // args.n)
    candidates = [[t] for t in range(0, vocab, stride)][: args.n]
    naive_candidates = candidates[: args.n_naive]
    params = non_embedding_params(rm)
    peak = matmul_flops()

    score_candidates(rm, fmt, candidates[:64], batch_size=args.batch_size)  # warm-up
    cached, t_cached = timed(
        lambda: score_candidates(rm, fmt, candidates, batch_size=args.batch_size)
    )
    full_ids = [fmt.full_ids(c) for c in naive_candidates]
    naive, t_naive = timed(lambda: score_full_sequences(rm, full_ids, batch_size=16))
    agree = (cached[: len(naive)] - naive).abs().max().item()

    suffix_tokens = 1 + len(fmt.suffix_ids)
    rate_cached = len(candidates) / t_cached
    rate_naive = len(naive_candidates) / t_naive
    flops_cached = 2 * params * suffix_tokens * len(candidates) / t_cached
    flops_naive = 2 * params * sum(len(s) for s in full_ids) / t_naive

    rm_bf16 = load_model(ModelSpec(args.model, kind="rm", random_head_seed=0, dtype="bfloat16"))
    score_candidates(rm_bf16, fmt, candidates[:64], batch_size=args.batch_size)
    bf16, t_bf16 = timed(
        lambda: score_candidates(rm_bf16, fmt, candidates, batch_size=args.batch_size)
    )

    facct_tokens = list(range(0, vocab, max(1, vocab // args.facct)))[: args.facct]
    exact = score_candidates(rm, fmt, [[t] for t in facct_tokens])
    routed_ids = [facct_route_ids(rm, t) for t in facct_tokens]
    differs = [i for i, t in enumerate(facct_tokens) if routed_ids[i] != fmt.full_ids([t])]
    routed = score_full_sequences(rm, [routed_ids[i] for i in differs], batch_size=16)
    gaps = (routed - exact[differs]).abs() if differs else torch.zeros(1)
    worst = int(torch.argmax(gaps)) if differs else None

    result = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "prefix_tokens": len(fmt.prefix_ids),
        "suffix_tokens_per_candidate": suffix_tokens,
        "non_embedding_params": params,
        "matmul_gflops": peak / 1e9,
        "naive_candidates_per_s": rate_naive,
        "cached_candidates_per_s": rate_cached,
        "cached_bf16_candidates_per_s": len(candidates) / t_bf16,
        "speedup_cached_over_naive": rate_cached / rate_naive,
        "cached_fraction_of_matmul": flops_cached / peak,
        "naive_fraction_of_matmul": flops_naive / peak,
        "cached_vs_naive_max_abs_diff": agree,
        "bf16_vs_fp32_max_abs_diff": (bf16 - cached).abs().max().item(),
        "full_vocab_sweep_minutes_one_prompt": vocab / rate_cached / 60,
        "facct_route_tokens_checked": len(facct_tokens),
        "facct_route_tokens_with_different_ids": len(differs),
        "facct_route_max_reward_diff": gaps.max().item(),
        "facct_route_worst_token": rm.tokenizer.convert_ids_to_tokens(
            [facct_tokens[differs[worst]]]
        )[0]
        if differs
        else None,
    }
    for key, value in result.items():
        print(
            f"{key:42s} {value:.4g}" if isinstance(value, float) else f"{key:42s} {value}",
            file=sys.stderr,
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

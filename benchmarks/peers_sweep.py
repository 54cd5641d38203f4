"""Peer benchmark, part 4: the exhaustive one-token sweep, three routes, float32 and bfloat16.

The RM of ``bench_scoring.py`` (``smollm2-135m-instruct`` with a seeded random score head) scores
vocabulary tokens as one-token answers to the paper's ``greatest_ever_one`` prompt:

- ``valuebias``: ``interp.scoring.score_candidates`` (the prompt prefix once, then only
  ``[token, <end of turn> ...]`` per candidate);
- ``plain HF, exact ids``: each candidate's whole conversation ids (prefix + token + suffix),
  batched, right-padded, ``model(input_ids, attention_mask).logits[:, 0]``;
- ``FAccT route``: the FAccT paper's way: decode the token, render the chat template around the
  string, re-tokenise the text, batch with the tokenizer's padding, same model call.

Reported per route and dtype: candidates per second, and the fraction of the GEMM throughput of
that dtype measured in the same run (``2 x non-embedding parameters x tokens run / seconds``; real
tokens only, pads not counted), with the agreement of the rewards with valuebias's (the FAccT
route also counts the candidates whose re-tokenised ids differ from the exact ids). Usage:
``python benchmarks/peers_sweep.py --json-out R.json [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_scoring import PROMPT, facct_route_ids, matmul_flops, non_embedding_params  # noqa: E402
from peers_common import Measured, agreement, method, write_json  # noqa: E402

MODEL = "smollm2-135m-instruct"
TOLERANCES = {"float32": 1e-4, "bfloat16": 5e-2}


def plain_hf(rm, sequences: list[list[int]], batch_size: int) -> torch.Tensor:
    """Whole sequences, right-padded in batches, the model's own pooled reward."""
    from interp.batching import right_pad

    out = []
    for i in range(0, len(sequences), batch_size):
        batch = right_pad(sequences[i : i + batch_size], rm.tokenizer.pad_token_id)
        out.append(rm.model(**batch.model_inputs(), use_cache=False).logits[:, 0].float())
    return torch.cat(out)


def facct_route(rm, token_ids: list[int], batch_size: int) -> tuple[torch.Tensor, list[list[int]]]:
    """Decode, re-template, re-tokenise (``bench_scoring.facct_route_ids``), batch; rewards, ids."""
    tok = rm.tokenizer
    ids = [facct_route_ids(rm, t) for t in token_ids]
    out = []
    for i in range(0, len(ids), batch_size):
        enc = tok.pad({"input_ids": ids[i : i + batch_size]}, return_tensors="pt")
        out.append(rm.model(**enc, use_cache=False).logits[:, 0].float())
    return torch.cat(out), ids


def main(argv: list[str] | None = None) -> dict:
    from interp.formatting import conversation_format
    from interp.models.loading import ModelSpec, load_model
    from interp.scoring import score_candidates

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1536, help="candidates for valuebias")
    ap.add_argument("--n-peer", type=int, default=192, help="candidates for each peer route")
    ap.add_argument("--batch", type=int, default=32, help="peers' batch size")
    ap.add_argument("--quick", action="store_true", help="64 / 16 candidates")
    ap.add_argument("--json-out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.n_peer = 64, 16
    torch.set_num_threads(2)
    results, peaks = [], {}
    for dtype in ("float32", "bfloat16"):
        torch_dtype = getattr(torch, dtype)
        peaks[dtype] = matmul_flops(1.0 if args.quick else 3.0, torch_dtype)
        rm = load_model(ModelSpec(MODEL, kind="rm", random_head_seed=0, dtype=dtype))
        fmt = conversation_format(rm, PROMPT)
        vocab = min(len(rm.tokenizer), rm.vocab_size)
        tokens = list(range(0, vocab, max(1, vocab // args.n)))[: args.n]
        peer_tokens = tokens[:: max(1, len(tokens) // args.n_peer)][: args.n_peer]
        params = non_embedding_params(rm)
        exact = [fmt.full_ids([t]) for t in peer_tokens]
        with torch.no_grad():
            score_candidates(rm, fmt, [[t] for t in tokens[:32]])  # warm-up
            plain_hf(rm, exact[:4], args.batch)
            with Measured() as clock:
                ours = score_candidates(rm, fmt, [[t] for t in tokens])
            run = len(fmt.prefix_ids) + len(tokens) * (1 + len(fmt.suffix_ids))
            results.append(method("valuebias", f"score_candidates, {dtype}", clock, len(tokens),
                                  dtype=dtype, tokens_run=run,
                                  fraction_of_matmul=2 * params * run / clock.wall_s / peaks[dtype]))  # fmt: skip
            reference = ours[[tokens.index(t) for t in peer_tokens]]
            with Measured() as clock:
                plain = plain_hf(rm, exact, args.batch)
            run = sum(map(len, exact))
            entry = method("transformers", f"plain HF, exact ids, {dtype}", clock, len(exact),
                           dtype=dtype, tokens_run=run,
                           fraction_of_matmul=2 * params * run / clock.wall_s / peaks[dtype])  # fmt: skip
            entry["agreement"] = agreement(reference, plain, TOLERANCES[dtype])
            results.append(entry)
            with Measured() as clock:
                routed, ids = facct_route(rm, peer_tokens, args.batch)
            run = sum(map(len, ids))
            entry = method("FAccT route", f"decode, re-template, re-tokenise, {dtype}", clock,
                           len(ids), dtype=dtype, tokens_run=run,
                           fraction_of_matmul=2 * params * run / clock.wall_s / peaks[dtype])  # fmt: skip
            same = [a == b for a, b in zip(ids, exact, strict=True)]
            entry["different_ids"] = same.count(False)
            entry["agreement"] = agreement(reference, routed, TOLERANCES[dtype])
            entry["agreement_where_ids_equal"] = agreement(
                reference[torch.tensor(same)], routed[torch.tensor(same)], TOLERANCES[dtype]
            )
            results.append(entry)
        del rm
    part = {
        "work": "exhaustive sweep",
        "unit": "candidates/s",
        "settings": {
            "model": f"{MODEL} + seeded random head",
            "prompt": PROMPT,
            "candidates": args.n,
            "peer_candidates": args.n_peer,
            "peer_batch": args.batch,
            "reference": "valuebias score_candidates",
        },  # fmt: skip
        "matmul_gflops": {k: v / 1e9 for k, v in peaks.items()},
        "methods": results,
        "notes": [
            "fraction_of_matmul counts the tokens each route runs: valuebias runs the prompt "
            "once and 3 tokens per candidate, the peers the whole conversation per candidate",
            "the FAccT route disagrees only where re-tokenising the decoded string gives other "
            "ids (different_ids); agreement_where_ids_equal compares the rest",
        ],
    }
    write_json(args.json_out, part)
    return part


if __name__ == "__main__":
    main()

"""One prepared GPU check for a lent device, in one call, time-boxed well under 10 minutes.

Run on the device: ``python benchmarks/gpu_oneshot.py --out "$OUT" [--budget-s 420]``; on a CPU
(the tests): ``python benchmarks/gpu_oneshot.py --tiny --out DIR`` (tiny shapes, same code path).

Nothing is downloaded (the device has no network): the model is ``gemma3-270m``'s shape (18
blocks, d=640, 4 query heads / 1 key-value head of 256, sliding windows of 512 in 5 of every 6
blocks, vocabulary 262,144) with seeded random weights, as a reward model (linear score head),
and token ids stand in for text (a 40-token prompt prefix, 2 closing ids). Phases, each skipped
when the time budget is spent:

1. ``matmul``: the device's measured float32 and bfloat16 matmul throughput (FLOP/s, 8192^2
   GEMMs);
2. ``sweep``: the full 262,144-token exhaustive sweep for one prompt (``score_candidates``,
   prefix-cached), float32 and bfloat16: candidates/s and the fraction of the measured matmul
   throughput the sweep's FLOPs reach (2 x block parameters x suffix tokens + attention over the
   prefix, per candidate);
3. ``caching``: prefix-cached against full-sequence activation caching of 2,048 items, every
   block's ``resid_post`` at the last token, with the largest value difference;
4. ``patching``: a patching sweep (resid_pre, every block, last position) of one random model
   into another, with its self-test.

Results go to ``OUT/gpu_results.json`` and ``OUT/gpu_<device>.txt`` (commit the latter under
``benchmarks/results/``). Nothing in CI depends on this script except its ``--tiny`` test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activations.cache import cache_activations  # noqa: E402
from activations.items import ItemPlan, ResponseWords  # noqa: E402
from activations.manifest import CacheSettings  # noqa: E402
from interp.formatting import ConversationFormat  # noqa: E402
from interp.models.loading import LoadedModel, ModelSpec  # noqa: E402
from interp.models.readout import reward_readout  # noqa: E402
from interp.models.registry import LINEAR_LAYOUTS  # noqa: E402
from interp.patching.items import Items, group_items  # noqa: E402
from interp.patching.specs import make_patches  # noqa: E402
from interp.patching.sweep import patch_sweep  # noqa: E402
from interp.prompts import Prompt  # noqa: E402
from interp.scoring import score_candidates  # noqa: E402
from interp.sites import make_sites  # noqa: E402

GEMMA3_270M = dict(vocab_size=262144, hidden_size=640, intermediate_size=2048,
                   num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1,
                   head_dim=256, sliding_window=512, max_position_embeddings=32768,
                   query_pre_attn_scalar=256)  # fmt: skip
TINY = dict(vocab_size=800, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16,
            max_position_embeddings=512, query_pre_attn_scalar=32)  # fmt: skip


class SyntheticTokenizer:
    """Just what the caching manifest and padding need from a tokenizer (ids stand in for text)."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size, self.pad_token_id, self.chat_template = vocab_size, 0, None

    def get_vocab(self) -> dict[str, int]:
        return {f"<{i}>": i for i in range(self.vocab_size)}

    def __call__(self, text: str, add_special_tokens: bool = True):
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=[10 + (ord(c) % 50) for c in text])

    def __len__(self) -> int:
        return self.vocab_size


def random_rm(shape: dict, dtype: torch.dtype, device: torch.device, seed: int) -> LoadedModel:
    from transformers import AutoModelForSequenceClassification, Gemma3TextConfig

    n = shape["num_hidden_layers"]
    config = Gemma3TextConfig(**shape, num_labels=1, pad_token_id=0,
                              layer_types=[("full_attention" if (i + 1) % 6 == 0 else
                                            "sliding_attention") for i in range(n)])  # fmt: skip
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config).to(device=device, dtype=dtype)
    model.eval()
    return LoadedModel(
        spec=ModelSpec(f"gemma3-270m-shape-random-{seed}", kind="rm"), name=f"random-{seed}",
        source="random", model=model, tokenizer=SyntheticTokenizer(shape["vocab_size"]),
        kind="rm", family="Gemma", n_layers=n, d_model=shape["hidden_size"],
        vocab_size=shape["vocab_size"], template_mode="gemma-turns", fingerprint=f"random{seed}",
        device=device, dtype=dtype, reward_layout=LINEAR_LAYOUTS[0],
    )  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps, t0 = 5, time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def sweep_flops_per_candidate(loaded: LoadedModel, prefix: int, suffix: int) -> float:
    block = sum(p.numel() for n, p in loaded.backbone.named_parameters() if "layers." in n)
    config = loaded.model.config
    attention = 4 * config.num_hidden_layers * config.num_attention_heads * config.head_dim
    return 2 * block * suffix + attention * (prefix + suffix) * suffix


def phase_sweep(shape, device, dtype, peak: float, prefix_len: int) -> dict:
    loaded = random_rm(shape, dtype, device, seed=0)
    ids = torch.randint(10, shape["vocab_size"], (prefix_len,)).tolist()
    fmt = ConversationFormat("gemma-turns", tuple(ids), (1, 2), "")
    candidates = [[t] for t in range(shape["vocab_size"])]
    score_candidates(loaded, fmt, candidates[:4096])  # warm-up (kernels, allocator)
    sync(device)
    t0 = time.perf_counter()
    scores = score_candidates(loaded, fmt, candidates)
    sync(device)
    seconds = time.perf_counter() - t0
    rate = len(candidates) / seconds
    flops = sweep_flops_per_candidate(loaded, prefix_len, 3) * rate
    del loaded
    return {"candidates": len(candidates), "seconds": round(seconds, 3),
            "candidates_per_s": round(rate, 1), "achieved_flops": flops,
            "fraction_of_matmul_peak": round(flops / peak, 4),
            "finite": bool(torch.isfinite(scores).all())}  # fmt: skip


def phase_caching(shape, device, n_items: int, prefix_len: int) -> dict:
    loaded = random_rm(shape, torch.float32, device, seed=0)
    n_words = 256
    gen = torch.Generator().manual_seed(1)
    words = tuple(f"w{i}" for i in range(n_words))
    prompts = tuple(Prompt(f"p{i}", f"prompt {i}") for i in range(max(1, n_items // n_words)))
    plan = ItemPlan(
        prompts=prompts, responses=ResponseWords("synthetic", words, ("",) * n_words, {}),
        prefix=tuple(tuple(torch.randint(10, shape["vocab_size"], (prefix_len,), generator=gen).tolist())
                     for _ in prompts),
        suffix=tuple((1, 2) for _ in prompts),
        word_ids=tuple(tuple(torch.randint(10, shape["vocab_size"], (1 + i % 3,), generator=gen).tolist())
                       for i in range(n_words)),
        template="gemma-turns",
    )  # fmt: skip
    sites = make_sites(["resid_post"], range(loaded.n_layers))
    out: dict = {"items": plan.n_items, "sites": len(sites)}
    stores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for route in ("full-sequence", "prefix-cached"):
            settings = CacheSettings(sites, "last", "float32", "torch", route=route)
            sync(device)
            t0 = time.perf_counter()
            cache_activations(loaded, plan, settings, Path(tmp) / f"{route}.h5")
            sync(device)
            out[f"{route}_s"] = round(time.perf_counter() - t0, 3)
            import h5py

            with h5py.File(Path(tmp) / f"{route}.h5") as f:
                stores[route] = {k: f[f"acts/{k}"][:] for k in f["acts"]}
    out["speedup"] = round(out["full-sequence_s"] / out["prefix-cached_s"], 2)
    out["max_abs_diff"] = float(max(abs(stores["full-sequence"][k] - stores["prefix-cached"][k]).max()
                                    for k in stores["full-sequence"]))  # fmt: skip
    return out


def phase_patching(shape, device, n_words: int, prefix_len: int) -> dict:
    rm = random_rm(shape, torch.float32, device, seed=0)
    base = random_rm(shape, torch.float32, device, seed=1)
    gen = torch.Generator().manual_seed(2)
    prefix = torch.randint(10, shape["vocab_size"], (prefix_len,), generator=gen).tolist()
    suffixes = [
        [int(t), 1, 2] for t in torch.randint(10, shape["vocab_size"], (n_words,), generator=gen)
    ]
    import pandas as pd

    table = pd.DataFrame({"item": range(n_words), "prompt_key": "p", "framing": "none",
                          "response": [str(s[0]) for s in suffixes], "n_tokens": 1})  # fmt: skip
    items = Items(tuple(group_items([(prefix, suffixes)])), table, "gemma-turns")
    patches = make_patches(["resid_pre"], range(rm.n_layers), [-1])
    sync(device)
    t0 = time.perf_counter()
    result = patch_sweep(rm, base, reward_readout(rm), items, patches)
    sync(device)
    return {"patches": len(patches), "items": n_words, "seconds": round(time.perf_counter() - t0, 3),
            "self_test_passed": result.self_test.passed,
            "stacked_patches_per_pass": result.group_size}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (tests on a CPU)")
    ap.add_argument("--budget-s", type=float, default=420.0)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = TINY if args.tiny else GEMMA3_270M
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results: dict = {"device": name, "tiny": args.tiny, "torch": torch.__version__, "phases": {}}
    n = 256 if args.tiny else 8192
    phases = {
        "matmul": lambda: {str(dt).removeprefix("torch."): matmul_flops(device, dt, n)
                           for dt in (torch.float32, torch.bfloat16)},  # FLOP/s  # fmt: skip
        "sweep_float32": lambda: phase_sweep(shape, device, torch.float32,
                                             results["phases"]["matmul"]["float32"], 40),
        "sweep_bfloat16": lambda: phase_sweep(shape, device, torch.bfloat16,
                                              results["phases"]["matmul"]["bfloat16"], 40),
        "caching": lambda: phase_caching(shape, device, 256 if args.tiny else 2048, 40),
        "patching": lambda: phase_patching(shape, device, 8 if args.tiny else 256, 40),
    }  # fmt: skip
    for phase, run in phases.items():
        if time.perf_counter() - started > args.budget_s:
            results["phases"][phase] = "skipped: time budget spent"
            continue
        t0 = time.perf_counter()
        try:
            results["phases"][phase] = run()
        except Exception as err:  # a device check reports every phase, whatever fails
            results["phases"][phase] = f"failed: {type(err).__name__}: {err}"
        print(f"{phase}: {results['phases'][phase]} ({time.perf_counter() - t0:.1f}s)", flush=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_results.json").write_text(json.dumps(results, indent=1) + "\n")
    label = name.replace(" ", "_").replace("/", "_")
    lines = [f"{k}: {v}" for k, v in results["phases"].items()]
    (args.out / f"gpu_{label}.txt").write_text(
        f"# benchmarks/gpu_oneshot.py on {name} (torch {torch.__version__}), "
        f"{results['seconds']} s\n" + "\n".join(lines) + "\n"
    )
    return results


if __name__ == "__main__":
    main()

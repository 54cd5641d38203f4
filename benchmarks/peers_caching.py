"""Peer benchmark, part 1: caching every block's ``resid_post`` at the last position to HDF5.

Same items (``smollm2-135m-instruct``, paper prompts x Big Two words, chat-templated exact ids),
same sites (all 30 ``blocks.{l}.hook_resid_post``), same positions (each item's last token), same
batches (the batch size valuebias picks, right-padded exact ids), float32 stores:

- ``valuebias full-sequence`` / ``valuebias prefix-cached``: ``activations.cache.cache_activations``
  (what ``cache-activations`` runs; default nnsight backend; its store is chunked and gzipped);
- ``TransformerLens``: ``TransformerBridge.boot_transformers`` over the loaded model, then per
  batch ``run_with_cache(ids, attention_mask=..., names_filter=<the resid_post hooks>)``, the last
  positions moved to the CPU and written with h5py, as a user would;
- ``nnsight``: a ``TransformersModel`` trace per batch with ``.save()`` on every layer's output
  (the last positions), written with h5py;
- ``HF hidden states``: ``model(..., output_hidden_states=True)`` per batch, ``hidden_states[1:]``
  written with h5py. HF applies the final norm to the last entry, so its last layer is *not*
  ``resid_post`` of the last block: the agreement says so, layer by layer.

Each method runs in a child process of its own (a warm-up batch first), so its peak memory is its
own. Usage: ``python benchmarks/peers_caching.py --json-out R.json [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_activations import MODEL, WORDS  # noqa: E402
from peers_common import Measured, agreement, failed, method, write_json  # noqa: E402

METHODS = ("valuebias-full", "valuebias-prefix", "transformerlens", "nnsight", "hf-hidden")
TOOLS = {
    "valuebias-full": ("valuebias", "cache_activations, full-sequence"),
    "valuebias-prefix": ("valuebias", "cache_activations, prefix-cached"),
    "transformerlens": ("TransformerLens", "TransformerBridge.run_with_cache + h5py"),
    "nnsight": ("nnsight", "trace, .save() on every layer + h5py"),
    "hf-hidden": ("transformers", "output_hidden_states=True + h5py"),
}
TOLERANCE = 5e-4  # relative to max(1, |value|): float32 rounding of other kernels and batch shapes


def build(n_prompts: int, n_words: int):
    """The model, the item plan (prompts spread over adjectives and framings) and the sites."""
    from activations.items import plan_items
    from analyses.inputs.prompts import paper_prompts
    from analyses.inputs.responses import response_words
    from interp.models.loading import ModelSpec, load_model
    from interp.sites import make_sites

    torch.set_num_threads(2)
    loaded = load_model(ModelSpec(MODEL, kind="lm", dtype="float32"))
    prompts = paper_prompts()
    chosen = prompts[:: max(1, len(prompts) // n_prompts)][:n_prompts]
    words = response_words(WORDS)
    words = type(words)(words.source, words.words[:n_words], words.categories[:n_words], {})
    plan = plan_items(loaded, chosen, words)
    return loaded, plan, make_sites(["resid_post"], range(loaded.n_layers))


def batches(loaded, plan, batch_size: int):
    """Right-padded exact ids in the fixed index ranges valuebias uses."""
    from interp.batching import right_pad

    pad = loaded.tokenizer.pad_token_id
    for lo in range(0, plan.n_items, batch_size):
        hi = min(plan.n_items, lo + batch_size)
        yield lo, right_pad([plan.sequence(i) for i in range(lo, hi)], pad)


class UserStore:
    """What a user writes with h5py: one float32 dataset per site, ``[n_items, d_model]``."""

    def __init__(self, path: Path, names: list[str], n: int, d: int) -> None:
        self.f = h5py.File(path, "w")
        self.sets = [
            self.f.create_dataset(f"acts/{name}", (n, d), dtype="float32") for name in names
        ]

    def write(self, lo: int, per_site: list[torch.Tensor]) -> None:
        for ds, rows in zip(self.sets, per_site, strict=True):
            ds[lo : lo + rows.shape[0]] = rows.detach().float().cpu().numpy()

    def close(self) -> None:
        self.f.close()


def peer_runner(name: str, loaded, names: list[str]):
    """``run(batch) -> list of [B, d] last-position tensors, one per site`` for a peer."""
    model = loaded.model
    last = len(names)

    if name == "transformerlens":
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(
            loaded.source, hf_model=model, tokenizer=loaded.tokenizer, device=loaded.device,
            dtype=loaded.dtype,
        )  # fmt: skip
        wanted = set(names)

        def run(batch):
            rows = torch.arange(batch.size)
            _, cache = bridge.run_with_cache(
                batch.input_ids, attention_mask=batch.attention_mask,
                names_filter=lambda n: n in wanted,
            )  # fmt: skip
            return [cache[n][rows, batch.lengths - 1].cpu() for n in names]

        return run
    if name == "nnsight":
        from nnsight import TransformersModel

        wrapped = TransformersModel(model, tokenizer=loaded.tokenizer, task="text-generation")

        def run(batch):
            rows, at = torch.arange(batch.size), batch.lengths - 1
            saved: list = []
            with wrapped.trace(batch.model_inputs(), use_cache=False):
                for layer in range(last):
                    saved.append(wrapped.model.layers[layer].output[rows, at].save())
            return saved

        return run
    if name == "hf-hidden":

        def run(batch):
            rows = torch.arange(batch.size)
            out = model(**batch.model_inputs(), output_hidden_states=True, use_cache=False)
            return [h[rows, batch.lengths - 1] for h in out.hidden_states[1:]]

        return run
    raise ValueError(name)


def child(name: str, n_prompts: int, n_words: int, out: Path, result: Path) -> None:
    """Run one method end to end on the items (after a warm-up batch); write its measurement."""
    from activations.cache import cache_activations, default_batch_size
    from activations.items import plan_items
    from activations.manifest import CacheSettings

    loaded, plan, sites = build(n_prompts, n_words)
    batch_size = default_batch_size(loaded, plan)
    names = [s.name for s in sites]
    tool, route = TOOLS[name]
    with torch.no_grad():
        if name.startswith("valuebias"):
            kind = "full-sequence" if name.endswith("full") else "prefix-cached"
            settings = CacheSettings(sites, "last", "float32", "nnsight", batch_size, route=kind)
            words = plan.responses
            few = type(words)(words.source, words.words[:8], words.categories[:8], {})
            warm = plan_items(loaded, plan.prompts[:1], few)
            cache_activations(loaded, warm, settings, out.with_suffix(".warm.h5"))
            with Measured() as clock:
                cache_activations(loaded, plan, settings, out)
        else:
            run = peer_runner(name, loaded, names)
            run(next(batches(loaded, plan, batch_size))[1])  # warm-up
            with Measured() as clock:
                store = UserStore(out, names, plan.n_items, loaded.d_model)
                for lo, batch in batches(loaded, plan, batch_size):
                    store.write(lo, run(batch))
                store.close()
    tokens = int(plan.lengths().sum())
    write_json(result, method(tool, route, clock, plan.n_items, batch_size=batch_size,
                              tokens=tokens, store_mib=round(out.stat().st_size / 2**20, 2)))  # fmt: skip


def read_store(path: Path, names: list[str]) -> np.ndarray:
    """``[n_sites, n_items, d]`` float32 from a store written by any method."""
    with h5py.File(path, "r") as f:
        return np.stack([f[f"acts/{n}"][:] for n in names])


def compare(reference: np.ndarray, other: np.ndarray) -> dict:
    """Agreement over all sites, over all but the last, and per site (max abs diff)."""
    out = agreement(reference, other, TOLERANCE)
    out["all_but_last_site"] = agreement(reference[:-1], other[:-1], TOLERANCE)
    out["per_site_max_abs_diff"] = [
        float(np.abs(r - o).max()) for r, o in zip(reference, other, strict=True)
    ]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--words", type=int, default=96)
    ap.add_argument("--quick", action="store_true", help="1 prompt x 8 words")
    ap.add_argument("--json-out", type=Path, required=True)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.prompts, args.words = 1, 8
    if args.child:
        child(args.child, args.prompts, args.words, args.store, args.json_out)
        return {}
    results, stores = [], {}
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(30)]
    with tempfile.TemporaryDirectory() as tmp:
        for name in METHODS:
            store, res = Path(tmp) / f"{name}.h5", Path(tmp) / f"{name}.json"
            done = subprocess.run(
                [sys.executable, __file__, "--child", name, "--store", str(store),
                 "--json-out", str(res), "--prompts", str(args.prompts), "--words", str(args.words)],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode != 0 or not res.is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                results.append(failed(*TOOLS[name], RuntimeError(tail[0])))
                continue
            results.append(json.loads(res.read_text()))
            stores[name] = read_store(store, names)
            print(f"caching {name}: {results[-1]['wall_s']} s", file=sys.stderr, flush=True)
        reference = stores.get("valuebias-full")
        for name, entry in zip(METHODS, results, strict=True):
            if reference is not None and name in stores and name != "valuebias-full":
                entry["agreement"] = compare(reference, stores[name])
    part = {
        "work": "activation caching",
        "unit": "items/s",
        "settings": {
            "model": MODEL,
            "prompts": args.prompts,
            "words": args.words,
            "sites": "all 30 resid_post",
            "positions": "last",
            "store_dtype": "float32",
            "reference": "valuebias full-sequence",
        },  # fmt: skip
        "methods": results,
        "notes": [
            "HF hidden_states[-1] is after the final norm, not resid_post of the last block: "
            "see agreement.per_site_max_abs_diff (all_but_last_site compares the rest)",
            "valuebias stores are chunked and gzip-compressed (store_mib); the peers' h5py "
            "writes are plain, as a user would write them",
            "the peers run the whole model, logits of every position included, as a plain call "
            "does; valuebias stops after the last block it reads",
        ],
    }
    write_json(args.json_out, part)
    return part


if __name__ == "__main__":
    main()

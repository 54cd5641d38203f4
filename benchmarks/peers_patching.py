"""Peer benchmark, part 2: a residual patching sweep over every layer, base -> RM.

The pair of ``bench_patching.py``: ``smollm2-135m-instruct`` as the base (source) and the same
weights with a seeded random score head and 2% seeded weight noise as the RM (receiver). Items:
one paper prompt x ``--words`` Big Two words. Patch ``p_l``: the base's ``resid_pre`` of block ``l``
(all positions) replaces the RM's, for every block; the effect of ``p_l`` on an item is the RM's
patched reward minus its clean reward.

- ``valuebias``: ``interp.patching.sweep.patch_sweep`` (shared prefix once per model, each patch
  starts at block ``l`` from the cached residual; its time includes the exact self-test and the
  value lens of both models);
- ``TransformerLens``: the bridge cannot load a ``*ForSequenceClassification`` model, so, as a TL
  user would have to, the RM's trunk is put in the base's causal-LM class with the RM's score head
  as its ``lm_head`` (so the "logits" are the RM's readout, one per position), both models are
  booted with ``TransformerBridge.boot_transformers``, the base's ``resid_pre`` hooks are cached
  with ``run_with_cache(names_filter=...)`` and ``transformer_lens.patching.
  generic_activation_patch`` runs one patched forward per layer (a whole-activation patch setter,
  ``reduce="none"`` for per-item values, ``baseline=True`` for the clean run), right-padded exact
  ids, metric = the readout at each row's last real token;
- ``nnsight``: a plain intervention loop: one trace of the base saving every block's input, then
  per layer one trace of the RM with that block's input set to the saved value.

Usage: ``python benchmarks/peers_patching.py --json-out R.json [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_patching import benchmark_words, perturbed_rm  # noqa: E402
from peers_common import Measured, agreement, failed, method, write_json  # noqa: E402

BASE = "smollm2-135m-instruct"
TOLERANCE = 1e-4  # relative to max(1, |reward|)


def receiver_as_causal_lm(rm):
    """The RM's trunk in its base's causal-LM class, with the RM's score head as the unembedding."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        lm = AutoModelForCausalLM.from_config(rm.model.config)
    lm.model = rm.model.base_model
    lm.lm_head = rm.reward_layout.head(rm.model)
    return lm.eval()


def run_tl(base, rm, batches, n_layers: int) -> np.ndarray:
    """``[n_layers + 1, N]``: the clean RM reward (row 0), then each layer's patched reward."""
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge

    def boot(loaded, hf_model):
        return TransformerBridge.boot_transformers(
            loaded.source, hf_model=hf_model, tokenizer=loaded.tokenizer, device=loaded.device,
            dtype=loaded.dtype,
        )  # fmt: skip

    source, receiver = boot(base, base.model), boot(rm, receiver_as_causal_lm(rm))
    names = {f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)}

    def whole(corrupted, index, clean):
        corrupted[...] = clean
        return corrupted

    out = []
    for batch in batches:
        rows, last = torch.arange(batch.size), batch.lengths - 1
        _, cache = source.run_with_cache(batch.input_ids, names_filter=lambda n: n in names)
        result = patching.generic_activation_patch(
            receiver, batch.input_ids, cache, lambda logits, r=rows, t=last: logits[r, t, 0], whole,
            "resid_pre", index_df=pd.DataFrame({"layer": range(n_layers)}), reduce="none",
            baseline=True,
        )  # fmt: skip
        out.append(torch.cat([result.baseline[None], result.values]).float().cpu().numpy())
    return np.concatenate(out, axis=1)


def run_nnsight(base, rm, batches, n_layers: int) -> np.ndarray:
    """``[n_layers + 1, N]`` as ``run_tl``, with a plain nnsight intervention loop."""
    from nnsight import TransformersModel

    src = TransformersModel(base.model, tokenizer=base.tokenizer, task="text-generation")
    rec = TransformersModel(rm.model, tokenizer=rm.tokenizer, task="text-classification")
    out = []
    for batch in batches:
        inputs = batch.model_inputs()
        saved: list = []
        with src.trace(inputs, use_cache=False):
            for layer in range(n_layers):
                saved.append(src.model.layers[layer].input.save())
        scores: list = []
        with rec.trace(inputs, use_cache=False):
            scores.append(rec.output.logits[:, 0].save())
        for layer in range(n_layers):
            with rec.trace(inputs, use_cache=False):
                rec.model.layers[layer].input = saved[layer]
                scores.append(rec.output.logits[:, 0].save())
        out.append(torch.stack(scores).float().cpu().numpy())
    return np.concatenate(out, axis=1)


def main(argv: list[str] | None = None) -> dict:
    from analyses.inputs.prompts import paper_prompts
    from interp.batching import right_pad
    from interp.models.loading import ModelSpec, load_model
    from interp.models.readout import reward_readout
    from interp.patching.items import build_items
    from interp.patching.pair import check_pair
    from interp.patching.specs import PatchSpec
    from interp.patching.sweep import patch_sweep

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--words", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16, help="peers' batch size (right-padded)")
    ap.add_argument("--quick", action="store_true", help="4 words, first 4 layers")
    ap.add_argument("--json-out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    base = load_model(ModelSpec(BASE, kind="lm", dtype="float32"))
    rm = perturbed_rm(BASE, seed=0)
    check_pair(base, rm)
    readout = reward_readout(rm)
    words = benchmark_words(4 if args.quick else args.words)
    items = build_items(rm, paper_prompts()[:1], words)
    n_layers = 4 if args.quick else rm.n_layers
    patches = [PatchSpec("resid_pre", layer) for layer in range(n_layers)]
    seqs, order = items.sequences()
    pad = rm.tokenizer.pad_token_id
    batches = [right_pad(seqs[i : i + args.batch], pad) for i in range(0, len(seqs), args.batch)]
    n = len(seqs)
    work = n * n_layers  # patched item-readings

    with torch.no_grad():
        patch_sweep(rm, base, readout, build_items(rm, paper_prompts()[:1], words[:2]), patches[:1])
        with Measured() as clock:
            ours = patch_sweep(rm, base, readout, items, patches)
        ours_rows = np.concatenate([ours.clean[None], ours.patched])[:, order]
        results = [method("valuebias", "patch_sweep (fast path)", clock, work,
                          self_test=ours.self_test.passed)]  # fmt: skip
        for tool, route, fn in (
            ("nnsight", "trace loop, one RM trace per layer", run_nnsight),
            ("TransformerLens", "bridge + patching.generic_activation_patch", run_tl),
        ):
            try:
                if fn is run_nnsight:  # warm-up; the bridge's boot is timed as a user pays it
                    run_nnsight(base, rm, batches[:1], 1)
                with Measured() as clock:
                    rows = fn(base, rm, batches, n_layers)
            except Exception as err:  # recorded in the results with its reason, never skipped
                results.append(failed(tool, route, err))
                continue
            entry = method(tool, route, clock, work)
            entry["agreement"] = {
                "patched": agreement(ours_rows[1:], rows[1:], TOLERANCE),
                "clean": agreement(ours_rows[0], rows[0], TOLERANCE),
                "effects": agreement(ours_rows[1:] - ours_rows[0], rows[1:] - rows[0], TOLERANCE),
            }
            results.append(entry)
    part = {
        "work": "patching sweep",
        "unit": "patched readings/s",
        "settings": {
            "base": BASE,
            "rm": f"{BASE} + seeded random head + 2% weight noise",
            "items": n,
            "layers": n_layers,
            "site": "resid_pre, all positions",
            "peer_batch": args.batch,
            "reference": "valuebias patch_sweep",
        },  # fmt: skip
        "methods": results,
        "notes": [
            "TransformerLens cannot wrap the RM; the receiver is the RM's trunk in the base's "
            "causal-LM class with the score head as lm_head (booting mutates the model it wraps, "
            "so it runs last)",
            "effect = patched - clean reward per item and layer; valuebias's time includes its "
            "self-test and the value lens of both models",
        ],
    }
    write_json(args.json_out, part)
    return part


if __name__ == "__main__":
    main()

"""Peer benchmark, part 3: the value lens against reward-lens's reward lens, same RM, same words.

The RM of ``peers_patching.py`` (``smollm2-135m-instruct`` + seeded random head + 2% weight noise)
is saved to a local folder; items are one paper prompt x ``--words`` Big Two words.

- ``valuebias``: ``interp.patching.value_lens.value_lens_readings`` (the RM's final norm and head
  applied to the residual stream after each depth ``0..L`` at the last token; depth ``L`` is the
  RM's reward);
- ``reward-lens`` (PyPI ``reward-lens``, the ``bench`` extra): ``signals.load_signal(<folder>)``
  offline, then its reward lens as its ``LensCrystallization`` reads it: ``capture_sites`` at the
  post-embedding residual and every block's ``resid_post`` (final token, fp32), each projected onto
  the reward direction ``w_r`` (the score head's weight row).

Agreement is checked three ways: whether reward-lens tokenised the items to our exact ids; its
readings against the same projection of *our* residuals (``h . w_r``, read with valuebias's site
reader), which shows whether the two tools saw the same activations; and its readings against our
value lens and against the RM's reward at the last depth, which shows what its lens reads. If
reward-lens is missing or cannot load the RM, the reason is recorded. Usage:
``python benchmarks/peers_lens.py --json-out R.json [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_patching import benchmark_words, perturbed_rm  # noqa: E402
from peers_common import Measured, agreement, failed, method, write_json  # noqa: E402
from peers_patching import BASE, TOLERANCE  # noqa: E402


def our_residuals(rm, seqs: list[list[int]]) -> np.ndarray:
    """``[N, L + 1, d]``: the embedding output and each block's ``resid_post`` at the last token."""
    from interp.batching import right_pad
    from interp.sites import Site, SiteReader

    sites = [Site(0, "resid_pre")] + [Site(layer, "resid_post") for layer in range(rm.n_layers)]
    batch = right_pad(seqs, rm.tokenizer.pad_token_id)
    rows, last = torch.arange(batch.size), batch.lengths - 1
    got = SiteReader(rm, "torch").read(batch, sites, lambda s, t: t[rows, last].float())
    return torch.stack([got[s] for s in sites], dim=1).numpy()


def reward_lens_readings(folder: Path, prompt: str, words: list[str]):
    """(load seconds, lens seconds, readings ``[N, L + 1]``, their ids per item)."""
    from reward_lens.measure.battery._common import capture_sites, resid_sites, reward_direction
    from reward_lens.signals.loaders import load_signal

    with Measured() as load:
        signal = load_signal(str(folder))
    items = [(prompt, w) for w in words]
    with Measured() as clock:
        sites = resid_sites(int(signal.meta.n_layers))
        captured = capture_sites(signal, items, sites)
        w_r = reward_direction(signal, "reward").float()
        lens = torch.stack([captured[s].float() @ w_r for s in sites], dim=1).numpy()
    ids = [list(signal.tokenize(item).input_ids) for item in items]
    return load, clock, lens, ids


def main(argv: list[str] | None = None) -> dict:
    from analyses.inputs.prompts import paper_prompts
    from interp.models.readout import reward_readout
    from interp.patching.items import build_items
    from interp.patching.value_lens import value_lens_readings
    from interp.scoring import score_full_sequences

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--words", type=int, default=48)
    ap.add_argument("--quick", action="store_true", help="4 words")
    ap.add_argument("--json-out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rm = perturbed_rm(BASE, seed=0)
    readout = reward_readout(rm)
    words = benchmark_words(4 if args.quick else args.words)
    prompt = paper_prompts()[0]
    items = build_items(rm, [prompt], words)
    seqs, order = items.sequences()
    n = len(seqs)
    with torch.no_grad():
        value_lens_readings(rm, items.groups[:1], readout, rm.device, n)  # warm-up
        with Measured() as clock:
            ours = value_lens_readings(rm, items.groups, readout, rm.device, n)[order]
        ours_sorted_words = [words[i] for i in order]
        results = [method("valuebias", "value_lens_readings (norm + head per depth)", clock, n)]
        resid = our_residuals(rm, seqs)
        head = rm.reward_layout.head(rm.model).weight[0].detach().float().numpy()
        projection = resid @ head  # [N, L + 1]: h . w_r, reward-lens's definition on our residuals
        normed = readout(torch.from_numpy(resid)).numpy()  # our definition on the same residuals
        reward = score_full_sequences(rm, seqs).numpy()
    notes = [
        "valuebias: r_l = head(final_norm(h_l)), so r_L is the RM's reward; reward-lens: "
        "h_l . w_r with no final norm (its LensCrystallization reads only the depth where a "
        "chosen-minus-rejected differential crosses half its final value, which a norm scale "
        "changes little), so its last reading is not the reward",
    ]
    checks = {
        "valuebias_lens_vs_norm_head_of_its_residuals": agreement(normed, ours, TOLERANCE),
        "valuebias_last_depth_vs_reward": agreement(reward, ours[:, -1], TOLERANCE),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rm.model.save_pretrained(tmp)
            rm.tokenizer.save_pretrained(tmp)
            load, lens_clock, theirs, ids = reward_lens_readings(
                Path(tmp), prompt.text, ours_sorted_words
            )
    except Exception as err:  # not installed, or cannot load the RM: the reason is the result
        results.append(failed("reward-lens", "load_signal(folder) + capture_sites . w_r", err))
    else:
        entry = method("reward-lens", "load_signal(folder) + capture_sites . w_r", lens_clock, n,
                       load_s=round(load.wall_s, 3))  # fmt: skip
        entry["same_ids"] = sum(a == b for a, b in zip(ids, seqs, strict=True))
        entry["agreement"] = {
            "vs_h_dot_w_of_valuebias_residuals": agreement(projection, theirs, TOLERANCE),
            "vs_valuebias_value_lens": agreement(ours, theirs, TOLERANCE),
            "last_depth_vs_reward": agreement(reward, theirs[:, -1], TOLERANCE),
        }
        results.append(entry)
    part = {
        "work": "value lens",
        "unit": "items/s",
        "settings": {
            "rm": f"{BASE} + seeded random head + 2% weight noise",
            "items": n,
            "depths": rm.n_layers + 1,
            "position": "last token",
            "reference": "valuebias value_lens_readings",
        },  # fmt: skip
        "methods": results,
        "checks": checks,
        "notes": notes,
    }
    write_json(args.json_out, part)
    return part


if __name__ == "__main__":
    main()

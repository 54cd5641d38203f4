"""Stage 6 of an audit: patch the base into the RM per layer and site, then per position where it acts.

``sweep`` (``patch``): every block's ``resid_pre``, ``attn_out`` and ``mlp_out`` (by default) of
the base model replaces the RM's at all positions, on the patching prompts; effects are
normalised to the base's own reading, with bootstrap CIs over words and p-values from permuting category labels among words
corrected over every patch. ``positions`` (``patch`` again): a layer x position sweep at the
blocks where the effect is (``effect_layers``), over the last K token positions.

Both steps load the pair once (``interp.patching.pair.load_pair``) and hand it to ``run_patch``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.audit.config import AuditConfig
from analyses.audit.inputs import model_identity
from analyses.audit.ledger import Ledger, Step
from analyses.audit.preference import AuditInputs
from analyses.runs.patch import PatchSettings, run_patch
from interp.patching.pair import load_pair
from interp.sites import parse_layers

EFFECT_COLUMNS = (
    "site", "layer", "position", "clean_gap", "patched_gap", "source_gap", "delta_gap",
    "delta_ci_low", "delta_ci_high", "normalised_effect", "normalised_ci_low",
    "normalised_ci_high", "d_change", "p_permutation", "p_bonferroni", "p_fdr_bh",
    "max_abs_word_change",
)  # fmt: skip


def effect_layers(effects: pd.DataFrame, k: int) -> list[int]:
    """The ``k`` blocks where the all-positions effect is. A component (``attn_out``,
    ``mlp_out``) scores its own |effect|. The residual stream is cumulative (patching
    ``resid_pre`` of block b replaces everything below b), so block b scores the change of the
    effect from b to the next patched block (after the last block the effect is the whole move:
    1 normalised, ``source_gap - clean_gap`` raw). Ties keep the lower block; the blocks are
    returned in increasing order."""
    eff = effects[effects["position"] == "all"]
    normalised = eff["normalised_effect"].notna().any()
    col = "normalised_effect" if normalised else "delta_gap"
    score: dict[int, float] = {}
    for site, g in eff.groupby("site"):
        values = g.set_index("layer").sort_index()[col].astype(float).fillna(0.0)
        if site in ("resid_pre", "resid_post"):
            whole = 1.0 if normalised else float((g["source_gap"] - g["clean_gap"]).iloc[-1])
            following = values.shift(-1)
            following.iloc[-1] = whole
            values = following - values
        for layer, v in values.abs().items():
            score[int(layer)] = max(score.get(int(layer), 0.0), float(v))
    ranked = sorted(score, key=lambda layer: (-score[layer], layer))
    return sorted(ranked[:k])


def position_tokens(items, tokenizer, last: int) -> dict[int, str]:
    """Offset (-1 = last token) -> its token text, where every item has the same token there
    (e.g. the template's closing tokens), else ``(word)`` / ``(varies)``."""
    labels: dict[int, str] = {}
    for k in range(1, last + 1):
        ids = set()
        in_suffix = True
        for g in items.groups:
            if k <= g.suffix_len:
                ids.update(g.suffixes[:, -k].tolist())
            else:
                in_suffix = False
                ids.add(g.prefix[len(g.prefix) - (k - g.suffix_len)])
        if len(ids) == 1:
            labels[-k] = repr(tokenizer.decode([ids.pop()]))[1:-1][:10]
        else:
            labels[-k] = "(word)" if in_suffix else "(varies)"
    return labels


def _records(effects: pd.DataFrame) -> list[dict]:
    cols = [c for c in EFFECT_COLUMNS if c in effects]
    return effects[cols].to_dict("records")


def patching_stage(config: AuditConfig, inputs: AuditInputs, ledger: Ledger,
                   progress) -> dict[str, list[Step]]:  # fmt: skip
    """The steps of stage 6 (empty when the stage is off)."""
    if not config.enabled("patching"):
        return {}
    pair_cache: dict[str, tuple] = {}

    def pair():
        if "pair" not in pair_cache:
            progress.note(f"loading the pair {config.base} -> {config.rm}")
            pair_cache["pair"] = load_pair(
                config.base, config.rm, config.device, **config.load_kwargs()
            )
        return pair_cache["pair"]

    def common(folder: Path) -> dict:
        return dict(
            base=config.base, rm=config.rm, responses=str(inputs.patch_words),
            prompts=str(inputs.prompts["patch"]), gap=config.gap, out=folder,
            sites=tuple(config.patch_sites), permutations=config.permutations,
            bootstrap=config.bootstrap, seed=config.seed, device=config.device, overwrite=True,
            **config.load_kwargs(),
        )  # fmt: skip

    def sweep(folder: Path) -> dict:
        run = run_patch(
            PatchSettings(layers=config.patch_layers, positions="all", **common(folder)),
            progress=progress, models=pair(),
        )  # fmt: skip
        return {
            "effects": _records(run.effects),
            "self_test": run.summary["self_test"],
            "largest_effect_per_site": run.summary["largest_effect_per_site"],
            "n_layers": int(pair()[1].n_layers),
            "n_patches": len(run.effects),
            "template_mode": run.summary["template_mode"],
        }

    def positions(folder: Path) -> dict:
        effects = pd.DataFrame(ledger.results["6-patching/sweep"]["effects"])
        layers = effect_layers(effects, config.position_layers)
        run = run_patch(
            PatchSettings(layers=",".join(map(str, layers)), positions=f"last:{config.position_last}",
                          **common(folder)),
            progress=progress, models=pair(),
        )  # fmt: skip
        tokens = position_tokens(run.sweep.items, pair()[1].tokenizer, config.position_last)
        return {
            "layers": layers,
            "effects": _records(run.effects),
            "tokens": {str(k): v for k, v in tokens.items()},
            "self_test": run.summary["self_test"],
        }

    identity = {
        "rm": model_identity(config.rm, config.rm_revision),
        "base": model_identity(config.base, config.base_revision),
        "sites": list(config.patch_sites), "gap": list(config.gap), "device": config.device,
        "resampling": [config.permutations, config.bootstrap, config.seed],
    }  # fmt: skip
    items = inputs.n_patch_words * inputs.n_prompts["patch"]
    n_layers = max(len(_layer_guess(config.patch_layers)), 1)
    per_patch = 0.5 * items
    needs = ("0-inputs/words", "0-inputs/prompts")
    sweep_step = Step("6-patching", "sweep", {**identity, "layers": config.patch_layers}, sweep,
                      needs, per_patch * n_layers * len(config.patch_sites))  # fmt: skip
    pos_settings = {**identity, "k_layers": config.position_layers, "last": config.position_last}
    pos_weight = per_patch * config.position_layers * config.position_last * len(config.patch_sites)
    pos_step = Step("6-patching", "positions", pos_settings, positions, ("6-patching/sweep",),
                    pos_weight)  # fmt: skip
    return {"6-patching": [sweep_step, pos_step]}


def _layer_guess(spec: str) -> list[int]:
    """Layers named by ``spec`` for a rough cost (``all`` counts as 24 blocks)."""
    try:
        return list(parse_layers(spec, 24))
    except Exception:  # noqa: BLE001 - only a cost estimate; run_patch validates
        return list(np.arange(24))

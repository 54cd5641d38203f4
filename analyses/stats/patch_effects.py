"""Statistics of a patching sweep and of the value lens, per patch and per depth.

The *gap* is the mean score of the first category's words minus the second's (default Agency -
Communion; ``analyses.stats.contrast`` fixes the sign convention), each word's score first averaged
over prompts. Three gaps per patch: ``clean_gap`` (receiver unpatched), ``patched_gap`` and
``source_gap`` - the **base reading**: the RM readout applied to the source model's own final
residual stream (the value lens of the source at its last depth, which is also what patching
the source's entire final residual stream into the receiver gives). The normalised effect is
``(patched_gap - clean_gap) / (source_gap - clean_gap)``: 0 = the patch changes nothing,
1 = it moves the gap all the way to the base reading. It is undefined (NaN) when
``|source_gap - clean_gap|`` is below 1e-6 times the score scale.

Uncertainty. Per-example values are kept (one row per patch and item). Confidence intervals
(95 %, percentile) resample words with replacement within each category (``n_bootstrap``
resamples, shared by every patch). The p-value is a sign-flip randomisation test of the gap
change: each word's change (patched - clean, averaged over prompts) is centred on the mean change
of all words (a shift common to all words cannot move the gap), the centred changes get random
signs, and the gap change is recomputed; ``p = (1 + #|T*| >= |T|) / (1 + n_permutations)``. It
assumes the centred changes are symmetric under the null. P-values are corrected across every
patch of the sweep (all layers, sites and positions): Bonferroni (``p_bonferroni``, family-wise)
and Benjamini-Hochberg (``p_fdr_bh``). Effect size: Cohen's d between the two categories' word
changes (``d_change``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analyses.stats.contrast import CategoryWords, word_means
from analyses.stats.corrections import benjamini_hochberg, bonferroni
from analyses.stats.twosample import cohens_d
from interp.patching.sweep import SweepResult


def _gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.nanmean(a, axis=-1) - np.nanmean(b, axis=-1)


def _ci(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        lo = np.nanquantile(samples, alpha, axis=-1)
        hi = np.nanquantile(samples, 1 - alpha, axis=-1)
    return lo, hi


def effects_table(
    result: SweepResult, design: CategoryWords, n_bootstrap: int, n_permutations: int, seed: int
) -> pd.DataFrame:
    """One row per patch: gaps, change, normalised effect with CIs, d, sign-flip p, corrections."""
    table = result.items.table
    responses = table["response"].tolist()
    rng = np.random.default_rng(seed)
    wa, wb = design.first, design.second
    na, nb = len(wa), len(wb)
    boot_a = rng.integers(0, na, size=(n_bootstrap, na))
    boot_b = rng.integers(0, nb, size=(n_bootstrap, nb))
    weights = np.concatenate([np.full(na, 1 / na), np.full(nb, -1 / nb)])
    flips = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, na + nb))
    clean_a = word_means(result.twin, responses, wa)  # [P, na] clean twins
    clean_b = word_means(result.twin, responses, wb)
    pat_a = word_means(result.patched, responses, wa)
    pat_b = word_means(result.patched, responses, wb)
    src_a = word_means(result.source, responses, wa)  # [na]
    src_b = word_means(result.source, responses, wb)
    n_prompts = table["prompt_key"].nunique()
    scale = float(np.nanstd(np.concatenate([src_a, src_b, clean_a[0], clean_b[0]]))) or 1.0
    rows = []
    for i, spec in enumerate(result.patches):
        ca, cb, pa, pb = clean_a[i], clean_b[i], pat_a[i], pat_b[i]
        if np.isnan(pa).all() or np.isnan(pb).all():
            rows.append({"site": spec.site, "layer": spec.layer, "position": spec.position_label})
            continue
        clean_gap, patched_gap, source_gap = _gap(ca, cb), _gap(pa, pb), _gap(src_a, src_b)
        delta = patched_gap - clean_gap
        denom = source_gap - clean_gap
        norm = delta / denom if abs(denom) > 1e-6 * scale else math.nan
        # bootstrap over words (stratified)
        b_clean = np.nanmean(ca[boot_a], -1) - np.nanmean(cb[boot_b], -1)
        b_pat = np.nanmean(pa[boot_a], -1) - np.nanmean(pb[boot_b], -1)
        b_src = np.nanmean(src_a[boot_a], -1) - np.nanmean(src_b[boot_b], -1)
        b_delta = b_pat - b_clean
        with np.errstate(invalid="ignore", divide="ignore"):
            b_norm = np.where(
                np.abs(b_src - b_clean) > 1e-6 * scale, b_delta / (b_src - b_clean), np.nan
            )
        d_lo, d_hi = _ci(b_delta)
        n_lo, n_hi = _ci(b_norm) if not math.isnan(norm) else (math.nan, math.nan)
        # sign-flip test on centred per-word changes
        change = np.concatenate([pa - ca, pb - cb])
        ok = ~np.isnan(change)
        centred = np.where(ok, change - np.nanmean(change), 0.0)
        observed = float(np.sum(weights * centred))
        null = np.abs((flips * (weights * centred)).sum(-1))
        tol = 1e-12 * max(abs(observed), 1e-300)
        p = (1 + int(np.sum(null >= abs(observed) - tol))) / (1 + n_permutations)
        if np.allclose(centred, 0.0):
            p = 1.0
        rows.append(
            {
                "site": spec.site,
                "layer": spec.layer,
                "position": spec.position_label,
                "hook": spec.hook,
                "n_words_" + design.pair.first: int(np.sum(~np.isnan(pa))),
                "n_words_" + design.pair.second: int(np.sum(~np.isnan(pb))),
                "n_prompts": n_prompts,
                "clean_gap": clean_gap,
                "patched_gap": patched_gap,
                "source_gap": source_gap,
                "delta_gap": delta,
                "delta_ci_low": float(d_lo),
                "delta_ci_high": float(d_hi),
                "normalised_effect": norm,
                "normalised_ci_low": float(n_lo),
                "normalised_ci_high": float(n_hi),
                "d_change": cohens_d(pa - ca, pb - cb),
                "p_signflip": p,
                "max_abs_word_change": float(np.nanmax(np.abs(change))),
            }
        )
    out = pd.DataFrame(rows)
    if "p_signflip" in out:
        out["p_bonferroni"] = bonferroni(out["p_signflip"].to_numpy(dtype=float))
        out["p_fdr_bh"] = benjamini_hochberg(out["p_signflip"].to_numpy(dtype=float))
    return out


def item_table(result: SweepResult) -> pd.DataFrame:
    """Per-example values: one row per (patch, item) with clean, patched and change."""
    base = result.items.table[["item", "prompt_key", "framing", "response"]]
    frames = []
    for i, spec in enumerate(result.patches):
        f = base.copy()
        f.insert(0, "position", spec.position_label)
        f.insert(0, "layer", spec.layer)
        f.insert(0, "site", spec.site)
        f["clean"] = result.twin[i]
        f["patched"] = result.patched[i]
        f["change"] = result.patched[i] - result.twin[i]
        f["base_reading"] = result.source
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def lens_gap_table(
    lens: dict[str, np.ndarray],
    items: pd.DataFrame,
    design: CategoryWords,
    n_bootstrap: int,
    seed: int,
) -> pd.DataFrame:
    """Value-lens gap per depth (0 = embeddings, L = final) for each model role, with CIs.

    ``lens[role]`` holds readings ``[N, L + 1]`` in the order of ``items`` (the items table).
    """
    responses = items["response"].tolist()
    rng = np.random.default_rng(seed + 1)
    na, nb = len(design.first), len(design.second)
    boot_a = rng.integers(0, na, size=(n_bootstrap, na))
    boot_b = rng.integers(0, nb, size=(n_bootstrap, nb))
    rows = []
    for role, readings in lens.items():
        a = word_means(readings.T, responses, design.first)  # [L+1, na]
        b = word_means(readings.T, responses, design.second)
        for depth in range(readings.shape[1]):
            boot = np.nanmean(a[depth][boot_a], -1) - np.nanmean(b[depth][boot_b], -1)
            lo, hi = _ci(boot)
            rows.append(
                {
                    "model_role": role,
                    "depth": depth,
                    "gap": float(_gap(a[depth], b[depth])),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "mean_score": float(np.nanmean(np.concatenate([a[depth], b[depth]]))),
                }
            )
    return pd.DataFrame(rows)


def lens_item_table(lens: dict[str, np.ndarray], items: pd.DataFrame) -> pd.DataFrame:
    """Every value-lens reading: one row per (model role, depth, item)."""
    base = items[["item", "prompt_key", "framing", "response"]]
    frames = []
    for role, readings in lens.items():
        for depth in range(readings.shape[1]):
            f = base.copy()
            f.insert(0, "depth", depth)
            f.insert(0, "model_role", role)
            f["score"] = readings[:, depth]
            frames.append(f)
    return pd.concat(frames, ignore_index=True)

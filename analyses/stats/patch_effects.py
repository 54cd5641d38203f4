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
resamples, shared by every patch). The test: the gap change is a two-group comparison of words
(each word's change, patched - clean averaged over prompts, in the first category against the
second), so its p-value permutes the category labels among the words (``permutation_p``: the
statistic is the gap change itself, the difference of the groups' mean changes; two-sided;
exact enumeration when the splits are few enough, else random splits shared by every patch). Under the null the labels are exchangeable,
so the test holds its level whatever the shape of the changes (the earlier sign-flip test of
centred changes assumed symmetry and rejected about 6.7 % of the time at 0.05 on skewed
changes). The number of splits is at least ``draws_for_floor(n_patches, 0.05)``, so the smallest
p-value, Bonferroni-corrected across the sweep, stays below 0.05 (``p_floor_bonferroni``).
P-values are corrected across every patch of the sweep (all layers, sites and positions):
Bonferroni (``p_bonferroni``, family-wise) and Benjamini-Hochberg (``p_fdr_bh``). Effect size:
Cohen's d between the two categories' word changes (``d_change``, with its bootstrap CI).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from analyses.stats.contrast import CategoryWords, word_means
from analyses.stats.corrections import benjamini_hochberg, bonferroni
from analyses.stats.twosample import cohens_d, draws_for_floor, split_test
from interp.patching.sweep import SweepResult

TEST_NAME = "permutation of category labels among words (statistic: the gap change)"


def describe_test(n_permutations: int, n_bootstrap: int, n_patches: int) -> str:
    """One sentence for provenance records: the test, its draws, CIs and corrections."""
    return (
        f"{TEST_NAME}, two-sided, at least {splits_for(n_permutations, n_patches)} splits (exact "
        f"when fewer exist); 95% percentile bootstrap CIs over words within category "
        f"({n_bootstrap} resamples); p corrected across all {n_patches} patches (Bonferroni and "
        "Benjamini-Hochberg)"
    )


def splits_for(n_permutations: int, n_patches: int) -> int:
    """Random splits used: ``n_permutations``, raised so the Bonferroni floor stays below 0.05."""
    return max(n_permutations, draws_for_floor(n_patches, floor=0.05))


def permutation_p(
    changes: np.ndarray, n_first: int, n_permutations: int, seed: int
) -> tuple[np.ndarray, int, bool]:
    """Label-permutation p of every patch: ``changes`` ``[n_patches, n_words]`` (first-category
    words first). Rows with missing words are tested on the words they have.

    Returns ``(p [n_patches], splits used, exact)`` (the counts of the complete rows)."""
    is_first = np.arange(changes.shape[1]) < n_first
    p = np.full(len(changes), np.nan)
    complete = ~np.isnan(changes).any(axis=1)
    used, exact = 0, False
    if complete.any():
        _, p[complete], used, exact = split_test(
            changes[complete], is_first, n_permutations, seed, studentise=False
        )
    for i in np.flatnonzero(~complete):
        ok = ~np.isnan(changes[i])
        if ok[is_first].any() and ok[~is_first].any():
            _, p[i], _, _ = split_test(
                changes[i, ok], is_first[ok], n_permutations, seed, studentise=False
            )
    return p, used, exact


def _gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.nanmean(a, axis=-1) - np.nanmean(b, axis=-1)


def _ci(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample set: NaN bounds
        lo = np.nanquantile(samples, alpha, axis=-1)
        hi = np.nanquantile(samples, 1 - alpha, axis=-1)
    return lo, hi


def effects_table(
    result: SweepResult, design: CategoryWords, n_bootstrap: int, n_permutations: int, seed: int
) -> pd.DataFrame:
    """One row per patch: gaps, change, normalised effect with CIs, d with CI, the
    label-permutation p and its corrections across the sweep."""
    table = result.items.table
    responses = table["response"].tolist()
    rng = np.random.default_rng(seed)
    wa, wb = design.first, design.second
    na, nb = len(wa), len(wb)
    boot_a = rng.integers(0, na, size=(n_bootstrap, na))
    boot_b = rng.integers(0, nb, size=(n_bootstrap, nb))
    clean_a = word_means(result.twin, responses, wa)  # [P, na] clean twins
    clean_b = word_means(result.twin, responses, wb)
    pat_a = word_means(result.patched, responses, wa)
    pat_b = word_means(result.patched, responses, wb)
    src_a = word_means(result.source, responses, wa)  # [na]
    src_b = word_means(result.source, responses, wb)
    n_prompts = table["prompt_key"].nunique()
    scale = float(np.nanstd(np.concatenate([src_a, src_b, clean_a[0], clean_b[0]]))) or 1.0
    changes = np.concatenate([pat_a - clean_a, pat_b - clean_b], axis=1)  # [P, na + nb]
    draws = splits_for(n_permutations, len(result.patches))
    p_perm, used, exact = permutation_p(changes, na, draws, seed)
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
        change = changes[i]
        b_d = _boot_d(pa - ca, pb - cb, boot_a, boot_b)
        dc_lo, dc_hi = _ci(b_d)
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
                "d_change_ci_low": float(dc_lo),
                "d_change_ci_high": float(dc_hi),
                "test": TEST_NAME,
                "unit": "word",
                "p_permutation": float(p_perm[i]),
                "n_permutations": used,
                "exact": exact,
                "max_abs_word_change": float(np.nanmax(np.abs(change))),
            }
        )
    out = pd.DataFrame(rows)
    if "p_permutation" in out:
        p = out["p_permutation"].to_numpy(dtype=float)
        out["p_bonferroni"] = bonferroni(p)
        out["p_fdr_bh"] = benjamini_hochberg(p)
        n_tested = int(np.sum(~np.isnan(p)))
        out["p_floor_bonferroni"] = 0.0 if exact else min(1.0, n_tested / (1 + used))
        out["correction"] = "Bonferroni (p_bonferroni), Benjamini-Hochberg (p_fdr_bh)"
        out["family_of_tests"] = f"{n_tested} patches of the sweep"
    return out


def _boot_d(x: np.ndarray, y: np.ndarray, boot_x: np.ndarray, boot_y: np.ndarray) -> np.ndarray:
    """Cohen's d of ``x - y`` for every bootstrap resample (index arrays ``[B, n]``)."""
    bx, by = x[boot_x], y[boot_y]
    nx, ny = boot_x.shape[1], boot_y.shape[1]
    pooled = (nx - 1) * np.nanvar(bx, axis=1, ddof=1) + (ny - 1) * np.nanvar(by, axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.nanmean(bx, axis=1) - np.nanmean(by, axis=1)) / np.sqrt(pooled / (nx + ny - 2))


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

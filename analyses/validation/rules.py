"""Location rules: how a method's ordinary output becomes a *found location* (fixed in advance).

These rules were written before any organism was run and are never tuned to make one pass. Alpha
is 0.05 throughout; "CI" is the method's own 95 % interval unless said otherwise.

- **Residual patching** (``patch``, site ``resid_post``, all positions): the found block is the
  lowest block ``l`` whose patch has a normalised effect with a CI that excludes 0 and a
  Bonferroni-corrected p (across the whole sweep) below 0.05. Patching ``resid_post`` of block
  ``l`` hands the RM the base's output of blocks ``0..l``, so the first block whose output
  matters is where the two models start to differ. No such block: nothing found.
- **Component patching** (``patch``, site ``mlp_out`` or ``attn_out``, organism 1): the same
  rule on the site of the changed component.
- **Value lens** (the lens readings the ``patch`` run writes, ``value_lens_items.parquet``): per
  depth ``d``, each word's RM reading minus its base reading (mean over prompts) is compared
  between the categories with the suite's one contrast (``analyses.stats.contrast.compare``:
  difference with a bootstrap CI, permutation Welch p); p is Bonferroni-corrected across the
  ``L + 1`` depths. The found block is ``d - 1`` for the lowest depth whose CI excludes 0 and
  whose corrected p is below 0.05 (depth ``d`` is the residual after blocks ``0..d-1``). This is
  a paired reading of "the curves of base and RM first differ beyond their CIs".
- **Probes** (``cache-activations`` + ``train-probes`` on both models, ``resid_post`` at the last
  token, difference-of-means directions): per layer, the gain in reward alignment ``cos(d_RM,
  w) - cos(d_base, w)`` with ``w`` the RM's effective score direction (``interp.models.readout``).
  Its CI resamples words within each class (the same resample for both models, 1000 resamples,
  each refitted with ``probes.fit.fit_probe``), percentile at level ``1 - 0.05 / L`` (Bonferroni
  across the ``L`` layers). The found block is the lowest layer whose CI excludes 0.
- **Attribution screen** (``patch --screen attribution``): the screen's top patch on a site (the
  largest |estimated gap change|) agrees when it lies in the causal top set
  (``analyses.stats.attribution_screen``); its effect is Spearman's rho with causal patching.

A location ``expected`` as ``blocks k..k+1`` agrees with any found block in that range; a
negative control agrees when nothing is found. The rules of the inherited-bias and implicit-reward
families are in ``analyses.validation.inheritance_rules``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.stats.contrast import CategoryWords, Contrast, compare, word_means
from analyses.stats.corrections import bonferroni

ALPHA = 0.05
LENS_PERMUTATIONS = 4000
PROBE_RESAMPLES = 1000


@dataclass(frozen=True)
class Finding:
    """What a rule read: ``block`` found (None: nothing), the effect reported with its CI and p,
    and a one-line ``detail``."""

    block: int | None
    effect: float
    ci_low: float
    ci_high: float
    effect_name: str
    p: float = math.nan
    n: int | None = None
    detail: str = ""


def excludes_zero(low: float, high: float) -> bool:
    return bool((low > 0 or high < 0) and not math.isnan(low + high))


def _patch_effect(row: pd.Series, what: str) -> Finding:
    norm = row.get("normalised_effect", math.nan)
    if pd.notna(norm):
        effect = (float(norm), float(row["normalised_ci_low"]), float(row["normalised_ci_high"]))
        name = f"normalised effect at block {int(row['layer'])} ({what})"
    else:
        effect = (float(row["delta_gap"]), float(row["delta_ci_low"]), float(row["delta_ci_high"]))
        name = f"gap change at block {int(row['layer'])} ({what}; normalised effect undefined)"
    return Finding(None, *effect, name, float(row.get("p_bonferroni", math.nan)))


def first_significant_patch(
    effects: pd.DataFrame, site: str, expected: int | None = None
) -> Finding:
    """The patching rule on ``site`` (positions ``all``); see the module docstring. The effect
    reported is at the found block, else at ``expected``, else at the smallest corrected p."""
    rows = effects[(effects["site"] == site) & (effects["position"].astype(str) == "all")]
    rows = rows.sort_values("layer")
    hit = rows[
        rows["normalised_ci_low"].gt(0) | rows["normalised_ci_high"].lt(0)
    ]  # NaN compares False
    hit = hit[hit["p_bonferroni"] < ALPHA]
    if len(hit):
        row = hit.iloc[0]
        found = int(row["layer"])
    else:
        found = None
        at = rows[rows["layer"] == expected] if expected is not None else rows.iloc[0:0]
        row = at.iloc[0] if len(at) else rows.loc[rows["p_bonferroni"].fillna(1).idxmin()]
    base = _patch_effect(row, site)
    profile = ", ".join(
        f"{int(r.layer)}:{r.normalised_effect:.2f}"
        for r in rows.itertuples()
        if pd.notna(r.normalised_effect)
    )
    return Finding(found, base.effect, base.ci_low, base.ci_high, base.effect_name, base.p,
                   int(len(rows)), f"normalised effect by block: {profile or 'undefined'}")  # fmt: skip


def lens_contrasts(
    lens_items: pd.DataFrame, design: CategoryWords, seed: int, n_bootstrap: int = 2000
) -> list[Contrast]:
    """Per depth: the category contrast of each word's RM - base lens reading (mean over
    prompts), Bonferroni-corrected across depths (the value-lens rule's evidence)."""
    wide = lens_items.pivot_table(
        index=["depth", "item", "response"], columns="model_role", values="score"
    ).reset_index()
    wide["diff"] = wide["rm"] - wide["base"]
    out = []
    for depth, g in wide.groupby("depth"):
        responses = g["response"].tolist()
        x = word_means(g["diff"].to_numpy(), responses, design.first)
        y = word_means(g["diff"].to_numpy(), responses, design.second)
        out.append(
            compare(
                x,
                y,
                first=design.pair.first,
                second=design.pair.second,
                label=f"depth {depth}",
                value="value-lens reading, RM - base",
                n_permutations=LENS_PERMUTATIONS,
                n_bootstrap=n_bootstrap,
                rng=np.random.default_rng([seed, int(depth)]),
            )  # fmt: skip
        )
    return out


def first_lens_split(
    lens_items: pd.DataFrame, design: CategoryWords, seed: int, expected: int | None = None
) -> Finding:
    """The value-lens rule (see the module docstring)."""
    contrasts = lens_contrasts(lens_items, design, seed)
    p = np.array([c.test.p for c in contrasts], dtype=float)
    p_adj = bonferroni(np.where(np.isnan(p), 1.0, p))
    depth = None
    for d, (c, q) in enumerate(zip(contrasts, p_adj)):
        if excludes_zero(c.difference.low, c.difference.high) and q < ALPHA:
            depth = d
            break
    at = depth if depth is not None else (expected + 1 if expected is not None else len(p) - 1)
    c = contrasts[at]
    diffs = ", ".join(f"{d}:{c.difference.value:+.3g}" for d, c in enumerate(contrasts))
    return Finding(
        None if depth is None else depth - 1,
        c.difference.value, c.difference.low, c.difference.high,
        f"RM - base lens gap at depth {at} (reward units)", float(p_adj[at]), c.n_first + c.n_second,
        f"RM - base lens gap by depth: {diffs}",
    )  # fmt: skip


def alignment_gain(
    x_base: dict[int, np.ndarray],
    x_rm: dict[int, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    head: np.ndarray,
    seed: int,
    n_resamples: int = PROBE_RESAMPLES,
) -> pd.DataFrame:
    """Per layer: ``cos(d_RM, w) - cos(d_base, w)`` of difference-of-means directions with a
    word-bootstrap CI at level ``1 - 0.05 / L`` (the probe rule's evidence). ``x_*[layer]`` are
    ``[n_items, d]`` activations of the same items; ``y`` the class (1 = first), ``groups`` words."""
    from probes.fit import fit_probe

    def cos(direction: np.ndarray) -> float:
        return float(direction @ head / (np.linalg.norm(head) or 1.0))

    def gain(layer: int, rows: np.ndarray) -> float:
        d_rm = fit_probe(x_rm[layer][rows], y[rows], "diffmean").direction
        d_base = fit_probe(x_base[layer][rows], y[rows], "diffmean").direction
        return cos(d_rm) - cos(d_base)

    words = np.unique(groups)
    word_class = {w: int(y[groups == w][0]) for w in words}
    by_class = [np.array([w for w in words if word_class[w] == c]) for c in (1, 0)]
    rows_of = {w: np.flatnonzero(groups == w) for w in words}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_resamples):
        picked = np.concatenate([rng.choice(ws, size=len(ws), replace=True) for ws in by_class])
        draws.append(np.concatenate([rows_of[w] for w in picked]))
    level = 1 - ALPHA / max(1, len(x_rm))
    out = []
    for layer in sorted(x_rm):
        boot = np.array([gain(layer, rows) for rows in draws])
        lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
        whole = gain(layer, np.arange(len(y)))
        out.append({"layer": layer, "gain": whole, "ci_low": lo, "ci_high": hi,
                    "level": level})  # fmt: skip
    return pd.DataFrame(out)


def first_alignment_gain(gains: pd.DataFrame, expected: int | None = None) -> Finding:
    """The probe rule (see the module docstring) on an ``alignment_gain`` table."""
    hit = gains[[excludes_zero(lo, hi) for lo, hi in zip(gains["ci_low"], gains["ci_high"])]]
    found = int(hit["layer"].iloc[0]) if len(hit) else None
    at = found if found is not None else expected if expected is not None else int(
        gains.loc[gains["gain"].abs().idxmax(), "layer"])  # fmt: skip
    row = gains[gains["layer"] == at].iloc[0]
    profile = ", ".join(f"{int(r.layer)}:{r.gain:+.3f}" for r in gains.itertuples())
    return Finding(
        found, float(row["gain"]), float(row["ci_low"]), float(row["ci_high"]),
        f"gain in head alignment of the probe direction at block {at} "
        f"(CI level {row['level']:.4f}, Bonferroni over layers)", n=len(gains),
        detail=f"cos(d_RM, w) - cos(d_base, w) by block: {profile}",
    )  # fmt: skip


def screen_finding(agreement: dict, site: str) -> tuple[Finding, bool]:
    """The attribution screen's row: its top layer, and whether it is a causal top layer."""
    entry = agreement.get(site, {})
    rho = entry.get("spearman", {})
    top = entry.get("screen_top_layer")
    causal = entry.get("causal_top_layers", [])
    finding = Finding(
        top, float(rho.get("rho", math.nan)), float(rho.get("ci_low", math.nan)),
        float(rho.get("ci_high", math.nan)), f"Spearman rho with causal patching ({site})",
        n=rho.get("n"), detail=f"causal top layers {causal}",
    )  # fmt: skip
    return finding, bool(entry.get("top_layer_match", False))

"""Robustness figures of ``stats`` (PNG and SVG each).

- ``specification_figure``: the specification curve. Top: the contrast (family difference of the
  category gap, or each model's gap) under every specification, sorted, with its 95 % bootstrap
  CI, coloured by sign; bottom: which choice each specification made (lexicon, pronouns, word
  forms, framing, concision), so a sign that flips with one choice is visible.
- ``random_axis_figure``: per framing, the distribution of the family x category effect over
  random splits of the pair's words, the observed pair (red) and other value axes (grey ticks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.figures.common import plt, save_figure

CHOICES = ("lexicon", "pronouns", "word_forms", "framing", "concision")


def specification_figure(table: pd.DataFrame, base: Path, pair) -> list[Path]:
    """The specification curve of ``specification.specification_curve`` output."""
    if table.empty:
        return []
    family_rows = table[table["contrast"].str.contains(" - ", regex=False)]
    curves = [family_rows] if not family_rows.empty else [g for _, g in table.groupby("contrast")]
    levels = [(c, v) for c in CHOICES for v in dict.fromkeys(table[c].astype(str))]
    n = max(len(g) for g in curves)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(max(6.0, 0.28 * n + 3), 3.2 + 0.22 * len(levels)), sharex=True,
        gridspec_kw={"height_ratios": [2.2, 0.22 * len(levels) + 0.4]},
    )  # fmt: skip
    for k, g in enumerate(curves):
        g = g.sort_values("estimate").reset_index(drop=True)
        x = np.arange(len(g)) + 0.12 * k
        colour = np.where(g["estimate"] < 0, "#4C72B0", "#C44E52")
        err = np.abs(np.vstack([g["estimate"] - g["ci_low"], g["ci_high"] - g["estimate"]]))
        top.errorbar(x, g["estimate"], yerr=err, fmt="none", ecolor="grey", lw=0.8)
        top.scatter(x, g["estimate"], c=colour, s=18, zorder=3, label=g["contrast"].iloc[0])
        if k == 0:
            for i, r in g.iterrows():
                for j, (c, v) in enumerate(levels):
                    if str(r[c]) == v:
                        bottom.scatter(i, j, s=10, color="black")
    top.axhline(0, color="black", lw=0.8)
    top.set_ylabel(f"{pair.first} - {pair.second} gap\n(share of ranked words)")
    top.set_title(
        "Specification curve: the same contrast under each analysis choice (sorted; bars: 95% "
        "bootstrap CI over prompts)\nnegative: the first category is preferred; family rows: "
        "family_b - family_a of that gap", fontsize=9,
    )  # fmt: skip
    if len(curves) > 1:
        top.legend(fontsize=7)
    bottom.set_yticks(range(len(levels)), [f"{c}: {v}" for c, v in levels], fontsize=7)
    bottom.set_xlabel("specification (sorted by estimate)")
    bottom.invert_yaxis()
    fig.tight_layout()
    return save_figure(fig, base)


def random_axis_figure(random_axis, nulls: dict, axes, base: Path) -> list[Path]:
    """Histograms of the random-split null with the observed pair and other value axes."""
    if not random_axis:
        return []
    fig, panels = plt.subplots(1, len(random_axis), figsize=(4.6 * len(random_axis), 3.6),
                               squeeze=False)  # fmt: skip
    for ax, r in zip(panels[0], random_axis, strict=True):
        ax.hist(nulls[r.framing], bins=40, color="#BBBBBB", edgecolor="white")
        for a in axes:
            if a.framing == r.framing and not a.is_observed_pair:
                ax.axvline(a.effect, color="#555555", lw=0.8, ls=":")
        ax.axvline(r.effect, color="#C44E52", lw=2)
        ax.set_title(
            f"{r.framing}: {r.first} - {r.second} at the {r.percentile:.0f}th percentile\n"
            f"of {r.n_splits} random splits (two-sided p = {r.p_random_split:.3g})", fontsize=8,
        )  # fmt: skip
        ax.set_xlabel("family x category effect (share of ranked words)")
    panels[0][0].set_ylabel("random splits")
    fig.suptitle("Random-axis control (red: observed pair; dotted: other value axes)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, base)

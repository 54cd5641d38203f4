"""Figures of an audit's preference stages: the category gap of each model, and word-level agreement.

- ``gap_forest``: Cohen's d of the category gap (``first - second`` over words) of the RM's
  rewards and of the base model's log-probs, per framing, with 95 % bootstrap CIs: the two
  models' gaps side by side on one standardised scale.
- ``word_agreement``: one point per word, the base's mean log-prob (x, nats) against the RM's
  mean reward (y), coloured by category, one panel per framing, with Spearman's rho in the title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.figures.common import FAMILY_COLOURS, plt, save_figure

ROLE_STYLE = {"rm": ("#C44E52", "o"), "base": ("#4C72B0", "s")}


def gap_forest(rows: pd.DataFrame, base: Path, title: str, pair_label: str) -> list[Path]:
    """``rows``: ``role (rm|base), label, framing, d, d_ci_low, d_ci_high``, one per series x
    framing; a series (``label``) gets its own colour, RMs are circles and bases squares."""
    framings = list(dict.fromkeys(rows["framing"]))
    labels = list(dict.fromkeys(rows["label"]))
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.35 * len(framings) * max(len(labels), 2)))
    offsets = np.linspace(-0.3, 0.3, len(labels)) if len(labels) > 1 else np.zeros(1)
    palette = ["#C44E52", "#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860"]
    for k, label in enumerate(labels):
        g = rows[rows["label"] == label]
        role = g["role"].iloc[0]
        colour = ROLE_STYLE[role][0] if len(labels) <= 2 and role in ROLE_STYLE else palette[k % 6]
        marker = ROLE_STYLE.get(role, ("black", "o"))[1]
        y = np.array([framings.index(f) for f in g["framing"]]) + offsets[k]
        d = g["d"].to_numpy(dtype=float)
        lo, hi = g["d_ci_low"].to_numpy(float), g["d_ci_high"].to_numpy(float)
        ax.errorbar(d, y, xerr=np.nan_to_num(np.abs(np.vstack([d - lo, hi - d]))), fmt=marker,
                    color=colour, capsize=3, label=label)  # fmt: skip
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(framings)), [f"{f} prompts" for f in framings])
    ax.invert_yaxis()
    ax.set_xlabel(
        f"Cohen's d of the word-level gap {pair_label} (> 0: the first category scores higher)"
    )
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2)
    fig.tight_layout()
    return save_figure(fig, base)


def word_agreement(words: pd.DataFrame, base: Path, title: str, rho: dict[str, str]) -> list[Path]:
    """``words``: ``framing, response, category, base, rm`` (word means); ``rho``: framing -> text."""
    framings = list(dict.fromkeys(words["framing"]))
    fig, axes = plt.subplots(1, len(framings), figsize=(4.3 * len(framings), 3.9), squeeze=False)
    categories = list(dict.fromkeys(words["category"]))
    for ax, framing in zip(axes[0], framings):
        sub = words[words["framing"] == framing]
        for i, cat in enumerate(categories):
            g = sub[sub["category"] == cat]
            ax.scatter(g["base"], g["rm"], s=12, alpha=0.75, label=cat,
                       color=FAMILY_COLOURS[i % len(FAMILY_COLOURS)])  # fmt: skip
        ax.set_xlabel("base model: mean log-prob of the word (nats)", fontsize=8)
        ax.set_ylabel("RM: mean reward of the word", fontsize=8)
        ax.set_title(f"{framing} prompts: {rho.get(framing, '')}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)

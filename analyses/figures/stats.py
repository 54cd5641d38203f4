"""Statistics figures in the spirit of the paper's, readable without it (PNG and SVG each).

- ``median_rank_violins``: Stage 1; one panel per framing, categories on the x axis, one violin
  per family (distribution of per-(model, prompt) median ranks), per-model means as points, the
  paper's stars above each category (Welch t on (model, prompt) units, parametric p, Bonferroni
  over panels) and, under them, the model-level p (exact permutation over assignments of models
  to families, Bonferroni over panels).
- ``split_violins``: Stage 2 or implicit rewards; two models, left and right halves of one
  violin per category, one panel per valence.
- ``mwlr_lollipop``: implicit reward (MWLR) of chosen words across model pairs.
- ``top_bottom_table``: the top-k and bottom-k words by a score (the paper's Table 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.figures.common import (
    FAMILY_COLOURS,
    RANK_LABEL,
    plt,
    save_figure,
    violin,
)
from analyses.stats.corrections import format_p, stars
from interp.atomic import write_table


def median_rank_violins(
    med: pd.DataFrame,
    panels: Sequence | None,
    base: str | Path,
    families: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    title: str = "Median rank of lexicon categories by base-model family",
) -> list[Path]:
    """Violins of (model, prompt) median ranks by family x category x framing.

    ``med``: columns ``model, family, prompt_key, framing, category, median_rank``;
    ``panels``: ``PanelTest`` objects (or dicts with framing, category, p_bonferroni and
    optionally p_model_level_bonferroni) or None. The y axis is inverted so that preferred words
    sit higher.
    """
    families = list(families or sorted(med["family"].unique()))
    categories = list(categories or dict.fromkeys(med["category"]))
    framings = [f for f in ("positive", "negative", "none") if f in set(med["framing"])]
    pmap, mmap = {}, {}
    for p in panels or ():
        rec = p if isinstance(p, dict) else vars(p)
        pmap[(rec["framing"], rec["category"])] = rec["p_bonferroni"]
        if "p_model_level_bonferroni" in rec:
            mmap[(rec["framing"], rec["category"])] = rec["p_model_level_bonferroni"]
    fig, axes = plt.subplots(
        1,
        len(framings),
        figsize=(1.6 + 2.2 * len(categories) * len(framings), 4.6),
        sharey=True,
        squeeze=False,
    )
    width = 0.8 / len(families)
    rng = np.random.default_rng(0)
    for ax, framing in zip(axes[0], framings, strict=True):
        sub = med[med["framing"] == framing]
        for fi, fam in enumerate(families):
            colour = FAMILY_COLOURS[fi % len(FAMILY_COLOURS)]
            pos = [ci + (fi - (len(families) - 1) / 2) * width for ci in range(len(categories))]
            data = [
                sub.loc[(sub["family"] == fam) & (sub["category"] == c), "median_rank"].to_numpy(
                    float
                )
                for c in categories
            ]
            violin(ax, data, pos, colour, width * 0.95)
            for ci, c in enumerate(categories):
                per_model = (
                    sub[(sub["family"] == fam) & (sub["category"] == c)]
                    .groupby("model")["median_rank"]
                    .mean()
                )
                xs = pos[ci] + rng.uniform(-width / 6, width / 6, len(per_model))
                ax.scatter(
                    xs,
                    per_model.to_numpy(),
                    s=22,
                    color=colour,
                    edgecolor="black",
                    zorder=3,
                    label=None,
                )
            ax.scatter([], [], color=colour, edgecolor="black", label=fam)
        for ci, c in enumerate(categories):
            if (framing, c) in pmap:
                text = stars(pmap[(framing, c)])
                if (framing, c) in mmap:
                    text += f"\nmodels: p={format_p(mmap[(framing, c)])}"
                ax.text(ci, 0.985, text, transform=ax.get_xaxis_transform(), ha="center",
                        va="top", fontsize=9)  # fmt: skip
        ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 4 else 0)
        ax.set_title(f"{framing} prompts")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(RANK_LABEL)
    lo, hi = med["median_rank"].min(), med["median_rank"].max()
    pad = 0.08 * max(hi - lo, 1.0)
    axes[0][0].set_ylim(hi + pad, lo - 2.2 * pad)  # inverted: preferred (low rank) on top
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        title="family (dots: per-model means)",
        fontsize=8,
        title_fontsize=8,
        loc="lower center",
        ncol=len(families),
        bbox_to_anchor=(0.5, -0.1),
    )
    note = (
        "\nstars: the paper's (Welch t on (model, prompt) units, parametric p, Bonferroni over "
        "panels; *** p<.001)" + ("\nmodels: exact permutation over assignments of models to "
                                 "families, Bonferroni over panels (unit: model)" if mmap else "")
        if pmap else ""
    )  # fmt: skip
    fig.suptitle(title + note, fontsize=10, y=1.04)
    return save_figure(fig, base)


def split_violins(
    med: pd.DataFrame,
    base: str | Path,
    models: Sequence[str] | None = None,
    value: str = "median_rank",
    ylabel: str = RANK_LABEL,
    invert: bool = True,
    title: str = "Two models, one violin per category (left | right)",
) -> list[Path]:
    """Split violins: for each category, model A on the left half, model B on the right half.

    ``med``: columns ``model, framing, category`` and ``value``; one panel per framing.
    """
    models = list(models or sorted(med["model"].unique()))[:2]
    categories = list(dict.fromkeys(med["category"]))
    framings = [f for f in ("positive", "negative", "none") if f in set(med["framing"])]
    fig, axes = plt.subplots(
        1,
        len(framings),
        figsize=(1.6 + 2.0 * len(categories) * len(framings), 4.6),
        sharey=True,
        squeeze=False,
    )
    for ax, framing in zip(axes[0], framings, strict=True):
        sub = med[med["framing"] == framing]
        for mi, (model, side) in enumerate(zip(models, ("low", "high"), strict=False)):
            colour = FAMILY_COLOURS[mi]
            data = [
                sub.loc[(sub["model"] == model) & (sub["category"] == c), value].to_numpy(float)
                for c in categories
            ]
            violin(ax, data, list(range(len(categories))), colour, 0.8, side=side)
            ax.scatter([], [], color=colour, label=model)
        ax.set_xticks(range(len(categories)), categories)
        ax.set_title(f"{framing} prompts")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    if invert:
        axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle(title, fontsize=10, y=1.02)
    return save_figure(fig, base)


def mwlr_lollipop(
    table: pd.DataFrame,
    base: str | Path,
    words: Sequence[str] | None = None,
    value: str = "mwlr",
    title: str = "Implicit reward (MWLR) of chosen words",
) -> list[Path]:
    """Lollipops of ``value`` per word, one colour per model pair.

    ``table``: columns ``word``, ``pair`` and ``value`` (e.g. MWLR averaged over prompts). Positive
    values favour model 2 (q) over model 1 (p).
    """
    df = table if words is None else table[table["word"].isin(words)]
    word_order = list(df.groupby("word")[value].mean().sort_values().index)
    pairs = list(dict.fromkeys(df["pair"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.3 * len(word_order) * max(1, len(pairs)) ** 0.5))
    offset = 0.6 / max(1, len(pairs))
    for pi, pair in enumerate(pairs):
        sub = df[df["pair"] == pair].set_index("word")
        ys = [word_order.index(w) + (pi - (len(pairs) - 1) / 2) * offset for w in sub.index]
        colour = FAMILY_COLOURS[pi % len(FAMILY_COLOURS)]
        ax.hlines(ys, 0, sub[value].to_numpy(), color=colour, lw=1.2)
        ax.scatter(sub[value].to_numpy(), ys, color=colour, zorder=3, label=pair, s=25)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(word_order)), word_order)
    ax.set_xlabel(f"{value} (> 0: favoured by model 2)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, base)


def top_bottom_table(
    table: pd.DataFrame,
    base: str | Path,
    k: int = 10,
    value: str = "mwlr",
    columns: Sequence[str] = ("word", "category"),
    title: str = "Top and bottom words",
) -> list[Path]:
    """The top-k and bottom-k rows by ``value`` as a rendered table (PNG/SVG) and a CSV.

    ``table`` needs ``value`` and ``columns``; missing categories show as "-".
    """
    cols = [c for c in columns if c in table.columns]
    ordered = table.sort_values(value, ascending=False)
    top = ordered.head(k).reset_index(drop=True)
    bottom = ordered.tail(k).iloc[::-1].reset_index(drop=True)
    n = max(len(top), len(bottom))
    header = [f"top {c}" for c in cols] + [value] + [f"bottom {c}" for c in cols] + [value]
    cells = []
    for i in range(n):
        row = []
        for part in (top, bottom):
            if i < len(part):
                row += [
                    str(part.loc[i, c]) if pd.notna(part.loc[i, c]) and str(part.loc[i, c]) else "-"
                    for c in cols
                ]
                row.append(f"{part.loc[i, value]:.3g}")
            else:
                row += [""] * (len(cols) + 1)
        cells.append(row)
    fig, ax = plt.subplots(figsize=(1.4 * len(header), 0.6 + 0.28 * (n + 1)))
    ax.axis("off")
    tab = ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="left")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1, 1.2)
    ax.set_title(title, fontsize=10)
    paths = save_figure(fig, base)
    csv = write_table(pd.DataFrame(cells, columns=header), Path(base).with_suffix(".csv"))
    return [*paths, csv]

"""Training-dynamics figures (PNG and SVG each), after the paper's Fig 4, 5, A5 and A6.

- ``checkpoint_figure``: median rank of each category per checkpoint, one line per run, one panel
  per category (y inverted: preferred words sit higher).
- ``final_checkpoint_figure``: the final checkpoint's median rank of each category against the
  run's preference-data size, coloured by family, marker by data source.
- ``rank_change_figure``: the words whose rank moved most between the first and final
  checkpoint (top: preferred later; bottom: preferred earlier), coloured by category.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.figures.common import FAMILY_COLOURS, RANK_LABEL, plt, save_figure

MARKERS = ("o", "^", "D", "s", "v", "P")


def _colours(families) -> dict[str, str]:
    return {f: FAMILY_COLOURS[i % len(FAMILY_COLOURS)] for i, f in enumerate(sorted(set(families)))}


def checkpoint_figure(med: pd.DataFrame, base: Path, title: str) -> list[Path]:
    """``med``: ``run, family, checkpoint, category, median_rank`` (one prompt or averaged)."""
    cats = list(dict.fromkeys(med["category"]))
    colours = _colours(med["family"])
    fig, axes = plt.subplots(1, len(cats), figsize=(4.2 * len(cats), 3.4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, cat in zip(axes[0], cats, strict=True):
        sub = med[med["category"] == cat]
        for (run, fam), g in sub.groupby(["run", "family"]):
            g = g.groupby("checkpoint")["median_rank"].mean()
            ax.plot(
                g.index, g.to_numpy(), marker="o", ms=2, color=colours[fam], label=f"{run} ({fam})"
            )
        ax.set_title(cat)
        ax.set_xlabel("checkpoint (training step)")
    axes[0][0].set_ylabel(RANK_LABEL)
    axes[0][0].invert_yaxis()
    axes[0][-1].legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, base)


def final_checkpoint_figure(final: pd.DataFrame, categories, base: Path) -> list[Path]:
    """``final``: ``final_checkpoints`` output (category columns, data_size, data_source)."""
    cats = [c for c in categories if c in final.columns]
    colours = _colours(final["family"])
    sources = list(dict.fromkeys(final["data_source"].fillna("unknown")))
    fig, axes = plt.subplots(1, len(cats), figsize=(4.2 * len(cats), 3.4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, cat in zip(axes[0], cats, strict=True):
        for _, r in final.iterrows():
            source = r["data_source"] if isinstance(r["data_source"], str) else "unknown"
            marker = MARKERS[sources.index(source) % len(MARKERS)]
            ax.scatter(r["data_size"], r[cat], color=colours[r["family"]], marker=marker, s=30)
        ax.set_title(f"{cat}: final checkpoint")
        ax.set_xlabel("preference data (thousands of pairs)")
    for fam, colour in colours.items():
        axes[0][0].scatter([], [], color=colour, label=fam)
    for i, source in enumerate(sources):
        axes[0][0].scatter([], [], color="grey", marker=MARKERS[i % len(MARKERS)], label=source)
    axes[0][0].set_ylabel(RANK_LABEL)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, base)


def rank_change_figure(
    changes: pd.DataFrame, base: Path, k: int = 10, title: str = ""
) -> list[Path]:
    """``changes``: one run's ``rank_changes`` rows, sorted by ``rank_change`` descending."""
    picked = pd.concat([changes.head(k), changes.tail(k)]).drop_duplicates("word")
    cats = sorted(set(changes["category"]))
    colours = {c: FAMILY_COLOURS[(i + 2) % len(FAMILY_COLOURS)] for i, c in enumerate(cats)}
    fig, ax = plt.subplots(figsize=(4.6, 0.6 + 0.24 * len(picked)))
    y = range(len(picked))
    ax.barh(list(y), picked["rank_change"], color=[colours[c] for c in picked["category"]])
    ax.set_yticks(list(y), picked["word"], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("rank change, first -> final checkpoint (> 0: preferred later)")
    for c, colour in colours.items():
        ax.barh([], [], color=colour, label=c)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, base)

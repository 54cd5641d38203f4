"""Probe figures (PNG + SVG, matplotlib Agg): layerwise curves, comparison curves, 2-D embeddings.

- ``layer_curves``: accuracy and AUROC per layer, one row of panels per site kind, one line per
  method with its bootstrap confidence band, the shuffled-label control as a grey band, chance at
  0.5.
- ``comparison_curves``: per layer, the cosine between two models' directions, transfer AUROC in
  both directions next to each model's own AUROC, and cosines with the RM score head.
- ``embedding_plot``: PCA and UMAP (fixed seed) of one layer's activations coloured by class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from analyses.figures.common import plt, save_figure

METHOD_COLOURS = {"logistic": "#4C72B0", "diffmean": "#DD8452"}
CLASS_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3")


def layer_curves(table: pd.DataFrame, base: str | Path, title: str) -> list[Path]:
    """Accuracy and AUROC per layer with CI and control bands; returns the files written."""
    kinds = list(dict.fromkeys(table["kind"]))
    fig, axes = plt.subplots(
        len(kinds), 2, figsize=(11, 3.4 * len(kinds)), squeeze=False, sharex=True
    )
    for row, kind in enumerate(kinds):
        part = table[table["kind"] == kind]
        for col, metric in enumerate(("accuracy", "auroc")):
            ax = axes[row][col]
            for method, sub in part.groupby("method", sort=False):
                sub = sub.sort_values("layer")
                colour = METHOD_COLOURS.get(method, "#55A868")
                ax.plot(sub["layer"], sub[metric], marker="o", ms=3, color=colour, label=method)
                ax.fill_between(
                    sub["layer"],
                    sub[f"{metric}_low"],
                    sub[f"{metric}_high"],
                    color=colour,
                    alpha=0.2,
                    linewidth=0,
                )
                ax.fill_between(
                    sub["layer"],
                    sub[f"control_{metric}_low"],
                    sub[f"control_{metric}_high"],
                    color="grey",
                    alpha=0.15,
                    linewidth=0,
                )
                ax.plot(sub["layer"], sub[f"control_{metric}"], color="grey", lw=0.8, ls="--")
            ax.axhline(0.5, color="black", lw=0.6, ls=":")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0.3, 1.02)
            ax.set_ylabel(f"{metric} ({kind})")
            if row == len(kinds) - 1:
                ax.set_xlabel("layer")
            if row == 0 and col == 0:
                ax.plot([], [], color="grey", ls="--", label="shuffled-label control")
                ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)


def comparison_curves(table: pd.DataFrame, base: str | Path, title: str) -> list[Path]:
    """Cosine, transfer and head-alignment curves per layer (one column per method)."""
    methods = list(dict.fromkeys(table["method"]))
    panels = ["cosine", "transfer"]
    if any(c.startswith("head_cosine") for c in table.columns):
        panels.append("head")
    fig, axes = plt.subplots(
        len(panels), len(methods), figsize=(5.5 * len(methods), 3 * len(panels)), squeeze=False
    )
    for col, method in enumerate(methods):
        part = table[table["method"] == method]
        for row, panel in enumerate(panels):
            ax = axes[row][col]
            for kind, sub in part.groupby("kind", sort=False):
                sub = sub.sort_values("layer")
                if panel == "cosine":
                    ax.plot(sub["layer"], sub["cosine"], marker="o", ms=3, label=kind)
                    ax.set_ylabel("cosine(A, B)")
                elif panel == "transfer":
                    ax.plot(sub["layer"], sub["auroc_a"], lw=1, label=f"A own ({kind})")
                    ax.plot(sub["layer"], sub["auroc_b"], lw=1, label=f"B own ({kind})")
                    for col_name, label in (
                        ("transfer_a_on_b_auroc", "A's probe on B"),
                        ("transfer_b_on_a_auroc", "B's probe on A"),
                    ):
                        if col_name in sub:
                            ax.plot(sub["layer"], sub[col_name], ls="--", label=f"{label} ({kind})")
                    ax.axhline(0.5, color="black", lw=0.6, ls=":")
                    ax.set_ylabel("AUROC")
                else:
                    for side in ("a", "b"):
                        if f"head_cosine_{side}" in sub:
                            ax.plot(
                                sub["layer"],
                                sub[f"head_cosine_{side}"],
                                marker="o",
                                ms=3,
                                label=f"{side.upper()} vs score head ({kind})",
                            )
                    ax.axhline(0, color="black", lw=0.6, ls=":")
                    ax.set_ylabel("cosine with score head")
            ax.legend(fontsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if row == 0:
                ax.set_title(method)
            if row == len(panels) - 1:
                ax.set_xlabel("layer")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)


def embedding_plot(
    X: np.ndarray,
    labels: np.ndarray,
    base: str | Path,
    title: str,
    seed: int = 0,
    with_umap: bool = True,
) -> list[Path]:
    """PCA and (``with_umap``) UMAP (``random_state=seed``) of ``X`` ``[n, d]`` by ``labels``."""
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    Z = (X - X.mean(0)) / np.where(X.std(0) > 1e-8, X.std(0), 1.0)
    embeddings = {"PCA": PCA(n_components=2, random_state=seed).fit_transform(Z)}
    if with_umap:
        try:
            import umap
        except ImportError:  # umap-learn is a dependency; keep PCA if an install lacks it
            umap = None
        if umap is not None:
            neighbours = max(2, min(15, len(X) - 1))
            reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed)
            embeddings["UMAP"] = reducer.fit_transform(Z)
    fig, axes = plt.subplots(1, len(embeddings), figsize=(5.2 * len(embeddings), 4.6))
    axes = np.atleast_1d(axes)
    classes = list(dict.fromkeys(labels))
    for ax, (name, emb) in zip(axes, embeddings.items(), strict=True):
        for i, cls in enumerate(classes):
            mask = labels == cls
            ax.scatter(
                emb[mask, 0],
                emb[mask, 1],
                s=6,
                alpha=0.6,
                label=str(cls),
                color=CLASS_COLOURS[i % len(CLASS_COLOURS)],
            )
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize=8, markerscale=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)

"""What every figure shares: the Agg backend, colours, saving as PNG + SVG, violins.

Matplotlib runs with the Agg backend; nothing is shown on screen.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from interp.atomic import atomic_path  # noqa: E402

FAMILY_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52")
RANK_LABEL = "median rank (1 = most preferred)"


def save_figure(fig, base: str | Path) -> list[Path]:
    """Save ``fig`` as ``<base>.png`` (150 dpi) and ``<base>.svg`` (each atomically); close it;
    return the paths."""
    base = Path(base)
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    try:
        with atomic_path(paths[0]) as tmp:
            fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
        with atomic_path(paths[1]) as tmp:
            fig.savefig(tmp, format="svg", bbox_inches="tight")
    finally:
        plt.close(fig)
    return paths


def violin(
    ax,
    data: list[np.ndarray],
    positions: list[float],
    colour: str,
    width: float,
    side: str = "both",
) -> None:
    kept = [(d, p) for d, p in zip(data, positions, strict=True) if len(d) > 1 and np.ptp(d) > 0]
    if kept:
        parts = ax.violinplot(
            [d for d, _ in kept],
            positions=[p for _, p in kept],
            widths=width,
            showmedians=True,
            showextrema=False,
            side=side,
        )
        for body in parts["bodies"]:
            body.set_facecolor(colour)
            body.set_edgecolor("black")
            body.set_alpha(0.55)
        parts["cmedians"].set_color("black")
    for d, p in zip(data, positions, strict=True):
        if len(d) and (len(d) < 2 or np.ptp(d) == 0):
            ax.hlines(np.median(d), p - width / 3, p + width / 3, color=colour, lw=2)

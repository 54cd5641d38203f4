"""The validation figure: residual-patching profiles of the organisms and the agreement grid."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from analyses.figures.common import save_figure


def validation_figure(table: pd.DataFrame, profiles: pd.DataFrame, stem, summary: str) -> list:
    """Left: residual-patching profiles of the block organisms (normalised effect by block, the
    known block marked). Right: the agreement grid (organism x method). PNG and SVG."""
    organisms = list(dict.fromkeys(table["organism"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, (ax_p, ax_g) = plt.subplots(
        1, 2, figsize=(15, max(4.5, 0.32 * len(organisms) + 1.5)),
        gridspec_kw={"width_ratios": [1, 1.3]},
    )  # fmt: skip
    for name, g in profiles.groupby("organism", sort=False):
        line = ax_p.plot(g["layer"], g["normalised_effect"], marker=".", lw=1, label=name)[0]
        if g["expected_block"].notna().any():
            ax_p.axvline(g["expected_block"].iloc[0], color=line.get_color(), ls=":", lw=1)
    ax_p.set_xlabel("block (resid_post patched)")
    ax_p.set_ylabel("normalised effect (0 = none, 1 = all the way to the base)")
    ax_p.set_title("residual patching, base -> organism RM (dotted: known block)")
    if len(profiles):
        ax_p.legend(fontsize=6, ncol=2)
    colour = {True: "#4c9a2a", False: "#c0392b"}
    for i, org in enumerate(organisms):
        for j, method in enumerate(methods):
            hit = table[(table["organism"] == org) & (table["method"] == method)]
            if hit.empty:
                continue
            row = hit.iloc[0]
            ax_g.add_patch(plt.Rectangle((j, i), 1, 1, color=colour[bool(row["agree"])], alpha=0.8))
            ax_g.text(j + 0.5, i + 0.5, str(row["found"]).replace("block ", "b"), ha="center",
                      va="center", fontsize=6, color="white")  # fmt: skip
    ax_g.set_xlim(0, len(methods))
    ax_g.set_ylim(len(organisms), 0)
    ax_g.set_xticks([j + 0.5 for j in range(len(methods))], methods, rotation=40, ha="right",
                    fontsize=7)  # fmt: skip
    ax_g.set_yticks([i + 0.5 for i in range(len(organisms))], organisms, fontsize=7)
    ax_g.set_title(f"found location (green: agrees; red: miss)\n{summary}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)

"""Layerwise bias figures for a base/RM pair (PNG + SVG, Matplotlib Agg).

- ``layerwise_figure``: side by side, (a) the value-lens gap per depth for the RM and the base
  model (same readout) with 95 % bootstrap bands, (b) probe accuracy and direction cosine per
  layer when probe results are given, (c) the patching effect per layer and site (normalised
  effect with 95 % CIs; the raw gap change when the normalised effect is undefined).
- ``position_heatmap``: layer x position map of the patching effect for position sweeps.
- ``durability_figure``: the agency/communion gap of each checkpoint during RM training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.figures.common import plt, save_figure

ROLE_COLOURS = {"rm": "#C44E52", "base": "#4C72B0"}
SITE_COLOURS = {
    "resid_pre": "#4C72B0",
    "resid_post": "#8172B3",
    "attn_out": "#DD8452",
    "mlp_out": "#55A868",
}


def _lens_panel(ax, lens_gap: pd.DataFrame, design) -> None:
    for role, g in lens_gap.groupby("model_role"):
        g = g.sort_values("depth")
        colour = ROLE_COLOURS.get(role, None)
        ax.plot(g["depth"], g["gap"], marker="o", ms=3, label=role, color=colour)
        ax.fill_between(g["depth"], g["ci_low"], g["ci_high"], alpha=0.2, color=colour)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("depth (blocks applied; 0 = embeddings)")
    ax.set_ylabel(f"value-lens gap ({design.pair.first} - {design.pair.second})")
    ax.set_title("value lens (RM readout on each model)")
    ax.legend(fontsize=8)


def _probe_panel(ax, probes: pd.DataFrame) -> None:
    """Accuracy (with its CI band) on the left axis, cosines on the right axis."""
    df = probes.sort_values("layer")
    handles = []
    if "accuracy" in df and df["accuracy"].notna().any():
        g = df.dropna(subset=["accuracy"])
        handles += ax.plot(g["layer"], g["accuracy"], marker="o", ms=3, label="probe accuracy")
        if {"ci_low", "ci_high"} <= set(g.columns):
            ax.fill_between(g["layer"], g["ci_low"], g["ci_high"], alpha=0.2)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_ylabel("probe accuracy (chance 0.5)")
    cos_cols = [c for c in df.columns if c == "cosine" or c.startswith("head_cosine")]
    if cos_cols:
        twin = ax.twinx() if handles else ax
        for c in cos_cols:
            g = df.dropna(subset=[c])
            handles += twin.plot(g["layer"], g[c], ls="--", marker="s", ms=3, label=c)
        twin.set_ylabel("cosine")
    ax.set_xlabel("layer")
    ax.set_title("probes per layer")
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def _effect_panel(ax, effects: pd.DataFrame) -> None:
    eff = effects[effects["position"] == "all"] if "position" in effects else effects
    if eff.empty:
        eff = effects[effects["position"] == "-1"]
    use_norm = "normalised_effect" in eff and eff["normalised_effect"].notna().any()
    col, lo, hi = (
        ("normalised_effect", "normalised_ci_low", "normalised_ci_high")
        if use_norm
        else ("delta_gap", "delta_ci_low", "delta_ci_high")
    )
    for site, g in eff.groupby("site"):
        g = g.sort_values("layer")
        y = g[col].to_numpy(dtype=float)
        err = np.vstack([y - g[lo].to_numpy(dtype=float), g[hi].to_numpy(dtype=float) - y])
        ax.errorbar(
            g["layer"],
            y,
            yerr=np.abs(err),
            marker="o",
            ms=3,
            capsize=2,
            label=site,
            color=SITE_COLOURS.get(site),
        )
    ax.axhline(0, color="grey", lw=0.8)
    if use_norm:
        ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("patched block")
    ax.set_ylabel("normalised effect" if use_norm else "gap change")
    ax.set_title("patching effect (0 = none, 1 = base reading)" if use_norm else "patching effect")
    ax.legend(fontsize=8)


def layerwise_figure(
    lens_gap: pd.DataFrame,
    effects: pd.DataFrame | None,
    base: Path,
    title: str,
    design,
    probes: pd.DataFrame | None = None,
) -> list[Path]:
    """The per-pair layerwise bias figure; returns the PNG and SVG paths."""
    n = 1 + (probes is not None) + (effects is not None)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.0), squeeze=False)
    axes = axes[0]
    _lens_panel(axes[0], lens_gap, design)
    if probes is not None:
        _probe_panel(axes[1], probes)
    if effects is not None:
        _effect_panel(axes[-1], effects)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)


def position_heatmap(effects: pd.DataFrame, base: Path, title: str, design) -> list[Path]:
    """Layer x position heatmaps (one panel per site) of the patching effect."""
    eff = effects[effects["position"] != "all"].copy()
    if eff.empty:
        return []
    eff["offset"] = eff["position"].astype(int)
    use_norm = eff["normalised_effect"].notna().any()
    col = "normalised_effect" if use_norm else "delta_gap"
    sites = list(dict.fromkeys(eff["site"]))
    fig, axes = plt.subplots(1, len(sites), figsize=(4.5 * len(sites), 4.2), squeeze=False)
    for ax, site in zip(axes[0], sites):
        grid = eff[eff["site"] == site].pivot_table(index="layer", columns="offset", values=col)
        grid = grid[sorted(grid.columns)]
        vmax = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
        im = ax.imshow(
            grid.to_numpy(), aspect="auto", origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax
        )
        ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index], fontsize=6)
        ax.set_xlabel("position (offset from the last token)")
        ax.set_ylabel("patched block")
        ax.set_title(site)
        fig.colorbar(im, ax=ax, label="normalised effect" if use_norm else "gap change")
    fig.suptitle(f"{title}: {design.pair.first} - {design.pair.second} gap", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)


def _pair_label(rows: pd.DataFrame) -> str:
    if {"first", "second"} <= set(rows.columns) and len(rows):
        return f"{rows['first'].iloc[0]} - {rows['second'].iloc[0]}"
    return "first - second"


def durability_figure(durability: pd.DataFrame, base: Path, title: str = "") -> list[Path]:
    """Standardised gap (Cohen's d) per checkpoint and model, one panel per framing."""
    framings = list(dict.fromkeys(durability["framing"]))
    fig, axes = plt.subplots(1, len(framings), figsize=(4.6 * len(framings), 3.8), squeeze=False)
    for ax, framing in zip(axes[0], framings):
        sub = durability[durability["framing"] == framing]
        for model, g in sub.groupby("model"):
            g = g.sort_values("step")
            ax.errorbar(
                g["step"],
                g["d"],
                yerr=np.abs(np.vstack([g["d"] - g["d_ci_low"], g["d_ci_high"] - g["d"]])),
                marker="o",
                ms=3,
                capsize=2,
                label=model,
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"Cohen's d ({_pair_label(sub)})")
        ax.set_title(f"framing: {framing}")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)

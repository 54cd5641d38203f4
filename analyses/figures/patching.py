"""Layerwise bias figures for a base/RM pair (PNG + SVG, Matplotlib Agg).

- ``layerwise_figure``: stacked panels on ONE shared axis, the residual-stream depth (0 =
  embeddings, ``L`` = after the last block): (a) the value-lens gap per depth of the RM and of
  the base model (read by the same RM readout) with 95 % bootstrap bands; (b) when probe curves
  are given, probe accuracy (with CI bands) and direction cosines per layer; (c) when effects
  are given, the patching effect per site (normalised effect with 95 % CIs; the raw gap change
  when the normalised effect is undefined). Where each site sits on the axis: ``resid_pre`` of
  block ``b`` at depth ``b``, ``resid_post`` (and a probe on it) at ``b + 1``, ``attn_out`` and
  ``mlp_out`` (written inside block ``b``) at ``b + 0.35`` and ``b + 0.65``.
- ``position_heatmap``: layer x position map of the patching effect (one panel per site),
  positions labelled with their token where every item has the same token there.
- ``durability_figure``: the agency/communion gap of each checkpoint during RM training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analyses.figures.common import plt, save_figure

ROLE_COLOURS = {"rm": "#C44E52", "base": "#4C72B0"}
ROLE_LABELS = {"rm": "RM", "base": "base model"}
SITE_COLOURS = {
    "resid_pre": "#4C72B0",
    "resid_post": "#8172B3",
    "attn_out": "#DD8452",
    "mlp_out": "#55A868",
}
SITE_OFFSET = {"resid_pre": 0.0, "attn_out": 0.35, "mlp_out": 0.65, "resid_post": 1.0}
DEPTH_LABEL = (
    "residual-stream depth (blocks applied; 0 = embeddings). resid_pre of block b sits at b, "
    "its attn_out / mlp_out at b+0.35 / b+0.65, resid_post at b+1"
)
EFFECT_LABEL = "normalised effect (0 = no change, 1 = the base's reading)"


def _lens_panel(ax, lens_gap: pd.DataFrame, design) -> None:
    for role, g in lens_gap.groupby("model_role"):
        g = g.sort_values("depth")
        colour = ROLE_COLOURS.get(role, None)
        label = f"{ROLE_LABELS.get(role, role)} (RM readout)"
        ax.plot(g["depth"], g["gap"], marker="o", ms=3, label=label, color=colour)
        ax.fill_between(g["depth"], g["ci_low"], g["ci_high"], alpha=0.2, color=colour)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(f"value-lens gap\n{design.pair.first} - {design.pair.second}\n(reward units)")
    ax.set_title("(a) value lens: the reward the RM head would read at each depth", fontsize=9,
                 loc="left")  # fmt: skip
    ax.legend(fontsize=7, loc="best")


def curves_from_probe_table(probes: pd.DataFrame) -> pd.DataFrame:
    """``read_probe_results``' wide table (layer, accuracy, ci_low/high, cosine, head_cosine_*)
    as tidy curves: ``layer, series, kind (accuracy|cosine), value, ci_low, ci_high``."""
    rows = []
    for col in [c for c in probes.columns if c == "accuracy"]:
        for r in probes.dropna(subset=[col]).itertuples():
            rows.append({"layer": r.layer, "series": "probe accuracy", "kind": "accuracy",
                         "value": getattr(r, col), "ci_low": getattr(r, "ci_low", np.nan),
                         "ci_high": getattr(r, "ci_high", np.nan)})  # fmt: skip
    for col in [c for c in probes.columns if c == "cosine" or c.startswith("head_cosine")]:
        for layer, value in probes[["layer", col]].dropna().itertuples(index=False):
            rows.append({"layer": layer, "series": col, "kind": "cosine", "value": value,
                         "ci_low": np.nan, "ci_high": np.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=["layer", "series", "kind", "value", "ci_low", "ci_high"])


def _probe_panel(ax, curves: pd.DataFrame) -> None:
    """Accuracy (with CI bands) on the left axis, cosines on the right; probes read resid_post."""
    handles = []
    acc = curves[curves["kind"] == "accuracy"]
    for i, (series, g) in enumerate(acc.groupby("series", sort=False)):
        g = g.sort_values("layer")
        x = g["layer"].to_numpy(dtype=float) + 1.0
        colour = f"C{i}"
        handles += ax.plot(x, g["value"], marker="o", ms=3, label=series, color=colour)
        if g["ci_low"].notna().any():
            ax.fill_between(x, g["ci_low"], g["ci_high"], alpha=0.15, color=colour)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("probe accuracy\n(chance 0.5)")
    cos = curves[curves["kind"] == "cosine"]
    if len(cos):
        twin = ax.twinx()
        for i, (series, g) in enumerate(cos.groupby("series", sort=False)):
            g = g.sort_values("layer")
            handles += twin.plot(g["layer"].to_numpy(dtype=float) + 1.0, g["value"], ls="--",
                                 marker="s", ms=3, label=series, color=f"C{i + 4}")  # fmt: skip
        twin.set_ylabel("cosine (dashed)")
    ax.set_title("(b) linear probes on resid_post at the last token (word-grouped CV)",
                 fontsize=9, loc="left")  # fmt: skip
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="best")


def _effect_columns(eff: pd.DataFrame) -> tuple[str, str, str, bool]:
    use_norm = "normalised_effect" in eff and eff["normalised_effect"].notna().any()
    if use_norm:
        return "normalised_effect", "normalised_ci_low", "normalised_ci_high", True
    return "delta_gap", "delta_ci_low", "delta_ci_high", False


def _effect_panel(ax, effects: pd.DataFrame) -> None:
    eff = effects[effects["position"] == "all"] if "position" in effects else effects
    if eff.empty:
        eff = effects[effects["position"] == "-1"]
    col, lo, hi, use_norm = _effect_columns(eff)
    for site, g in eff.groupby("site", sort=False):
        g = g.dropna(subset=[col]).sort_values("layer")
        y = g[col].to_numpy(dtype=float)
        err = np.vstack([y - g[lo].to_numpy(dtype=float), g[hi].to_numpy(dtype=float) - y])
        x = g["layer"].to_numpy(dtype=float) + SITE_OFFSET.get(site, 0.0)
        ax.errorbar(x, y, yerr=np.abs(np.nan_to_num(err)), marker="o", ms=3, capsize=2,
                    label=site, color=SITE_COLOURS.get(site), lw=1)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    if use_norm:
        ax.axhline(1, color="grey", lw=0.8, ls=":")
        _clip_effect_axis(ax, eff[col].to_numpy(dtype=float), eff[lo], eff[hi])
    ax.set_ylabel(EFFECT_LABEL.replace(" (", "\n(") if use_norm else "gap change\n(reward units)")
    ax.set_title("(c) patching the base model's activation into the RM, all positions",
                 fontsize=9, loc="left")  # fmt: skip
    ax.legend(fontsize=7, loc="best", title="patched site", title_fontsize=7)


def _clip_effect_axis(ax, y: np.ndarray, lo, hi, limit: float = 3.0) -> None:
    """Keep normalised effects readable: show [-0.25, 1.25] and every point, and intervals up to
    ``limit``; intervals beyond the panel are clipped (said in the panel)."""
    y = y[np.isfinite(y)]
    if not len(y):
        return
    bottom = min(-0.25, float(y.min()) - 0.1, max(float(np.nanmin(lo)), -limit))
    top = max(1.25, float(y.max()) + 0.1, min(float(np.nanmax(hi)), limit))
    ax.set_ylim(bottom, top)
    if np.nanmin(lo) < bottom or np.nanmax(hi) > top:
        ax.text(0.01, 0.03, "intervals clipped at the panel's edge", transform=ax.transAxes,
                fontsize=7, color="grey")  # fmt: skip


def layerwise_figure(
    lens_gap: pd.DataFrame,
    effects: pd.DataFrame | None,
    base: Path,
    title: str,
    design,
    probes: pd.DataFrame | None = None,
) -> list[Path]:
    """The per-pair layerwise bias figure on one shared depth axis; returns PNG and SVG paths.

    ``probes``: tidy curves (``layer, series, kind, value, ci_low, ci_high``; ``layer`` = the
    probed block, drawn at its resid_post depth) or ``read_probe_results``' wide table."""
    if probes is not None and "series" not in probes:
        probes = curves_from_probe_table(probes)
    panels = [_lens_panel]
    if probes is not None and len(probes):
        panels.append(lambda ax, _d: _probe_panel(ax, probes))
    if effects is not None:
        panels.append(lambda ax, _d: _effect_panel(ax, effects))
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.5, 2.9 * len(panels)), sharex=True,
                             squeeze=False)  # fmt: skip
    axes = axes[:, 0]
    _lens_panel(axes[0], lens_gap, design)
    for ax, draw in zip(axes[1:], panels[1:]):
        draw(ax, design)
    n_depth = int(lens_gap["depth"].max())
    step = max(1, int(np.ceil((n_depth + 1) / 16)))
    axes[-1].set_xticks(range(0, n_depth + 1, step))
    axes[-1].set_xlim(-0.5, n_depth + 0.5)
    axes[-1].set_xlabel(DEPTH_LABEL, fontsize=8)
    for ax in axes:
        ax.grid(axis="x", color="#dddddd", lw=0.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, base)


def position_heatmap(
    effects: pd.DataFrame, base: Path, title: str, design, tokens: dict | None = None
) -> list[Path]:
    """Layer x position heatmaps (one panel per site) of the patching effect.

    ``tokens`` maps a position offset (-1 = last token) to a label such as its token text."""
    eff = effects[effects["position"] != "all"].copy()
    if eff.empty:
        return []
    eff["offset"] = eff["position"].astype(int)
    col, _lo, _hi, use_norm = _effect_columns(eff)
    sites = list(dict.fromkeys(eff["site"]))
    grids = [
        eff[eff["site"] == site].pivot_table(index="layer", columns="offset", values=col)
        for site in sites
    ]
    vmax = max(float(np.nanmax(np.abs(g.to_numpy()))) for g in grids) or 1.0
    fig, axes = plt.subplots(1, len(sites), figsize=(3.9 * len(sites) + 1.2, 3.8), squeeze=False)
    im = None
    for ax, site, grid in zip(axes[0], sites, grids):
        grid = grid[sorted(grid.columns)]
        values = grid.to_numpy()
        im = ax.imshow(values, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        labels = [f"{c}\n{tokens[c]}" if tokens and c in tokens else str(c) for c in grid.columns]
        ax.set_xticks(range(len(grid.columns)), labels, fontsize=6)
        ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index], fontsize=7)
        if values.size <= 144:
            for (r, c), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(v) > 0.6 * vmax else "black")  # fmt: skip
        ax.set_xlabel("token position (offset from the last token)", fontsize=8)
        ax.set_ylabel("patched block")
        ax.set_title(site, fontsize=9)
    label = EFFECT_LABEL if use_norm else "gap change (reward units)"
    fig.colorbar(im, ax=list(axes[0]), label=label, shrink=0.9)
    fig.suptitle(f"{title}: {design.pair.first} - {design.pair.second} gap", fontsize=10)
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

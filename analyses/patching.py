"""Where does an RM's agency/communion preference come from? Patch a base model into its RM.

``patch_sweep`` runs, for every ``(site, layer[, position])``, the receiver (the RM, for
``base-into-rm``) with that activation replaced by the source's (the base model's) activation on
the identical input, and records every item's score; ``effects_table`` turns the scores into
statistics; ``run_patch`` does both, adds the value lens, and writes tables, a JSON summary and
figures.

Scores and readings. Every number is read by the RM's readout (its final norm and score head) at
the last token. The *gap* is mean score of the first category's words minus the second's
(default Agency - Communion), each word's score first averaged over prompts. Three gaps per
patch: ``clean_gap`` (receiver unpatched), ``patched_gap`` and ``source_gap`` - the **base
reading**: the RM readout applied to the source model's own final residual stream (the value
lens of the source at its last depth, which is also what patching the source's entire final
residual stream into the receiver gives). The normalised effect is
``(patched_gap - clean_gap) / (source_gap - clean_gap)``: 0 = the patch changes nothing,
1 = it moves the gap all the way to the base reading. It is undefined (NaN) when
``|source_gap - clean_gap|`` is below 1e-6 times the score scale.

Self-test. Before every sweep the receiver is patched into itself with the sweep's own code path
and stacking, for every site and position of the sweep at up to four of its blocks (first, last,
evenly spaced between) on a few items; every score must equal its clean twin bit for bit in
float32, or the sweep is refused. Both models get the same token ids (checked by sha256 per item
group); the fast path never pads, so the tokenizers' padding sides play no part.

Uncertainty. Per-example values are kept (one row per patch and item). Confidence intervals
(95 %, percentile) resample words with replacement within each category (``n_bootstrap``
resamples, shared by every patch). The p-value is a sign-flip randomisation test of the gap
change: each word's change (patched - clean, averaged over prompts) is centred on the mean change
of all words (a shift common to all words cannot move the gap), the centred changes get random
signs, and the gap change is recomputed; ``p = (1 + #|T*| >= |T|) / (1 + n_permutations)``. It
assumes the centred changes are symmetric under the null. P-values are corrected across every
patch of the sweep (all layers, sites and positions): Bonferroni (``p_bonferroni``, family-wise)
and Benjamini-Hochberg (``p_fdr_bh``). Effect size: Cohen's d between the two categories' word
changes (``d_change``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analyses.prompts import Prompt, load_prompts
from analyses.provenance import provenance
from analyses.stats_tests import benjamini_hochberg, bonferroni, cohens_d
from interp.errors import UserError
from interp.formatting import conversation_format, response_ids
from interp.loading import LoadedModel, ModelSpec, load_model
from interp.patch_runner import (
    ItemGroup,
    PatchPlan,
    PatchSpec,
    SelfTest,
    clean_run,
    group_items,
    patched_scores,
    self_test,
)
from interp.progress import NoProgress, Progress
from interp.sites import check_sites
from interp.spans import SITES, hook_name
from interp.value_lens import RewardReadout, reward_readout, rows_per_pass

DIRECTIONS = ("base-into-rm", "rm-into-base")
BASE_READING = (
    "source_gap: the RM readout (final norm + score head) applied to the source model's final "
    "residual stream at the last token = value lens of the source at its last depth = the gap "
    "after patching the source's whole final residual stream into the receiver"
)


@dataclass(frozen=True)
class PatchSettings:
    """What to patch and how to test it (see the module docstring)."""

    sites: tuple[str, ...] = ("resid_pre",)
    layers: str = "all"
    positions: str = "all"
    direction: str = "base-into-rm"
    gap: tuple[str, str] = ("Agency", "Communion")
    group_size: int | None = None
    n_bootstrap: int = 2000
    n_permutations: int = 10_000
    seed: int = 0
    self_test_items: int = 6
    device: str | None = None


# ------------------------------------------------------------------------------ parsing
def parse_layers(text: str, n_layers: int) -> tuple[int, ...]:
    """``all`` | ``0,5,10`` | ``start:stop[:step]`` (Python slice) -> block indices."""
    text = (text or "all").strip()
    if text == "all":
        return tuple(range(n_layers))
    try:
        if ":" in text:
            parts = [int(p) if p else None for p in text.split(":")]
            layers = tuple(range(n_layers))[slice(*parts)]
        else:
            layers = tuple(int(p) for p in text.split(","))
    except ValueError:
        raise UserError(
            f"--layers {text!r}: use all, a list like 0,5,10 or a slice like 0:30:2"
        ) from None
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad or not layers:
        raise UserError(f"--layers {text!r}: blocks run from 0 to {n_layers - 1}")
    return tuple(sorted(set(layers)))


def parse_positions(text: str) -> tuple[int | None, ...]:
    """``all`` | ``last`` | ``-1,-2`` | ``last:K`` (the last K positions) -> offsets (None = all)."""
    out: list[int | None] = []
    for part in (text or "all").split(","):
        part = part.strip()
        if part == "all":
            out.append(None)
        elif part == "last":
            out.append(-1)
        elif part.startswith("last:"):
            try:
                k = int(part[5:])
            except ValueError:
                raise UserError(f"--positions {part!r}: last:K needs a whole number") from None
            out.extend(range(-1, -k - 1, -1))
        else:
            try:
                value = int(part)
            except ValueError:
                raise UserError(
                    f"--positions {part!r}: use all, last, last:K or offsets such as -1,-2"
                ) from None
            if value >= 0:
                raise UserError("--positions: offsets count from the end: -1 is the last token")
            out.append(value)
    return tuple(dict.fromkeys(out))


# ------------------------------------------------------------------------------ model pair
def check_pair(base: LoadedModel, rm: LoadedModel) -> None:
    """Refuse pairs that differ in architecture, layer count, width or tokenizer (saying which)."""
    a, b = base.model.config.get_text_config(), rm.model.config.get_text_config()
    problems = []
    if a.model_type != b.model_type or type(base.backbone).__name__ != type(rm.backbone).__name__:
        problems.append(
            f"architecture ({a.model_type}/{type(base.backbone).__name__} vs "
            f"{b.model_type}/{type(rm.backbone).__name__})"
        )
    if base.n_layers != rm.n_layers:
        problems.append(f"layer count ({base.n_layers} vs {rm.n_layers})")
    if base.d_model != rm.d_model:
        problems.append(f"width ({base.d_model} vs {rm.d_model})")
    va, vb = base.tokenizer.get_vocab(), rm.tokenizer.get_vocab()
    if va != vb:
        differ = sum(1 for t in set(va) | set(vb) if va.get(t) != vb.get(t))
        problems.append(f"tokenizer ({len(va)} vs {len(vb)} tokens, {differ} differ)")
    else:
        probe = "Agency and communion: what, in one word, is the greatest thing ever?"
        if base.tokenizer(probe).input_ids != rm.tokenizer(probe).input_ids:
            problems.append("tokenizer (same vocabulary, different tokenisation)")
    if problems:
        raise UserError(
            f"cannot patch between {base.name} and {rm.name}: they differ in " + "; ".join(problems)
        )


@dataclass(frozen=True)
class Items:
    """Tokenised once: groups for the runner and a table (item, prompt_key, framing, response)."""

    groups: tuple[ItemGroup, ...]
    table: pd.DataFrame
    template_mode: str


def build_items(rm: LoadedModel, prompts: list[Prompt], words: list[str]) -> Items:
    """Every (prompt, word) conversation formatted by the RM's template (used for both models)."""
    formats, rows = [], []
    mode = ""
    for prompt in prompts:
        fmt = conversation_format(rm, prompt.text)
        mode = fmt.mode
        suffixes = []
        for word in words:
            ids = response_ids(rm, fmt, word)
            suffixes.append([*ids, *fmt.suffix_ids])
            rows.append((prompt.key, prompt.framing, word, len(ids)))
        formats.append((fmt.prefix_ids, suffixes))
    table = pd.DataFrame(rows, columns=["prompt_key", "framing", "response", "n_tokens"])
    table.insert(0, "item", np.arange(len(table)))
    return Items(tuple(group_items(formats)), table, mode)


# ------------------------------------------------------------------------------ sweep
@dataclass(frozen=True)
class SweepResult:
    """Raw sweep output. Arrays are float32 over items (``items.table`` order).

    ``clean`` [N]: receiver unpatched (copy 0); ``source`` [N]: the base reading per item;
    ``patched``/``twin`` [n_patches, N]: patched scores and their exact clean twins;
    ``lens_receiver``/``lens_source`` [N, L + 1]: value-lens readings.
    """

    patches: tuple[PatchSpec, ...]
    items: Items
    clean: np.ndarray
    source: np.ndarray
    patched: np.ndarray
    twin: np.ndarray
    lens_receiver: np.ndarray
    lens_source: np.ndarray
    self_test: SelfTest
    group_size: int
    seconds: float


def default_group_size(device: torch.device) -> int:
    """Patches stacked per forward pass: 1 on CPU (bigger batches barely help there), 4 on GPU."""
    return 4 if device.type == "cuda" else 1


def patch_sweep(
    receiver: LoadedModel,
    source: LoadedModel,
    readout: RewardReadout,
    items: Items,
    patches: list[PatchSpec],
    group_size: int | None = None,
    self_test_items: int = 6,
    progress: Progress | None = None,
) -> SweepResult:
    """Run every patch on every item (fast path), after the self-test; see the module doc."""
    progress = progress or NoProgress()
    t0 = time.perf_counter()
    device = receiver.device
    size = group_size or default_group_size(device)
    plan = PatchPlan(tuple(patches), size)
    first = max(items.groups, key=lambda g: g.n)
    test = self_test(
        receiver,
        first.subset(min(self_test_items, first.n)),
        plan,
        readout,
        device,
        rows_per_pass(device, first.prefix_len + first.suffix_len, size),
    )
    if not test.passed:
        raise UserError(
            f"self-test failed: patching {receiver.name} into itself changed scores by up to "
            f"{test.max_abs_diff:.3g}; the patching machinery does not line up for this model"
        )
    n = len(items.table)
    n_layers = receiver.n_layers
    patched = np.full((len(patches), n), np.nan, dtype=np.float32)
    twin = np.full_like(patched, np.nan)
    clean = np.full(n, np.nan, dtype=np.float32)
    src = np.full(n, np.nan, dtype=np.float32)
    lens_r = np.full((n, n_layers + 1), np.nan, dtype=np.float32)
    lens_s = np.full_like(lens_r, np.nan)
    progress.start(len(items.groups) * (len(plan.groups()) + 2), "patching sweep")
    prefix_cache: dict = {}
    for group in items.groups:
        if any(key[0] != group.prefix for key in prefix_cache):
            prefix_cache.clear()  # a new prompt: patched prefix caches of the last one are done
        rows = rows_per_pass(device, group.prefix_len + group.suffix_len, size)
        r_run = clean_run(receiver, group, plan.receiver_sites(), size, rows, device, lens=True)
        progress.advance()
        s_run = clean_run(source, group, plan.source_sites(), 1, rows, device, lens=True)
        progress.advance()
        p, t = patched_scores(receiver, group, plan, r_run, s_run, readout, prefix_cache)
        progress.advance(len(plan.groups()))
        idx = list(group.item_index)
        patched[:, idx] = p.numpy()
        twin[:, idx] = t.numpy()
        clean[idx] = readout(r_run.final_last[0]).float().cpu().numpy()
        src[idx] = readout(s_run.final_last[0]).float().cpu().numpy()
        lens_r[idx] = readout(r_run.lens_last).float().cpu().numpy()
        lens_s[idx] = readout(s_run.lens_last).float().cpu().numpy()
    progress.close()
    return SweepResult(
        tuple(patches),
        items,
        clean,
        src,
        patched,
        twin,
        lens_r,
        lens_s,
        test,
        size,
        time.perf_counter() - t0,
    )


# ------------------------------------------------------------------------------ statistics
@dataclass(frozen=True)
class GapDesign:
    """Words of the two gap categories (words in both are left out) and their positions."""

    first: str
    second: str
    words_first: tuple[str, ...]
    words_second: tuple[str, ...]


def gap_design(categories: pd.DataFrame, words: list[str], gap: tuple[str, str]) -> GapDesign:
    """Words of each gap category among ``words``; raises if either is empty."""
    cats = categories.drop_duplicates()
    by_word = cats.groupby("response")["category"].agg(set)
    a, b = gap
    in_a = tuple(w for w in words if a in by_word.get(w, set()) and b not in by_word.get(w, set()))
    in_b = tuple(w for w in words if b in by_word.get(w, set()) and a not in by_word.get(w, set()))
    if len(in_a) < 2 or len(in_b) < 2:
        raise UserError(
            f"the gap {a} - {b} needs at least 2 words in each category; found {len(in_a)} and "
            f"{len(in_b)} (categories present: {', '.join(sorted(set(cats['category'])))})"
        )
    return GapDesign(a, b, in_a, in_b)


def word_means(values: np.ndarray, table: pd.DataFrame, words: tuple[str, ...]) -> np.ndarray:
    """Average item values over prompts per word: ``values`` [..., N] -> [..., len(words)]."""
    col = {w: i for i, w in enumerate(words)}
    sel = table["response"].map(col)
    keep = sel.notna().to_numpy()
    idx = sel[keep].astype(int).to_numpy()
    v = values[..., keep]
    out = np.zeros((*values.shape[:-1], len(words)))
    count = np.zeros((*values.shape[:-1], len(words)))
    ok = ~np.isnan(v)
    np.add.at(out.T, idx, np.where(ok, v, 0.0).T)
    np.add.at(count.T, idx, ok.T.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / count


def _gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.nanmean(a, axis=-1) - np.nanmean(b, axis=-1)


def _ci(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    alpha = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        lo = np.nanquantile(samples, alpha, axis=-1)
        hi = np.nanquantile(samples, 1 - alpha, axis=-1)
    return lo, hi


def effects_table(
    result: SweepResult, design: GapDesign, n_bootstrap: int, n_permutations: int, seed: int
) -> pd.DataFrame:
    """One row per patch: gaps, change, normalised effect with CIs, d, sign-flip p, corrections."""
    table = result.items.table
    rng = np.random.default_rng(seed)
    wa, wb = design.words_first, design.words_second
    na, nb = len(wa), len(wb)
    boot_a = rng.integers(0, na, size=(n_bootstrap, na))
    boot_b = rng.integers(0, nb, size=(n_bootstrap, nb))
    weights = np.concatenate([np.full(na, 1 / na), np.full(nb, -1 / nb)])
    flips = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, na + nb))
    clean_a = word_means(result.twin, table, wa)  # [P, na] clean twins
    clean_b = word_means(result.twin, table, wb)
    pat_a = word_means(result.patched, table, wa)
    pat_b = word_means(result.patched, table, wb)
    src_a = word_means(result.source, table, wa)  # [na]
    src_b = word_means(result.source, table, wb)
    n_prompts = table["prompt_key"].nunique()
    scale = float(np.nanstd(np.concatenate([src_a, src_b, clean_a[0], clean_b[0]]))) or 1.0
    rows = []
    for i, spec in enumerate(result.patches):
        ca, cb, pa, pb = clean_a[i], clean_b[i], pat_a[i], pat_b[i]
        if np.isnan(pa).all() or np.isnan(pb).all():
            rows.append({"site": spec.site, "layer": spec.layer, "position": spec.position_label})
            continue
        clean_gap, patched_gap, source_gap = _gap(ca, cb), _gap(pa, pb), _gap(src_a, src_b)
        delta = patched_gap - clean_gap
        denom = source_gap - clean_gap
        norm = delta / denom if abs(denom) > 1e-6 * scale else math.nan
        # bootstrap over words (stratified)
        b_clean = np.nanmean(ca[boot_a], -1) - np.nanmean(cb[boot_b], -1)
        b_pat = np.nanmean(pa[boot_a], -1) - np.nanmean(pb[boot_b], -1)
        b_src = np.nanmean(src_a[boot_a], -1) - np.nanmean(src_b[boot_b], -1)
        b_delta = b_pat - b_clean
        with np.errstate(invalid="ignore", divide="ignore"):
            b_norm = np.where(
                np.abs(b_src - b_clean) > 1e-6 * scale, b_delta / (b_src - b_clean), np.nan
            )
        d_lo, d_hi = _ci(b_delta)
        n_lo, n_hi = _ci(b_norm) if not math.isnan(norm) else (math.nan, math.nan)
        # sign-flip test on centred per-word changes
        change = np.concatenate([pa - ca, pb - cb])
        ok = ~np.isnan(change)
        centred = np.where(ok, change - np.nanmean(change), 0.0)
        observed = float(np.sum(weights * centred))
        null = np.abs((flips * (weights * centred)).sum(-1))
        tol = 1e-12 * max(abs(observed), 1e-300)
        p = (1 + int(np.sum(null >= abs(observed) - tol))) / (1 + n_permutations)
        if np.allclose(centred, 0.0):
            p = 1.0
        rows.append(
            {
                "site": spec.site,
                "layer": spec.layer,
                "position": spec.position_label,
                "hook": hook_name(spec.site, spec.layer),
                "n_words_" + design.first: int(np.sum(~np.isnan(pa))),
                "n_words_" + design.second: int(np.sum(~np.isnan(pb))),
                "n_prompts": n_prompts,
                "clean_gap": clean_gap,
                "patched_gap": patched_gap,
                "source_gap": source_gap,
                "delta_gap": delta,
                "delta_ci_low": float(d_lo),
                "delta_ci_high": float(d_hi),
                "normalised_effect": norm,
                "normalised_ci_low": float(n_lo),
                "normalised_ci_high": float(n_hi),
                "d_change": cohens_d(pa - ca, pb - cb),
                "p_signflip": p,
                "max_abs_word_change": float(np.nanmax(np.abs(change))),
            }
        )
    out = pd.DataFrame(rows)
    if "p_signflip" in out:
        out["p_bonferroni"] = bonferroni(out["p_signflip"].to_numpy(dtype=float))
        out["p_fdr_bh"] = benjamini_hochberg(out["p_signflip"].to_numpy(dtype=float))
    return out


def item_table(result: SweepResult) -> pd.DataFrame:
    """Per-example values: one row per (patch, item) with clean, patched and change."""
    base = result.items.table[["item", "prompt_key", "framing", "response"]]
    frames = []
    for i, spec in enumerate(result.patches):
        f = base.copy()
        f.insert(0, "position", spec.position_label)
        f.insert(0, "layer", spec.layer)
        f.insert(0, "site", spec.site)
        f["clean"] = result.twin[i]
        f["patched"] = result.patched[i]
        f["change"] = result.patched[i] - result.twin[i]
        f["base_reading"] = result.source
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def lens_gap_table(
    result: SweepResult, design: GapDesign, roles: tuple[str, str], n_bootstrap: int, seed: int
) -> pd.DataFrame:
    """Value-lens gap per depth (0 = embeddings, L = final) for receiver and source, with CIs."""
    table = result.items.table
    rng = np.random.default_rng(seed + 1)
    na, nb = len(design.words_first), len(design.words_second)
    boot_a = rng.integers(0, na, size=(n_bootstrap, na))
    boot_b = rng.integers(0, nb, size=(n_bootstrap, nb))
    rows = []
    for role, lens in zip(roles, (result.lens_receiver, result.lens_source)):
        a = word_means(lens.T, table, design.words_first)  # [L+1, na]
        b = word_means(lens.T, table, design.words_second)
        for depth in range(lens.shape[1]):
            boot = np.nanmean(a[depth][boot_a], -1) - np.nanmean(b[depth][boot_b], -1)
            lo, hi = _ci(boot)
            rows.append(
                {
                    "model_role": role,
                    "depth": depth,
                    "gap": float(_gap(a[depth], b[depth])),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "mean_score": float(np.nanmean(np.concatenate([a[depth], b[depth]]))),
                }
            )
    return pd.DataFrame(rows)


def lens_item_table(result: SweepResult, roles: tuple[str, str]) -> pd.DataFrame:
    base = result.items.table[["item", "prompt_key", "framing", "response"]]
    frames = []
    for role, lens in zip(roles, (result.lens_receiver, result.lens_source)):
        for depth in range(lens.shape[1]):
            f = base.copy()
            f.insert(0, "depth", depth)
            f.insert(0, "model_role", role)
            f["score"] = lens[:, depth]
            frames.append(f)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------ end to end
def load_pair(base_name: str, rm_name: str, device: str | None) -> tuple[LoadedModel, LoadedModel]:
    """Load the base (as an LM; only its decoder stack is used) and the RM in float32."""
    rm = load_model(ModelSpec(rm_name, kind="rm", dtype="float32", device=device))
    base = load_model(ModelSpec(base_name, kind="lm", dtype="float32", device=device))
    check_pair(base, rm)
    return base, rm


def _write_table(df: pd.DataFrame, path: Path) -> Path:
    df.to_parquet(path, index=False) if path.suffix == ".parquet" else df.to_csv(path, index=False)
    return path


def run_patch(
    base_name: str,
    rm_name: str,
    prompts_spec: str,
    responses_spec: str,
    out_dir: Path,
    settings: PatchSettings = PatchSettings(),
    prompt_keys: tuple[str, ...] | None = None,
    probes: Path | None = None,
    progress: Progress | None = None,
    models: tuple[LoadedModel, LoadedModel] | None = None,
    probe_compare: Path | None = None,
) -> dict:
    """Patching sweep + value lens between a base model and an RM; writes ``out_dir``.

    Files: ``patch_effects.csv`` (one row per patch), ``patch_items.parquet`` (per-example
    values), ``value_lens_gap.csv``, ``value_lens_items.parquet``, ``patch_summary.json``, and
    figures ``layerwise_bias.png/.svg`` (+ ``patch_heatmap.png/.svg`` for position sweeps).
    Returns the summary dict.
    """
    from analyses.patching_plots import layerwise_figure, position_heatmap
    from analyses.responses import load_responses

    progress = progress or NoProgress()
    if settings.direction not in DIRECTIONS:
        raise UserError(f"--direction must be one of {', '.join(DIRECTIONS)}")
    unknown = [s for s in settings.sites if s not in SITES]
    if unknown:
        raise UserError(f"unknown site(s) {', '.join(unknown)}; sites: {', '.join(SITES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base, rm = models if models is not None else load_pair(base_name, rm_name, settings.device)
    if models is not None:
        check_pair(base, rm)
    readout = reward_readout(rm)
    receiver, source = (rm, base) if settings.direction == "base-into-rm" else (base, rm)
    roles = ("rm", "base") if settings.direction == "base-into-rm" else ("base", "rm")
    prompts = load_prompts(prompts_spec, prompt_keys)
    response_set = load_responses(responses_spec)
    words = list(response_set.responses.words)
    design = gap_design(response_set.categories, words, settings.gap)
    for model in (rm, base):
        check_sites(model)
    items = build_items(rm, prompts, words)
    layers = parse_layers(settings.layers, rm.n_layers)
    positions = parse_positions(settings.positions)
    patches = [
        PatchSpec(s, layer, pos) for s in settings.sites for layer in layers for pos in positions
    ]
    result = patch_sweep(
        receiver,
        source,
        readout,
        items,
        patches,
        settings.group_size,
        settings.self_test_items,
        progress,
    )
    effects = effects_table(
        result, design, settings.n_bootstrap, settings.n_permutations, settings.seed
    )
    lens_gap = lens_gap_table(result, design, roles, settings.n_bootstrap, settings.seed)
    files = [
        _write_table(effects, out_dir / "patch_effects.csv"),
        _write_table(item_table(result), out_dir / "patch_items.parquet"),
        _write_table(lens_gap, out_dir / "value_lens_gap.csv"),
        _write_table(lens_item_table(result, roles), out_dir / "value_lens_items.parquet"),
    ]
    probe_table = read_probe_results(probes, probe_compare)
    b_label, r_label = short_name(base.name), short_name(rm.name)
    title = (
        f"patching {b_label} into {r_label}"
        if settings.direction == "base-into-rm"
        else f"patching {r_label} into {b_label}"
    )
    files += layerwise_figure(
        lens_gap, effects, out_dir / "layerwise_bias", title, design, probe_table
    )
    if any(p is not None for p in positions):
        files += position_heatmap(effects, out_dir / "patch_heatmap", title, design)
    summary = _summary(
        result, effects, lens_gap, design, settings, base, rm, prompts, response_set, items
    )
    summary["files"] = [str(f) for f in files]
    (out_dir / "patch_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def short_name(name: str) -> str:
    """A model label for figures: a folder path becomes its last two components."""
    parts = Path(name).parts
    return "/".join(parts[-2:]) if len(parts) > 2 else name


def _table(path: Path, default_name: str) -> pd.DataFrame:
    path = Path(path)
    if path.is_dir():
        path = path / default_name
    if not path.exists():
        raise UserError(f"{path}: no such file")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def read_probe_results(probes: Path | None, compare: Path | None = None) -> pd.DataFrame | None:
    """Per-layer probe curves for the layerwise figure, from ``train-probes`` output
    (``probes.parquet``: accuracy with ``accuracy_low/high``; the first site kind and the
    logistic method are kept) and/or ``compare-probes`` output (``compare.parquet``: direction
    ``cosine`` between the two models and ``head_cosine_*`` with the RM's score head). A folder
    or a table file (Parquet/CSV with a ``layer`` column) is accepted for each."""
    frames = []
    if probes is not None:
        df = _table(probes, "probes.parquet")
        if "layer" not in df or "accuracy" not in df:
            raise UserError(f"--probes {probes}: needs 'layer' and 'accuracy' columns")
        if "kind" in df:
            df = df[df["kind"] == df["kind"].iloc[0]]
        if "method" in df and df["method"].nunique() > 1:
            keep = "logistic" if "logistic" in set(df["method"]) else df["method"].iloc[0]
            df = df[df["method"] == keep]
        df = df.rename(columns={"accuracy_low": "ci_low", "accuracy_high": "ci_high"})
        frames.append(df[[c for c in ("layer", "accuracy", "ci_low", "ci_high") if c in df]])
    if compare is not None:
        df = _table(compare, "compare.parquet")
        if "layer" not in df:
            raise UserError(f"--probe-compare {compare}: needs a 'layer' column")
        if "kind" in df:
            df = df[df["kind"] == df["kind"].iloc[0]]
        if "method" in df and df["method"].nunique() > 1:
            keep = "logistic" if "logistic" in set(df["method"]) else df["method"].iloc[0]
            df = df[df["method"] == keep]
        cols = [c for c in df.columns if c == "cosine" or c.startswith("head_cosine")]
        frames.append(df[["layer", *cols]])
    if not frames:
        return None
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on="layer", how="outer")
    return out.sort_values("layer").reset_index(drop=True)


def _summary(
    result, effects, lens_gap, design, settings, base, rm, prompts, response_set, items
) -> dict:
    eff = (
        effects.dropna(subset=["normalised_effect"]) if "normalised_effect" in effects else effects
    )
    top = {}
    for site, g in eff.groupby("site"):
        row = g.loc[g["normalised_effect"].abs().idxmax()]
        top[site] = {
            "layer": int(row["layer"]),
            "position": row["position"],
            "normalised_effect": float(row["normalised_effect"]),
            "ci": [float(row["normalised_ci_low"]), float(row["normalised_ci_high"])],
            "p_fdr_bh": float(row["p_fdr_bh"]),
        }
    final_depth = lens_gap["depth"].max()
    lens_final = {
        r: float(g.loc[g["depth"] == final_depth, "gap"].iloc[0])
        for r, g in lens_gap.groupby("model_role")
    }
    return provenance(
        seed=settings.seed,
        base=base.provenance(),
        rm=rm.provenance(),
        direction=settings.direction,
        settings=asdict(settings),
        prompts={"n": len(prompts), "keys": [p.key for p in prompts]},
        responses=response_set.description,
        template_mode=items.template_mode,
        gap=f"{design.first} - {design.second}",
        n_words={design.first: len(design.words_first), design.second: len(design.words_second)},
        base_reading=BASE_READING,
        normalised_effect="(patched_gap - clean_gap) / (source_gap - clean_gap)",
        tests=(
            "sign-flip randomisation test of the gap change over words (changes centred on "
            f"their common mean), {settings.n_permutations} flips; 95% percentile bootstrap CIs "
            f"over words within category ({settings.n_bootstrap} resamples); p corrected across "
            f"all {len(result.patches)} patches (Bonferroni and Benjamini-Hochberg)"
        ),
        self_test=asdict(result.self_test),
        identical_inputs="both models ran on the same token ids (sha256 checked per item group); "
        "no padding in the fast path",
        stacked_patches_per_pass=result.group_size,
        seconds=round(result.seconds, 2),
        largest_effect_per_site=top,
        value_lens_final_gap=lens_final,
    )


def run_value_lens(
    rm_name: str,
    base_name: str | None,
    prompts_spec: str,
    responses_spec: str,
    out_dir: Path,
    gap: tuple[str, str] = ("Agency", "Communion"),
    n_bootstrap: int = 2000,
    seed: int = 0,
    prompt_keys: tuple[str, ...] | None = None,
    device: str | None = None,
) -> dict:
    """Value lens of an RM (and of a base model through the RM's readout); writes ``out_dir``.

    Files: ``value_lens_gap.csv`` (gap per depth with 95 % bootstrap CIs over words),
    ``value_lens_items.parquet`` (every reading), ``value_lens_summary.json`` and
    ``value_lens.png/.svg``.
    """
    from analyses.patching_plots import layerwise_figure
    from analyses.responses import load_responses
    from interp.value_lens import value_lens_readings

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rm = load_model(ModelSpec(rm_name, kind="rm", dtype="float32", device=device))
    base = None
    if base_name:
        base = load_model(ModelSpec(base_name, kind="lm", dtype="float32", device=device))
        check_pair(base, rm)
    readout = reward_readout(rm)
    prompts = load_prompts(prompts_spec, prompt_keys)
    response_set = load_responses(responses_spec)
    words = list(response_set.responses.words)
    design = gap_design(response_set.categories, words, gap)
    items = build_items(rm, prompts, words)
    n = len(items.table)
    lens_rm = value_lens_readings(rm, items.groups, readout, rm.device, n)
    lens_base = (
        value_lens_readings(base, items.groups, readout, rm.device, n)
        if base is not None
        else np.full_like(lens_rm, np.nan)
    )
    fake = SweepResult(
        (),
        items,
        lens_rm[:, -1],
        lens_base[:, -1],
        np.zeros((0, n)),
        np.zeros((0, n)),
        lens_rm,
        lens_base,
        SelfTest(True, 0, 0, 0.0),
        1,
        0.0,
    )
    roles = ("rm", "base")
    gaps = lens_gap_table(fake, design, roles, n_bootstrap, seed)
    items_table = lens_item_table(fake, roles)
    if base is None:
        gaps = gaps[gaps["model_role"] == "rm"]
        items_table = items_table[items_table["model_role"] == "rm"]
    files = [
        _write_table(gaps, out_dir / "value_lens_gap.csv"),
        _write_table(items_table, out_dir / "value_lens_items.parquet"),
    ]
    title = f"value lens: {short_name(rm.name)}" + (f" and {short_name(base.name)}" if base else "")
    files += layerwise_figure(gaps, None, out_dir / "value_lens", title, design)
    final = gaps["depth"].max()
    summary = provenance(
        seed=seed,
        rm=rm.provenance(),
        base=base.provenance() if base else None,
        prompts={"n": len(prompts), "keys": [p.key for p in prompts]},
        responses=response_set.description,
        template_mode=items.template_mode,
        gap=f"{design.first} - {design.second}",
        readout="the RM's final norm and score head, applied to both models' residual streams "
        "at the last token; depth 0 = embeddings, depth L = after the last block",
        final_gap={
            r: float(g.loc[g["depth"] == final, "gap"].iloc[0])
            for r, g in gaps.groupby("model_role")
        },
    )
    summary["files"] = [str(f) for f in files]
    (out_dir / "value_lens_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary

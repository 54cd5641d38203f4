"""``patch``: where does an RM's category preference come from? Patch a base model into its RM.

For every ``(site, layer[, position])`` the receiver (the RM, for ``base-into-rm``) runs with that
activation replaced by the source's (the base model's) on the identical input
(``interp.patching.sweep``); ``analyses.stats.patch_effects`` turns the scores into normalised
effects with CIs and corrected p-values. The value lens of both models comes with the sweep.

Self-test. Before every sweep the receiver is patched into itself with the sweep's own code path
and stacking, for every site and position of the sweep at up to four of its blocks (first, last,
evenly spaced between) on a few items; every score must equal its clean twin bit for bit in
float32, or the sweep is refused. Both models get the same token ids (checked by sha256 per item
group); the fast path never pads, so the tokenizers' padding sides play no part.

Resumable: each item group is a work unit written to ``OUT.parts/`` as it finishes
(``interp.sweeps``), so a killed run rerun with the same command computes only the groups left.

Screen. ``--screen attribution`` first estimates every patch linearly from one backward pass
(``interp.patching.attribution``) and, after the causal sweep, writes ``attribution_screen.csv``
(estimate beside causal, per patch) and its agreement with causal patching per site
(``analyses.stats.attribution_screen``: Spearman rho with CI, top patch). Causal patching remains
the reported result.

Files: ``patch_effects.csv`` (one row per patch), ``patch_items.parquet`` (per-example values),
``value_lens_gap.csv``, ``value_lens_items.parquet``, ``patch_summary.json``, and figures
``layerwise_bias.png/.svg`` (+ ``patch_heatmap.png/.svg`` for position sweeps).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from analyses.inputs.probe_results import read_probe_results
from analyses.inputs.prompts import load_prompts
from analyses.inputs.responses import load_responses
from analyses.runs.common import (
    ModelLoading,
    RunResult,
    WordContrastChoice,
    short_name,
    write_json,
    write_table,
)
from analyses.runs.options import at_least, comma_list, option
from analyses.stats.attribution_screen import screen_agreement, screen_table
from analyses.stats.contrast import category_words
from analyses.stats.patch_effects import (
    describe_test,
    effects_table,
    item_table,
    lens_gap_table,
    lens_item_table,
)
from interp.atomic import RunFolder
from interp.errors import UserError
from interp.models.fingerprint import weights_digest
from interp.models.loading import LoadedModel
from interp.models.readout import reward_readout
from interp.patching.attribution import attribution_estimates
from interp.patching.items import build_items
from interp.patching.pair import check_pair, load_pair
from interp.patching.specs import make_patches, parse_positions
from interp.patching.sweep import SweepResult, patch_sweep
from interp.progress import NoProgress, Progress
from interp.provenance import provenance, tool_version
from interp.sites import check_sites, parse_layers
from interp.sweeps.local import run_units
from interp.sweeps.parts import Parts, parts_folder
from interp.sweeps.plan import plan_items
from interp.sweeps.workers import worker_from_env

DIRECTIONS = ("base-into-rm", "rm-into-base")
SCREENS = ("none", "attribution")
BASE_READING = (
    "source_gap: the RM readout (final norm + its head) applied to the source model's final "
    "residual stream at the last token = value lens of the source at its last depth = the gap "
    "after patching the source's whole final residual stream into the receiver"
)


@dataclass(frozen=True, kw_only=True)
class PatchSettings(WordContrastChoice, ModelLoading):
    """The pair, what to patch, and how to test it (see the module docstring)."""

    base: str = option("", "--base", required=True, help="Base model the RM was trained from.")
    rm: str = option("", "--rm", required=True, help="Reward model (e.g. a train-rm checkpoint).")
    sites: tuple[str, ...] = option(
        ("resid_pre",), "--sites", parse=comma_list, metavar="SITES", show_default=False,
        help="Comma-separated: resid_pre, resid_post, attn_out, mlp_out. [default: resid_pre]",
    )  # fmt: skip
    layers: str = option("all", "--layers", help="all | 0,5,10 | 0:30:2 | -1 (from the end).")
    positions: str = option(
        "all", "--positions",
        help="all | last | -1,-2 | last:K (each of the last K positions), comma-combinable.",
    )  # fmt: skip
    direction: str = option("base-into-rm", "--direction", kind="choice", choices=DIRECTIONS,
                            help="Which model's activations go into which.")  # fmt: skip
    patches_per_pass: int | None = option(
        None, "--patches-per-pass", kind="int", low=1, show_default=False,
        help="Patches stacked in one forward pass [1 on CPU, 4 on GPU].",
    )  # fmt: skip
    permutations: int = option(10_000, "--permutations", kind="int", low=1,
                               help="Label permutations per patch test.")  # fmt: skip
    probes: Path | None = option(
        None, "--probes", kind="path", show_default=False,
        help="train-probes output (folder or probes.parquet): accuracy per layer in the figure.",
    )  # fmt: skip
    probe_compare: Path | None = option(
        None, "--probe-compare", kind="path", show_default=False,
        help="compare-probes output (folder or compare.parquet): direction cosines.",
    )  # fmt: skip
    screen: str = option(
        "none", "--screen", kind="choice", choices=SCREENS,
        help="attribution: also estimate every patch from one backward pass and report its "
        "agreement with the causal sweep (attribution_screen.csv).",
    )  # fmt: skip
    self_test_items: int = 6

    def validate(self) -> None:
        super().validate()
        at_least("--permutations", self.permutations, 1)
        if not self.sites:
            raise UserError("--sites: no sites given")
        parse_positions(self.positions)  # refuse a bad --positions before any model is loaded


@dataclass(frozen=True)
class PatchRun(RunResult):
    """A finished sweep: the typed sweep result, the effects table and the summary."""

    sweep: SweepResult | None = None
    effects: pd.DataFrame | None = field(default=None, repr=False)
    summary: dict = field(default_factory=dict, repr=False)
    screen: pd.DataFrame | None = field(default=None, repr=False)

    def headline(self) -> str:
        test = self.sweep.self_test
        lines = [
            f"self-test (model into itself, {test.n_patches} patches): max change "
            f"{test.max_abs_diff} -> {'passed' if test.passed else 'FAILED'}"
        ]
        for site, top in self.summary["largest_effect_per_site"].items():
            lines.append(
                f"{site}: largest normalised effect {top['normalised_effect']:.3f} at block "
                f"{top['layer']} (position {top['position']}), 95% CI "
                f"[{top['ci'][0]:.3f}, {top['ci'][1]:.3f}], p_FDR={top['p_fdr_bh']:.3g}"
            )
        for site, agree in self.summary.get("attribution_screen", {}).items():
            rho = agree["spearman"]
            lines.append(
                f"{site} attribution screen: Spearman rho with causal {rho['rho']:.2f} "
                f"(n={rho['n']}); top layer {agree.get('screen_top_layer')} "
                f"{'is' if agree.get('top_layer_match') else 'is not'} a causal top layer"
            )
        lines.append(f"wrote {len(self.files)} files to {self.out}")
        return "\n".join(lines)


def largest_effects(effects: pd.DataFrame) -> dict:
    """Per site: the patch with the largest |normalised effect| (its layer, position, CI, p)."""
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
    return top


def _summary(
    s: PatchSettings, result, effects, lens_gap, design, base, rm, prompts, responses, readout
):
    final_depth = lens_gap["depth"].max()
    lens_final = {
        r: float(g.loc[g["depth"] == final_depth, "gap"].iloc[0])
        for r, g in lens_gap.groupby("model_role")
    }
    return provenance(
        seed=s.seed,
        base=base.provenance(),
        rm=rm.provenance(),
        direction=s.direction,
        settings={k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()},
        prompts={"n": len(prompts), "keys": [p.key for p in prompts]},
        responses=responses.description,
        template_mode=result.items.template_mode,
        gap=design.pair.label,
        n_words=design.n,
        base_reading=BASE_READING,
        readout={
            "kind": readout.kind,
            "description": readout.description,
            "metric": "the RM's own reward (its head read as the registry says)",
        },
        normalised_effect="(patched_gap - clean_gap) / (source_gap - clean_gap)",
        tests=describe_test(s.permutations, s.bootstrap, len(result.patches)),
        self_test=asdict(result.self_test),
        identical_inputs="both models ran on the same token ids (sha256 checked per item group); "
        "no padding in the fast path",
        stacked_patches_per_pass=result.group_size,
        seconds=round(result.seconds, 2),
        largest_effect_per_site=largest_effects(effects),
        value_lens_final_gap=lens_final,
    )


def run_patch(
    settings: PatchSettings,
    *,
    progress: Progress | None = None,
    models: tuple[LoadedModel, LoadedModel] | None = None,
) -> PatchRun:
    """Patch the base model's activations into the RM, layer by layer; effects on the gap.

    ``models``: the loaded ``(base, rm)`` pair, to reuse. Writes the files of the module doc
    into OUT (staged, swapped in whole when the run succeeds)."""
    with RunFolder(settings.out, overwrite=settings.overwrite) as folder:
        run, parts = _patch(settings, folder, progress or NoProgress(), models)
    parts.remove()  # every group is in OUT now
    return run


def _patch(s: PatchSettings, folder: RunFolder, progress: Progress, models):
    """The sweep into ``folder.work``; returns the run and its work units (``OUT.parts``, kept
    until OUT is in place)."""
    from analyses.figures.patching import layerwise_figure, position_heatmap

    out = folder.work
    prompts = load_prompts(s.prompts, s.prompt_keys, s.encoding)
    responses = load_responses(s.responses, encoding=s.encoding)
    words = list(responses.responses.words)
    design = category_words(responses.categories, s.gap, words)
    positions = parse_positions(s.positions)
    probe_table = read_probe_results(s.probes, s.probe_compare)
    if models is None:
        models = load_pair(s.base, s.rm, s.device, progress=progress, **s.load_kwargs())
    base, rm = models
    check_pair(base, rm)
    readout = reward_readout(rm)
    receiver, source = (rm, base) if s.direction == "base-into-rm" else (base, rm)
    roles = ("rm", "base") if s.direction == "base-into-rm" else ("base", "rm")
    for model in (rm, base):
        check_sites(model)
    items = build_items(rm, prompts, words)
    patches = make_patches(s.sites, parse_layers(s.layers, rm.n_layers), positions)
    attribution = None
    if s.screen == "attribution":
        attribution = attribution_estimates(receiver, source, readout, items, patches, progress)
    parts, units = _group_units(
        s, receiver, source, readout, items, patches, folder.out, rm.fingerprint
    )
    result = patch_sweep(
        receiver, source, readout, items, patches, s.patches_per_pass, s.self_test_items, progress,
        units=units,
    )  # fmt: skip
    effects = effects_table(result, design, s.bootstrap, s.permutations, s.seed)
    lens = {roles[0]: result.lens_receiver, roles[1]: result.lens_source}
    lens_gap = lens_gap_table(lens, items.table, design, s.bootstrap, s.seed)
    files = [
        write_table(effects, out / "patch_effects.csv"),
        write_table(item_table(result), out / "patch_items.parquet"),
        write_table(lens_gap, out / "value_lens_gap.csv"),
        write_table(lens_item_table(lens, items.table), out / "value_lens_items.parquet"),
    ]
    b_label, r_label = short_name(base.name), short_name(rm.name)
    title = (
        f"patching {b_label} into {r_label}"
        if s.direction == "base-into-rm"
        else f"patching {r_label} into {b_label}"
    )
    files += layerwise_figure(lens_gap, effects, out / "layerwise_bias", title, design, probe_table)
    if any(p is not None for p in positions):
        files += position_heatmap(effects, out / "patch_heatmap", title, design)
    summary = _summary(s, result, effects, lens_gap, design, base, rm, prompts, responses, readout)
    screen = None
    if attribution is not None:
        responses_order = items.table["response"].tolist()
        screen = screen_table(attribution.estimate, patches, responses_order, design, effects)
        files.append(write_table(screen, out / "attribution_screen.csv"))
        summary["attribution_screen"] = screen_agreement(screen)
        summary["attribution_seconds"] = round(attribution.seconds, 2)
    files.append(out / "patch_summary.json")
    files = [folder.final(f) for f in files]
    summary["files"] = [str(f) for f in files]
    write_json(summary, out / "patch_summary.json")
    run = PatchRun(
        folder.out, tuple(files), summary, sweep=result, effects=effects, summary=summary,
        screen=screen,
    )  # fmt: skip
    return run, parts


def _group_units(s: PatchSettings, receiver, source, readout, items, patches, out, rm_fingerprint):
    """The sweep's item groups as work units in ``OUT.parts``: a rerun after a kill skips the
    groups already done, and processes started on the same sweep share them. Units of another
    sweep left in that folder are discarded."""
    identity = {
        # backbones (and the RM's head): a base loaded as an LM from an RM folder gets a fresh
        # random lm_head at every load, which patching never uses
        "receiver": weights_digest(receiver.backbone), "source": weights_digest(source.backbone),
        "rm": rm_fingerprint, "readout": readout.kind,
        "patches": [(p.site, p.layer, p.position) for p in patches],
        "patches_per_pass": s.patches_per_pass, "device": receiver.device.type,
        "tool_version": tool_version(),
    }  # fmt: skip
    plan = plan_items(identity, [{"digest": g.digest(), "n": g.n} for g in items.groups])
    parts = Parts(parts_folder(out), plan)
    parts.open(overwrite=True)

    def units(compute):
        run_units(plan, parts, compute, worker_from_env())  # the sweep reports progress
        return [parts.read(u) for u in plan.units]

    return parts, units

"""``value-lens``: the reward an RM would give after each block, for the RM and (read through the
RM's own readout) for its base model.

Files: ``value_lens_gap.csv`` (the category gap per depth with 95 % bootstrap CIs over words),
``value_lens_items.parquet`` (every reading), ``value_lens_summary.json`` and
``value_lens.png/.svg``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from analyses.runs.options import option
from analyses.stats.contrast import category_words
from analyses.stats.patch_effects import lens_gap_table, lens_item_table
from interp.atomic import RunFolder
from interp.models.loading import ModelSpec, load_model
from interp.models.readout import reward_readout
from interp.patching.items import build_items
from interp.patching.pair import check_pair
from interp.patching.value_lens import value_lens_readings
from interp.progress import NoProgress, Progress
from interp.provenance import provenance

DEPTHS = "depth 0 = embeddings, depth L = after the last block"


@dataclass(frozen=True, kw_only=True)
class ValueLensSettings(WordContrastChoice, ModelLoading):
    rm: str = option("", "--rm", required=True, help="Reward model whose readout is used.")
    base: str | None = option(None, "--base", show_default=False,
                              help="Base model: read its residual stream with the RM head.")  # fmt: skip


@dataclass(frozen=True)
class ValueLensRun(RunResult):
    final_gap: dict = field(default_factory=dict)

    def headline(self) -> str:
        lines = [
            f"{r}: value-lens gap at the last depth {v:.4f}" for r, v in self.final_gap.items()
        ]
        return "\n".join([*lines, f"wrote {len(self.files)} files to {self.out}"])


def run_value_lens(
    settings: ValueLensSettings, *, progress: Progress | None = None
) -> ValueLensRun:
    """Reward the RM would give after each block (and the base model read by the same head)."""
    with RunFolder(settings.out, overwrite=settings.overwrite) as folder:
        return _value_lens(settings, folder, progress or NoProgress())


def _value_lens(s: ValueLensSettings, folder: RunFolder, progress: Progress) -> ValueLensRun:
    from analyses.figures.patching import layerwise_figure

    out = folder.work
    prompts = load_prompts(s.prompts, s.prompt_keys, s.encoding)
    response_set = load_responses(s.responses, encoding=s.encoding)
    words = list(response_set.responses.words)
    design = category_words(response_set.categories, s.gap, words)
    load = s.load_kwargs()
    rm = load_model(ModelSpec(s.rm, kind="rm", dtype="float32", device=s.device, **load), progress)
    base = None
    if s.base:
        spec = ModelSpec(s.base, kind="lm", dtype="float32", device=s.device, **load)
        base = load_model(spec, progress)
        check_pair(base, rm)
    readout = reward_readout(rm)
    items = build_items(rm, prompts, words)
    n = len(items.table)
    lens = {"rm": value_lens_readings(rm, items.groups, readout, rm.device, n)}
    if base is not None:
        lens["base"] = value_lens_readings(base, items.groups, readout, rm.device, n)
    gaps = lens_gap_table(lens, items.table, design, s.bootstrap, s.seed)
    files = [
        write_table(gaps, out / "value_lens_gap.csv"),
        write_table(lens_item_table(lens, items.table), out / "value_lens_items.parquet"),
    ]
    title = f"value lens: {short_name(rm.name)}" + (f" and {short_name(base.name)}" if base else "")
    files += layerwise_figure(gaps, None, out / "value_lens", title, design)
    final = gaps["depth"].max()
    final_gap = {
        r: float(g.loc[g["depth"] == final, "gap"].iloc[0]) for r, g in gaps.groupby("model_role")
    }
    summary = provenance(
        seed=s.seed,
        rm=rm.provenance(),
        base=base.provenance() if base else None,
        prompts={"n": len(prompts), "keys": [p.key for p in prompts]},
        responses=response_set.description,
        template_mode=items.template_mode,
        gap=design.pair.label,
        readout={
            "kind": readout.kind,
            "description": readout.description,
            "depths": DEPTHS,
            "applied_to": "the RM's and (if given) the base model's residual streams",
        },
        final_gap=final_gap,
    )
    files.append(out / "value_lens_summary.json")
    files = [folder.final(f) for f in files]
    summary["files"] = [str(f) for f in files]
    write_json(summary, out / "value_lens_summary.json")
    return ValueLensRun(folder.out, tuple(files), summary, final_gap=final_gap)

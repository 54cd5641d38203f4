"""Family 1 (block-localised difference): build each organism and run ``patch`` on it unchanged.

Each organism is the embedded model with a seeded random head, edited in one block
(``analyses.validation.edits``); the identical control is the same RM without an edit. The base
is the embedded model itself. ``patch`` (``analyses.runs.patch.run_patch``, the CLI's function,
given the loaded pair) sweeps ``resid_post`` and the edited component's site over every block with
the attribution screen on, and writes the value lens; the rules of ``analyses.validation.rules``
read its files.
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from analyses.runs.patch import PatchSettings, run_patch
from analyses.stats.contrast import CategoryPair, category_words
from analyses.validation.edits import COMPONENTS, edit_block
from analyses.validation.materials import EVAL_KEYS, eval_prompts, word_table
from analyses.validation.plan import BlockSpec, Context
from analyses.validation.rules import first_lens_split, first_significant_patch, screen_finding
from analyses.validation.table import Row, block_row, from_finding
from interp.models.loading import ModelSpec, load_model
from interp.patching.items import build_items

FAMILY = "block-localised difference"


def patch_settings(ctx: Context, rm_name: str, out, sites, seed: int) -> PatchSettings:
    """The ``patch`` settings every organism uses: the organism's words and the two evaluation
    prompts, all positions, the attribution screen."""
    return PatchSettings(
        base=ctx.model, rm=rm_name, responses=str(ctx.words), out=out, prompt_keys=EVAL_KEYS,
        sites=tuple(sites), permutations=ctx.permutations, bootstrap=ctx.bootstrap, seed=seed,
        screen="attribution",
    )  # fmt: skip


def screen_rows(name: str, family: str, seed: int, summary: dict, sites) -> list[Row]:
    """One attribution-screen row per site: expected = the causal top layers."""
    rows = []
    for site in sites:
        finding, match = screen_finding(summary.get("attribution_screen", {}), site)
        causal = summary.get("attribution_screen", {}).get(site, {}).get("causal_top_layers", [])
        expected = "causal top: " + (",".join(map(str, causal)) if causal else "none")
        found = "none" if finding.block is None else f"block {finding.block}"
        rows.append(from_finding(name, family, seed, f"attribution screen ({site})", False,
                                 expected, found, match, finding))  # fmt: skip
    return rows


def profile(effects: pd.DataFrame, name: str, expected: int | None) -> pd.DataFrame:
    rows = effects[(effects["site"] == "resid_post") & (effects["position"].astype(str) == "all")]
    out = rows[["layer", "normalised_effect"]].copy()
    out.insert(0, "organism", name)
    out["expected_block"] = expected
    return out


def run_block_organism(spec: BlockSpec, ctx: Context) -> tuple[list[Row], dict, pd.DataFrame]:
    """Build one organism, run ``patch`` on it, apply the rules: (rows, record, profile)."""
    t0, c0 = time.perf_counter(), time.process_time()
    ctx.progress.note(f"organism {spec.name} (seed {spec.seed})")
    rm = load_model(ModelSpec(ctx.model, kind="rm", dtype="float32", random_head_seed=spec.seed))
    words = word_table()
    design = category_words(words, CategoryPair("Agency", "Communion"), list(words["response"]))
    record: dict = {"organism": spec.name, "seed": spec.seed, "spec": dataclasses.asdict(spec)}
    if spec.labels != "none":
        items = build_items(rm, eval_prompts(), list(words["response"]))
        rm, edit = edit_block(rm, items, design, spec.block, spec.component, spec.labels, spec.seed)
        record["edit"] = edit.record()
    record["rm"] = rm.provenance()
    component_site = COMPONENTS[spec.component][1]
    sites = ("resid_post", component_site)
    folder = ctx.folder(f"{spec.name}-s{spec.seed}")
    run = run_patch(patch_settings(ctx, rm.name, folder / "patch", sites, spec.seed),
                    models=(ctx.base, rm))  # fmt: skip
    lens = pd.read_parquet(folder / "patch" / "value_lens_items.parquet")
    expected = None if spec.control else (spec.block,)
    at = None if expected is None else spec.block
    rows = [
        block_row(spec.name, FAMILY, spec.seed, "patch resid_post",
                  first_significant_patch(run.effects, "resid_post", at), expected),
        block_row(spec.name, FAMILY, spec.seed, "patch component site",
                  first_significant_patch(run.effects, component_site, at), expected),
        block_row(spec.name, FAMILY, spec.seed, "value lens",
                  first_lens_split(lens, design, spec.seed, at), expected),
    ]  # fmt: skip
    if not spec.control:
        rows += screen_rows(spec.name, FAMILY, spec.seed, run.summary, sites)
    record["patch_summary"] = str(folder / "patch" / "patch_summary.json")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [dataclasses.replace(r, organism_wall_s=wall, organism_cpu_s=cpu) for r in rows]
    record.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    return rows, record, profile(run.effects, f"{spec.name} s{spec.seed}", at)

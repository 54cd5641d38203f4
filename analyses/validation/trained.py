"""Family 2 (a preference learned in known blocks): train, then run the suite's commands on it.

``train-rm`` (``run_train_rm`` with ``--train-blocks k,k+1``: only those two blocks train; the
seeded random head, the norm and every other block stay the base's) on every Agency x Communion
word pair under the training prompts: Agency chosen (``agency``), the reverse (``communion``), or
each word chosen in exactly half of its pairs (``shuffled``, the negative control). Then ``patch``
(``resid_post``, every block, attribution screen, value lens), ``cache-activations`` of the base
and the RM (``resid_post`` at the last token) and ``train-probes`` (difference of means) on each,
read by the rules of ``analyses.validation.rules``. The RM's folder is removed afterwards unless
``--keep-models``.
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from activations.store import ActivationStore
from analyses.runs.cache_activations import CacheActivationsSettings, cache_for_model
from analyses.runs.patch import run_patch
from analyses.runs.train_probes import TrainProbesSettings, run_train_probes
from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from analyses.stats.contrast import CategoryPair, category_words
from analyses.validation.block import patch_settings, profile, screen_rows
from analyses.validation.materials import EVAL_KEYS, word_preferences, word_table
from analyses.validation.plan import Context, TrainedSpec
from analyses.validation.rules import (
    alignment_gain,
    first_alignment_gain,
    first_lens_split,
    first_significant_patch,
)
from analyses.validation.table import Row, block_row
from interp.models.loading import LoadedModel, ModelSpec, load_model
from interp.models.readout import score_direction
from probes.fit import fit_probe
from probes.io import ProbeDir
from probes.layerwise import ProbeSettings, select_items

FAMILY = "preference learned in known blocks"
TRAINING = {"lr": 3e-4, "epochs": 1, "batch_size": 16, "max_length": 64, "eval_fraction": 0.2}
"""Organism training settings (CPU-sized), recorded in each RM's ``train_record.json``."""


def probe_folder(ctx: Context, loaded: LoadedModel, folder, seed: int):
    """``cache-activations`` then ``train-probes`` for one model; returns (store path, probes)."""
    folder.mkdir(parents=True, exist_ok=True)
    acts = folder / "acts.h5"
    settings = CacheActivationsSettings(
        model=loaded.name, kind=loaded.kind, responses=str(ctx.words), sites="resid_post",
        layers="all", positions="last", prompt_keys=EVAL_KEYS, out=acts, backend="torch",
        overwrite=True,
    )  # fmt: skip
    cache_for_model(loaded, settings)
    probes = folder / "probes"
    run_train_probes(TrainProbesSettings(acts=acts, out=probes, method=("diffmean",),
                                         bootstrap=200, seed=seed, no_figures=True))  # fmt: skip
    return acts, probes


def probe_gains(ctx: Context, rm: LoadedModel, folder, seed: int) -> tuple[pd.DataFrame, bool]:
    """The probe rule's evidence (``rules.alignment_gain``) from the two stores, and whether its
    full-data directions are the ones ``train-probes`` saved. The base is cached as an RM with a
    seeded head (``--as rm --random-head 0``: the trunk is the base's, the items the RM's exactly,
    as ``compare-probes`` asks for identical inputs); no head is read from it."""
    base_as_rm = load_model(ModelSpec(ctx.model, kind="rm", dtype="float32", random_head_seed=0))
    base_acts, _ = probe_folder(ctx, base_as_rm, folder / "base", seed)
    rm_acts, rm_probes = probe_folder(ctx, rm, folder / "rm_probes", seed)
    settings = ProbeSettings(methods=("diffmean",), seed=seed)
    with ActivationStore(base_acts) as sb, ActivationStore(rm_acts) as sr:
        data = select_items(sr, settings)
        if not sb.items.equals(sr.items):
            raise AssertionError("the base and RM stores hold different items")
        layers = {s.layer: s.name for s in sr.sites if s.kind == "resid_post"}
        x_rm = {layer: sr.load(name, data.rows) for layer, name in layers.items()}
        x_base = {layer: sb.load(name, data.rows) for layer, name in layers.items()}
    head = score_direction(rm).effective
    gains = alignment_gain(x_base, x_rm, data.y, data.groups, head, seed)
    saved = ProbeDir(rm_probes)
    same = all(
        float(
            fit_probe(x_rm[layer], data.y, "diffmean").direction @ saved.direction(name, "diffmean")
        )
        > 1 - 1e-6
        for layer, name in layers.items()
    )
    return gains, same


def run_trained_organism(spec: TrainedSpec, ctx: Context) -> tuple[list[Row], dict, pd.DataFrame]:
    """Train one organism and run the methods on it: (rows, record, residual profile)."""
    t0, c0 = time.perf_counter(), time.process_time()
    ctx.progress.note(f"organism {spec.name} (seed {spec.seed})")
    folder = ctx.folder(f"{spec.name}-s{spec.seed}")
    data = word_preferences(spec.direction, spec.seed)
    train = run_train_rm(
        TrainRmSettings(base=ctx.model, out=folder / "rm", train_blocks=(spec.block, spec.block + 1),
                        save="final", seed=spec.seed, **TRAINING),
        data=data,
    )  # fmt: skip
    rm_path = train.summary["final_checkpoint"]
    rm = load_model(ModelSpec(rm_path, kind="rm", dtype="float32"))
    record: dict = {
        "organism": spec.name, "seed": spec.seed, "spec": dataclasses.asdict(spec),
        "training": {**TRAINING, "data": data.record, "heldout_accuracy":
                     train.summary["heldout_accuracy"], "record": str(folder / "rm")},
        "rm": rm.provenance(),
    }  # fmt: skip
    run = run_patch(patch_settings(ctx, rm_path, folder / "patch", ("resid_post",), spec.seed),
                    models=(ctx.base, rm))  # fmt: skip
    words = word_table()
    design = category_words(words, CategoryPair("Agency", "Communion"), list(words["response"]))
    lens = pd.read_parquet(folder / "patch" / "value_lens_items.parquet")
    gains, same = probe_gains(ctx, rm, folder, spec.seed)
    gains.to_csv(folder / "probe_alignment_gain.csv", index=False)
    record["probe_directions_match_train_probes"] = same
    expected = None if spec.control else (spec.block, spec.block + 1)
    at = None if expected is None else spec.block
    rows = [
        block_row(spec.name, FAMILY, spec.seed, "patch resid_post",
                  first_significant_patch(run.effects, "resid_post", at), expected),
        block_row(spec.name, FAMILY, spec.seed, "value lens",
                  first_lens_split(lens, design, spec.seed, at), expected),
        block_row(spec.name, FAMILY, spec.seed, "probes (head alignment)",
                  first_alignment_gain(gains, at), expected),
    ]  # fmt: skip
    if not spec.control:
        rows += screen_rows(spec.name, FAMILY, spec.seed, run.summary, ("resid_post",))
    del rm
    ctx.discard(folder / "rm")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [dataclasses.replace(r, organism_wall_s=wall, organism_cpu_s=cpu) for r in rows]
    record.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    return rows, record, profile(run.effects, f"{spec.name} s{spec.seed}", at)

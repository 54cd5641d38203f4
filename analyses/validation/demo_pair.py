"""The demo pair: an RM made from the embedded model by ``train-rm`` on the default preference
data with only its last blocks trained (``TRAINING``: the last 4 blocks, as the earlier demo
did), patched from its base, with the screen.

Its known answer holds by construction: only the last ``train_last`` blocks differ from the base,
so residual patching and the value lens must place the difference there. (The current demo's RM,
``analyses.demo.rms``, trains LoRA on every block, so it has no single place by construction; it
can still be given with ``--demo-rm`` for the screen comparison.) An RM given with
``--demo-rm`` is used as it is; its expected blocks come from its ``valuebias_checkpoint.json``
when it was trained with ``last-k`` or ``blocks``, else only the screen is compared.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pandas as pd

from analyses.runs.patch import run_patch
from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from analyses.stats.contrast import CategoryPair, category_words
from analyses.validation.block import patch_settings, profile, screen_rows
from analyses.validation.materials import word_table
from analyses.validation.plan import Context
from analyses.validation.rules import first_lens_split, first_significant_patch
from analyses.validation.table import Row, block_row
from interp.models.loading import ModelSpec, load_model
from interp.training import CHECKPOINT_META

FAMILY = "demo pair"
TRAINING = {
    "train_last": 4, "epochs": 2, "lr": 2e-4, "batch_size": 8, "max_length": 96,
    "eval_fraction": 0.2, "checkpoint_every": 16, "max_pairs": 160, "seed": 0,
}  # fmt: skip
"""``train-rm`` settings of the demo pair's RM: the last 4 blocks + final norm + head, 160 pairs."""
PATCH_PROMPTS = ("greatest_ever_one", "best_world_one")


def demo_settings(base: str, out: Path) -> TrainRmSettings:
    """``train-rm`` settings of the demo pair's RM (``TRAINING``, final checkpoint only)."""
    return TrainRmSettings(base=base, out=out, save="final", **TRAINING)


def expected_blocks(rm_path: Path, n_layers: int) -> tuple[int, ...] | None:
    """The blocks a checkpoint's training changed, from its record (None when unknown)."""
    meta = rm_path / CHECKPOINT_META
    if not meta.is_file():
        return None
    config = json.loads(meta.read_text()).get("training", {}).get("config", {})
    if config.get("method") == "last-k":
        return tuple(range(n_layers - int(config["train_last"]), n_layers))
    if config.get("method") == "blocks":
        return tuple(sorted(config["train_blocks"]))
    return None


def run_demo_pair(ctx: Context, demo_rm: str | None) -> tuple[list[Row], dict, pd.DataFrame]:
    """Patch the demo pair (training it first when ``demo_rm`` is None): (rows, record, profile)."""
    t0, c0 = time.perf_counter(), time.process_time()
    ctx.progress.note("demo pair")
    folder = ctx.folder("demo-pair")
    trained_here = demo_rm is None
    if trained_here:
        train = run_train_rm(demo_settings(ctx.model, folder / "rm"))
        demo_rm = train.summary["final_checkpoint"]
    rm = load_model(ModelSpec(demo_rm, kind="rm", dtype="float32"))
    settings = dataclasses.replace(
        patch_settings(ctx, demo_rm, folder / "patch", ("resid_post",), 0),
        prompt_keys=PATCH_PROMPTS,
    )
    run = run_patch(settings, models=(ctx.base, rm))
    words = word_table()
    design = category_words(words, CategoryPair("Agency", "Communion"), list(words["response"]))
    lens = pd.read_parquet(folder / "patch" / "value_lens_items.parquet")
    expected = expected_blocks(Path(demo_rm), rm.n_layers)
    rows = screen_rows("demo-pair", FAMILY, 0, run.summary, ("resid_post",))
    if expected is not None:
        at = expected[0]
        rows = [
            block_row("demo-pair", FAMILY, 0, "patch resid_post",
                      first_significant_patch(run.effects, "resid_post", at), expected),
            block_row("demo-pair", FAMILY, 0, "value lens",
                      first_lens_split(lens, design, 0, at), expected),
        ] + rows  # fmt: skip
    record = {"rm": rm.provenance(), "trained_here": trained_here, "expected_blocks": expected}
    del rm
    if trained_here:
        ctx.discard(Path(demo_rm))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [dataclasses.replace(r, organism_wall_s=wall, organism_cpu_s=cpu) for r in rows]
    record.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    first = expected[0] if expected else None
    return rows, record, profile(run.effects, "demo-pair", first)

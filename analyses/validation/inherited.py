"""Families 3 (an inherited bias) and 4 (implicit-reward recovery): build, then run the commands.

For one seed: a *biased base* (``analyses.validation.sft``: the embedded model fine-tuned so that
Agency words answer value questions) and, as the negative control, a *mixed base* fine-tuned the
same way on answers that are Agency and Communion words in equal numbers (shuffled labels).
``train-rm`` (``run_train_rm``, LoRA, identical neutral factual preference data, the same seed)
trains an RM from the clean embedded model and from each fine-tuned base, scoring the organism's
words at every checkpoint (durability) and the base's own log-probs. ``patch`` runs base -> RM for
each pair (``resid_post``, attribution screen); ``implicit-reward`` runs clean -> biased base. The
rules of ``analyses.validation.inheritance_rules`` read the files. Model folders are removed
afterwards unless ``--keep-models``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd

from analyses.runs.implicit_reward import ImplicitRewardSettings, run_implicit_reward
from analyses.runs.patch import run_patch
from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from analyses.stats.contrast import CategoryPair, category_words
from analyses.validation.block import patch_settings, screen_rows
from analyses.validation.inheritance_rules import (
    base_logprob_rule,
    base_reading_rule,
    durability_rule,
    random_positives,
    recovery_rule,
)
from analyses.validation.materials import (
    AGENCY,
    EVAL_KEYS,
    eval_prompts,
    neutral_preferences,
    sft_examples,
    word_table,
)
from analyses.validation.plan import Context, InheritedSpec
from analyses.validation.sft import SftConfig, fine_tune
from analyses.validation.table import Row, label_row
from interp.formatting import conversation_format, response_ids
from interp.models.loading import LoadedModel, ModelSpec, load_model

FAMILY3 = "inherited bias"
FAMILY4 = "implicit-reward recovery"
RM_TRAINING = {"lr": 5e-4, "epochs": 2, "batch_size": 8, "max_length": 64,
               "eval_fraction": 0.2, "checkpoint_every": 2}  # fmt: skip
"""RM training of this family (LoRA rank 8 on the attention projections plus the head)."""
SFT = {"lr": 5e-5, "epochs": 2, "batch_size": 8}


def train_rm_from(ctx: Context, base: str, folder: Path, seed: int):
    settings = TrainRmSettings(base=base, out=folder, save="final", seed=seed,
                               lexicon=str(ctx.words), prompt_keys=EVAL_KEYS, **RM_TRAINING)  # fmt: skip
    return run_train_rm(settings, data=neutral_preferences())


def patch_pair(ctx: Context, base: LoadedModel, rm_path: str, folder: Path, seed: int) -> dict:
    """``patch`` base -> RM; returns its summary and value-lens items."""
    rm = load_model(ModelSpec(rm_path, kind="rm", dtype="float32"))
    settings = dataclasses.replace(
        patch_settings(ctx, rm_path, folder, ("resid_post",), seed), base=base.name
    )
    run = run_patch(settings, models=(base, rm))
    return {"summary": run.summary, "lens": pd.read_parquet(folder / "value_lens_items.parquet")}


def injected_strings(lm: LoadedModel, words) -> set[str]:
    """Each word's first response token, decoded, as the log-prob format of an evaluation prompt
    writes it (the strings the implicit-reward join keys on)."""
    fmt = conversation_format(lm, eval_prompts()[0].text)
    return {lm.tokenizer.decode([response_ids(lm, fmt, w)[0]]) for w in words}


def _scores(folder: Path, kind: str) -> pd.DataFrame:
    table = pd.read_parquet(folder / "durability_scores.parquet")
    return table[table["kind"] == kind]


def _arm(ctx: Context, folder: Path, name: str, kind: str, spec: InheritedSpec) -> dict:
    """Fine-tune one base (``agency`` or ``mixed``), train its RM, patch the pair."""
    examples = sft_examples(kind, spec.sft_examples, spec.seed)
    base_dir, sft_record = fine_tune(ctx.model, examples, SftConfig(seed=spec.seed, **SFT),
                                     folder / f"base_{name}", ctx.progress)  # fmt: skip
    train = train_rm_from(ctx, str(base_dir), folder / f"rm_{name}", spec.seed)
    base = load_model(ModelSpec(str(base_dir), kind="lm", dtype="float32"))
    pair = patch_pair(ctx, base, train.summary["final_checkpoint"], folder / f"patch_{name}",
                      spec.seed)  # fmt: skip
    sft_record = {k: v for k, v in sft_record.items() if k != "examples"}
    return {"base_dir": base_dir, "train": train, "pair": pair, "sft": sft_record}


def run_inherited(spec: InheritedSpec, ctx: Context) -> tuple[list[Row], dict]:
    """Families 3 and 4 for one seed: (rows, record)."""
    t0, c0 = time.perf_counter(), time.process_time()
    seed = spec.seed
    ctx.progress.note(f"organisms: inherited bias and implicit-reward recovery (seed {seed})")
    folder = ctx.folder(f"inherited-s{seed}")
    words = word_table()
    design = category_words(words, CategoryPair("Agency", "Communion"), list(words["response"]))
    clean_train = train_rm_from(ctx, ctx.model, folder / "rm_clean", seed)
    clean_pair = patch_pair(ctx, ctx.base, clean_train.summary["final_checkpoint"],
                            folder / "patch_clean", seed)  # fmt: skip
    arms = {"biased": _arm(ctx, folder, "biased", "agency", spec)}
    if spec.control:
        arms["mixed"] = _arm(ctx, folder, "mixed", "mixed", spec)
    rows: list[Row] = []
    clean = folder / "rm_clean"
    for name, arm in arms.items():
        organism = "inherited-agency" if name == "biased" else "inherited-control-mixed"
        expected = (lambda label: label) if name == "biased" else (lambda label: None)
        run_dir = folder / f"rm_{name}"
        rows += [
            label_row(organism, FAMILY3, seed, "base log-probs",
                      base_logprob_rule(_scores(run_dir, "lm"), _scores(clean, "lm"), design, seed),
                      expected("base")),
            label_row(organism, FAMILY3, seed, "durability (train-rm checkpoints)",
                      durability_rule(_scores(run_dir, "rm"), _scores(clean, "rm"), design, seed),
                      expected("every checkpoint")),
            label_row(organism, FAMILY3, seed, "patch base reading (value lens)",
                      base_reading_rule(arm["pair"]["lens"], clean_pair["lens"], design, seed),
                      expected("base")),
        ]  # fmt: skip
        if name == "biased":
            rows += screen_rows(organism, FAMILY3, seed, arm["pair"]["summary"], ("resid_post",))
    rows += recovery_rows(ctx, arms["biased"]["base_dir"], folder / "implicit", seed)
    record = {
        "seed": seed, "spec": dataclasses.asdict(spec), "rm_training": RM_TRAINING, "sft": SFT,
        "neutral_data": neutral_preferences().record,
        "arms": {n: {"sft": a["sft"], "rm_heldout_accuracy": a["train"].summary["heldout_accuracy"]}
                 for n, a in arms.items()},
        "clean_rm_heldout_accuracy": clean_train.summary["heldout_accuracy"],
    }  # fmt: skip
    for run_dir in [clean, *[folder / f"rm_{n}" for n in arms]]:
        for checkpoint in sorted(run_dir.glob("checkpoint-*")):
            ctx.discard(checkpoint)
    for arm in arms.values():
        ctx.discard(arm["base_dir"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [dataclasses.replace(r, organism_wall_s=wall, organism_cpu_s=cpu) for r in rows]
    record.update(wall_s=round(wall, 1), cpu_s=round(cpu, 1))
    return rows, record


def recovery_rows(ctx: Context, biased_base: Path, out: Path, seed: int) -> list[Row]:
    """``implicit-reward`` clean -> biased base, then the recovery rule for MWLR and the raw
    log-ratio, on the injected words and (control) on as many random non-injected strings."""
    settings = ImplicitRewardSettings(
        model_1=ctx.model, model_2=str(biased_base), out=out, prompts=str(ctx.prompts_file),
        lexicon=str(ctx.words), permutations=ctx.permutations, bootstrap=ctx.bootstrap, seed=seed,
        no_figures=True,
    )  # fmt: skip
    run_implicit_reward(settings, progress=ctx.progress)
    table = pd.read_parquet(
        out / "implicit_reward.parquet", columns=["response", "mwlr", "log_ratio"]
    )
    positives = injected_strings(ctx.base, AGENCY)
    control = random_positives(table["response"].unique().tolist(), positives, len(positives), seed)
    rows = []
    for value, method in (("mwlr", "implicit reward MWLR"), ("log_ratio", "raw log-ratio")):
        finding, _ = recovery_rule(table, value, positives, seed)
        rows.append(label_row("implicit-agency", FAMILY4, seed, method, finding, "injected words"))
        finding, _ = recovery_rule(table, value, control, seed)
        rows.append(
            label_row("implicit-control-random-words", FAMILY4, seed, method, finding, None)
        )
    return rows

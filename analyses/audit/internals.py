"""Stages 4-5 of an audit: probes of both models, their agreement, and the value lens.

4. ``4-probes``: ``rm-acts`` and ``base-acts`` (``cache-activations``: every block's
   ``resid_post`` at the last token, on the RM's formatting for both models so the two stores
   hold identical token sequences; the base is loaded with a seeded random head, which no
   activation depends on), ``rm-probes`` and ``base-probes`` (``train-probes``: logistic and
   difference-of-means probes, word-grouped CV, bootstrap CIs over words, shuffled-label
   controls), then ``compare`` (``compare-probes``: direction cosine per layer, the base probe
   applied to the RM's activations, and each direction's cosine with the RM's score head).
   The activation cache resumes by itself after an interruption.
5. ``5-value-lens``: ``lens`` (``value-lens``): the reward the RM's readout gives the residual
   stream of the RM and of its base at every depth.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.audit.config import AuditConfig
from analyses.audit.inputs import model_identity
from analyses.audit.ledger import Ledger, Step
from analyses.audit.preference import AuditInputs
from analyses.runs.cache_activations import CacheActivationsSettings, run_cache_activations
from analyses.runs.compare_probes import CompareProbesSettings, run_compare_probes
from analyses.runs.train_probes import TrainProbesSettings, run_train_probes
from analyses.runs.value_lens import ValueLensSettings, run_value_lens

PROBE_SITE = "resid_post"
PROBE_METHOD = "logistic"
BASE_HEAD_SEED = 0
"""The base model's activations are cached through an RM wrapper with this seeded head (unused)."""

_PROBE_COLUMNS = ("layer", "method", "accuracy", "accuracy_low", "accuracy_high", "auroc",
                  "auroc_low", "auroc_high", "control_accuracy", "selectivity_accuracy",
                  "n_words", "n_items")  # fmt: skip
_COMPARE_COLUMNS = ("layer", "method", "cosine", "transfer_a_on_b_accuracy",
                    "transfer_a_on_b_auroc", "head_cosine_b", "head_cosine_a")  # fmt: skip


def _acts_step(config: AuditConfig, inputs: AuditInputs, ledger: Ledger, progress,
               role: str) -> Step:  # fmt: skip
    is_rm = role == "rm"
    name = config.rm if is_rm else config.base
    revision = config.rm_revision if is_rm else config.base_revision
    head = config.rm_random_head if is_rm else BASE_HEAD_SEED

    def run(folder: Path) -> dict:
        settings = CacheActivationsSettings(
            model=name, kind="rm", revision=revision, random_head=head, device=config.device,
            prompts=str(inputs.prompts["internal"]), responses=str(inputs.words),
            sites=PROBE_SITE, layers="all", positions="last", out=folder / "acts.h5",
            **config.load_kwargs(),
        )  # fmt: skip
        result = run_cache_activations(settings, progress=progress).result
        return {"file": ledger.rel(result.path), "n_items": result.n_items,
                "n_sites": result.n_sites, "complete": result.complete}  # fmt: skip

    settings = {"model": model_identity(name, revision), "head": head, "device": config.device,
                "site": PROBE_SITE, "positions": "last"}  # fmt: skip
    weight = 10.0 + 1.5 * inputs.n_words * inputs.n_prompts["internal"]
    return Step("4-probes", f"{role}-acts", settings, run, ("0-inputs/words", "0-inputs/prompts"),
                weight)  # fmt: skip


def _probe_step(config: AuditConfig, inputs: AuditInputs, ledger: Ledger, progress,
                role: str) -> Step:  # fmt: skip
    def run(folder: Path) -> dict:
        acts = ledger.root / ledger.results[f"4-probes/{role}-acts"]["file"]
        settings = TrainProbesSettings(
            acts=acts, out=folder, classes=config.gap, folds=config.probe_folds,
            bootstrap=config.bootstrap, controls=config.probe_controls, seed=config.seed,
            no_figures=True, overwrite=True,
        )  # fmt: skip
        results = run_train_probes(settings, progress=progress).results
        table = results.table()
        cols = [c for c in _PROBE_COLUMNS if c in table]
        return {
            "folder": ledger.rel(folder),
            "layers": table[cols].to_dict("records"),
            "best": results.best(),
            "data": results.data_summary,
        }

    settings = {"gap": list(config.gap), "folds": config.probe_folds,
                "controls": config.probe_controls, "bootstrap": config.bootstrap,
                "seed": config.seed}  # fmt: skip
    return Step("4-probes", f"{role}-probes", settings, run, (f"4-probes/{role}-acts",),
                0.6 * inputs.n_words * inputs.n_prompts["internal"])  # fmt: skip


def _compare_step(inputs: AuditInputs, ledger: Ledger, progress) -> Step:
    def run(folder: Path) -> dict:
        base = ledger.root / ledger.results["4-probes/base-probes"]["folder"]
        rm = ledger.root / ledger.results["4-probes/rm-probes"]["folder"]
        result = run_compare_probes(
            CompareProbesSettings(
                dir_a=base, dir_b=rm, out=folder, no_figures=True, overwrite=True
            ),
            progress=progress,
        )
        table = pd.read_parquet(folder / "compare.parquet")
        cols = [c for c in _COMPARE_COLUMNS if c in table]
        notes = [  # the base's seeded head is only the wrapper its activations were read through
            n.replace(str(ledger.root) + "/", "")
            for n in result.summary["notes"]
            if not (str(base) in n and "random head" in n)
        ]
        return {"layers": table[cols].to_dict("records"), "notes": notes,
                "a": "base", "b": "rm"}  # fmt: skip

    needs = ("4-probes/base-probes", "4-probes/rm-probes")
    return Step("4-probes", "compare", {}, run, needs, 0.1 * inputs.n_words)


def _lens_step(config: AuditConfig, inputs: AuditInputs, ledger: Ledger, progress) -> Step:
    def run(folder: Path) -> dict:
        settings = ValueLensSettings(
            rm=config.rm, base=config.base, responses=str(inputs.words),
            prompts=str(inputs.prompts["internal"]), gap=config.gap, out=folder,
            bootstrap=config.bootstrap, seed=config.seed, device=config.device, overwrite=True,
            **config.load_kwargs(),
        )  # fmt: skip
        run_value_lens(settings, progress=progress)
        gaps = pd.read_csv(folder / "value_lens_gap.csv")
        return {"gaps": gaps.to_dict("records"), "readout": "RM final norm + score head"}

    settings = {
        "rm": model_identity(config.rm, config.rm_revision),
        "base": model_identity(config.base, config.base_revision),
        "gap": list(config.gap), "bootstrap": config.bootstrap, "seed": config.seed,
        "device": config.device,
    }  # fmt: skip
    needs = ("0-inputs/words", "0-inputs/prompts")
    weight = 20.0 + 2.0 * inputs.n_words * inputs.n_prompts["internal"]
    return Step("5-value-lens", "lens", settings, run, needs, weight)


def internal_stages(config: AuditConfig, inputs: AuditInputs, ledger: Ledger,
                    progress) -> dict[str, list[Step]]:  # fmt: skip
    """The steps of stages 4-5 that ``config`` enables, by stage folder."""
    stages: dict[str, list[Step]] = {}
    if config.enabled("probes"):
        stages["4-probes"] = [
            _acts_step(config, inputs, ledger, progress, "rm"),
            _acts_step(config, inputs, ledger, progress, "base"),
            _probe_step(config, inputs, ledger, progress, "rm"),
            _probe_step(config, inputs, ledger, progress, "base"),
            _compare_step(inputs, ledger, progress),
        ]
    if config.enabled("value-lens"):
        stages["5-value-lens"] = [_lens_step(config, inputs, ledger, progress)]
    return stages

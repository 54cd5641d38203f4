"""Demo stage: the paper's controlled experiment in miniature, then a layerwise look inside.

``demo_stage_training(out_dir, progress)`` (wired into ``cli.py demo`` by the pipeline):

1. Preference data: the embedded default (LLaMA-Factory's ``dpo_en_demo.json``: 300 AI-judged
   pairs - few, and not human labels; fine for showing the method, not for conclusions).
2. Trains an RM from each embedded base model (``smollm2-135m-instruct``, ``gemma3-270m``) with
   identical CPU-sized settings (``DEMO_CONFIG``: the last 4 blocks + final norm + head, 160
   pairs, 96 tokens, 2 epochs), scoring the Big Two plain words (pronouns dropped) under four of
   the paper's prompts at every checkpoint (durability curves) and the base LM's log-probs as the
   reference.
3. For the SmolLM2 pair: a residual-stream patching sweep (base into RM, every block, all
   positions) with the value lens, plus a layer x position sweep over the trained top blocks;
   writes the layerwise bias figure. Only the top blocks were trained, so the base and the RM
   compute identical residual streams below them: patching there must change nothing (it is a
   built-in check of the sweep), and the value-lens curves must coincide up to that depth.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.patching import PatchSettings, run_patch
from analyses.patching_plots import durability_figure
from analyses.preference_data import load_preference_data
from analyses.rm_training import run_train_rm
from interp.progress import NoProgress, Progress
from interp.training import TrainConfig

DEMO_MODELS = ("smollm2-135m-instruct", "gemma3-270m")
DEMO_CONFIG = TrainConfig(
    method="last-k",
    train_last=4,
    epochs=2,
    lr=2e-4,
    batch_size=8,
    max_length=96,
    eval_fraction=0.2,
    checkpoint_every=16,
    save_checkpoints="final",  # float32 folders are large (0.5 GB SmolLM2, 1.1 GB Gemma)
    max_pairs=160,
    seed=0,
)
DURABILITY_PROMPTS = ("greatest_ever_one", "best_world_one", "worst_ever_one", "terrible_world_one")
PATCH_PROMPTS = ("greatest_ever_one", "best_world_one")


def demo_words(out_dir: Path) -> Path:
    """Big Two plain entries without pronouns, as a ``response,category`` CSV in ``out_dir``."""
    from analyses.lexicons import load_lexicon

    lexicon = load_lexicon("big2").drop_pronouns()
    words = list(lexicon.words())
    table = lexicon.categorise(words)
    path = out_dir / "big2_words.csv"
    table.to_csv(path, index=False)
    return path


def demo_stage_training(out_dir: Path, progress: Progress | None = None) -> dict:
    """Train both embedded models on the default data, durability, value lens and patching."""
    progress = progress or NoProgress()
    root = Path(out_dir) / "rm_training"
    root.mkdir(parents=True, exist_ok=True)
    data = load_preference_data("default")
    words_csv = demo_words(root)
    progress.note(
        "RM training demo: the default preference data are 300 AI-judged pairs (few, not human "
        "labels), so the RMs below show the method, not findings"
    )
    summary: dict = {
        "data": data.record,
        "labels_warning": data.record.get("labels"),
        "settings": DEMO_CONFIG.to_record(),
        "words": str(words_csv),
        "durability_prompts": list(DURABILITY_PROMPTS),
        "models": {},
    }
    for name in DEMO_MODELS:
        result = run_train_rm(
            name,
            data,
            root / name,
            DEMO_CONFIG,
            lexicon=str(words_csv),
            prompts_spec="paper54",
            prompt_keys=DURABILITY_PROMPTS,
            progress=progress,
        )
        summary["models"][name] = result
    summary["controlled_comparison"] = _comparison(summary["models"])
    both = pd.concat(
        [pd.read_csv(root / name / "durability.csv") for name in DEMO_MODELS], ignore_index=True
    )
    summary["durability_figure"] = [
        str(p)
        for p in durability_figure(
            both[both["kind"] == "rm"],
            root / "durability_both",
            "same data, same settings: RMs from two base models (AI-judged demo labels)",
        )
    ]
    smol = summary["models"][DEMO_MODELS[0]]
    rm_path = smol["final_checkpoint"]
    trained_from = DEMO_MODELS[0]
    n_frozen = 30 - DEMO_CONFIG.train_last
    sweep = run_patch(
        trained_from,
        rm_path,
        "paper54",
        str(words_csv),
        root / "patching-smollm2",
        PatchSettings(sites=("resid_pre",), layers="all", positions="all", n_permutations=5000),
        prompt_keys=PATCH_PROMPTS,
        progress=progress,
    )
    heat = run_patch(
        trained_from,
        rm_path,
        "paper54",
        str(words_csv),
        root / "patching-smollm2-positions",
        PatchSettings(
            sites=("resid_pre",),
            layers=f"{n_frozen - 2}:30",
            positions="all,last:6",
            n_permutations=5000,
        ),
        prompt_keys=PATCH_PROMPTS[:1],
        progress=progress,
    )
    summary["patching"] = {
        "checkpoint_note": "only the final checkpoints are saved in the demo (train-rm saves "
        "step 0 too by default); step 0 = the base weights with a seeded random head",
        "pair": f"{trained_from} -> {rm_path}",
        "self_test": sweep["self_test"],
        "largest_effect_per_site": sweep["largest_effect_per_site"],
        "value_lens_final_gap": sweep["value_lens_final_gap"],
        "seconds": sweep["seconds"],
        "files": sweep["files"] + heat["files"],
        "note": f"only blocks {n_frozen}-29 were trained: patching below block {n_frozen} must "
        "show no effect, and the value-lens curves coincide up to that depth",
        "frozen_blocks_effect_max": _max_effect_below(root / "patching-smollm2", n_frozen),
    }
    return summary


def _max_effect_below(folder: Path, layer: int) -> float:
    effects = pd.read_csv(folder / "patch_effects.csv")
    below = effects[effects["layer"] <= layer]
    return float(below["max_abs_word_change"].max())


def _comparison(models: dict) -> dict:
    """Per framing, the base LM's and the final RM's standardised gap for each base model."""
    out: dict = {}
    for name, result in models.items():
        for framing, info in result.get("durability", {}).items():
            out.setdefault(framing, {})[name] = {
                "base_lm_logprob_d": info["base_lm_logprob_d"],
                "rm_d_step0": info["rm_d_step0"],
                "rm_d_final": info["rm_d_final"],
                "rm_d_final_ci": info["rm_d_final_ci"],
                "heldout_accuracy_final": list(result["heldout_accuracy"].values())[-1],
            }
    return out

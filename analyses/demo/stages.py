"""The demo's stages. Each is ``(out_dir, progress) -> dict`` (JSON-ready, with a ``headline``).

1. ``next-token-logprobs``: fetch both embedded models; next-token log-probs of the 54 prompts;
   the top tokens per prompt as score tables.
2. ``implicit-reward``: MWLR of the Gemma model over the SmolLM2 model on the 54 prompts, the
   Agency - Communion contrast (Big Two version a, pronouns dropped) whatever it shows, and
   Stage 2 on both models' log-probs.
3. ``probes``: activations of both models on Big Two words under two prompts, layerwise probes.
4. ``rm-training``: the paper's controlled experiment in miniature: an RM trained from each base
   on the same 160 AI-judged pairs with the same settings (few, not human labels: a method demo,
   not a finding), durability curves, then base -> RM patching and the value lens for SmolLM2.
   Only the top blocks are trained, so patching below them must change nothing (a built-in
   check of the sweep) and the value-lens curves coincide up to that depth.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from analyses.demo import config as demo
from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.preference_data import load_preference_data
from analyses.inputs.prompts import paper_prompts
from analyses.inputs.score_table import write_score_table
from analyses.runs.cache_activations import CacheActivationsSettings, cache_for_model
from analyses.runs.implicit_reward import ImplicitRewardSettings, run_implicit_reward
from analyses.runs.patch import PatchSettings, run_patch
from analyses.runs.train_probes import TrainProbesSettings, run_train_probes
from analyses.runs.train_rm import TrainRmSettings, run_train_rm
from interp.atomic import write_table
from interp.models import zoo
from interp.models.loading import LoadedModel, ModelSpec, load_model
from interp.progress import Progress
from interp.provenance import provenance
from interp.score_rows import score_rows
from interp.scoring import next_token_logprobs


def top_token_table(loaded: LoadedModel, prompts, logprobs: torch.Tensor, k: int) -> pd.DataFrame:
    """The ``k`` most likely next tokens per prompt as score-table rows (score = log-prob, nats)."""
    tok = loaded.tokenizer
    values, indices = logprobs.topk(k, dim=-1)
    frames = []
    for prompt, vals, ids in zip(prompts, values, indices):
        ids_list = ids.tolist()
        frames.append(
            score_rows(
                model=loaded.name,
                family=loaded.family,
                kind="lm",
                prompt=prompt,
                responses=[tok.decode([t]) for t in ids_list],
                scores=vals.numpy(),
                token_ids=ids_list,
                rank=range(1, len(ids_list) + 1),
                raw_token=tok.convert_ids_to_tokens(ids_list),
            )  # fmt: skip
        )
    return pd.concat(frames, ignore_index=True)


def stage_next_token_logprobs(out_dir: Path, progress: Progress) -> dict:
    """Fetch both embedded models; next-token log-probs of the 54 prompts; top tokens per prompt."""
    prompts = paper_prompts()
    out_dir = out_dir / "lm_logprobs"
    summary: dict = {}
    for name in demo.DEMO_MODELS:
        progress.start(1, f"fetching {name}")
        zoo.fetch_embedded(name)
        progress.advance()
        loaded = load_model(ModelSpec(name, kind="lm"))
        progress.start(len(prompts), f"next-token log-probs, {name}")
        rows = []
        for prompt in prompts:
            rows.append(next_token_logprobs(loaded, [prompt.text])[0])
            progress.advance()
        table = top_token_table(loaded, prompts, torch.stack(rows), demo.TOP_K)
        path = out_dir / f"{name}.parquet"
        record = provenance(
            model=loaded.provenance(),
            prompts={"source": "paper54", "n": len(prompts)},
            responses={"responses": f"top {demo.TOP_K} next tokens of the full vocabulary"},
        )
        write_score_table(table, path, record)
        show = table[table["prompt_key"] == demo.SHOWCASE_PROMPT].head(10)
        summary[name] = {
            "file": str(path),
            "template": loaded.template_mode if loaded.template_mode == "chat" else "raw prompt",
            "top_tokens": [
                {"token": r.response, "logprob": round(float(r.score), 3)}
                for r in show.itertuples()
            ],
        }
    progress.close()
    lines = []
    for name, info in summary.items():
        tokens = ", ".join(f"{t['token']!r} ({t['logprob']:.2f})" for t in info["top_tokens"])
        lines.append(f"{name} [{info['template']}] top tokens for {demo.SHOWCASE_PROMPT}: {tokens}")
    return {"models": summary, "headline": "\n".join(lines)}


def stage_implicit_reward(out_dir: Path, progress: Progress) -> dict:
    """Implicit reward between the embedded pair, Stage-2 statistics and figures."""
    lm_1, lm_2 = demo.DEMO_MODELS
    out = out_dir / "implicit_reward"
    run = run_implicit_reward(
        ImplicitRewardSettings(model_1=lm_1, model_2=lm_2, out=out, merge="sum", overwrite=True),
        progress=progress,
    )
    anova = run.summary["stage2"]["anova"]
    terms = "; ".join(
        f"{a['term']} F={a['F']:.2f} p={a['p']:.3g}" for a in anova if a["term"] != "Residual"
    )
    lines = [
        f"implicit reward (MWLR) of {lm_2} over {lm_1}, 54 paper prompts, Big Two (version a, "
        "pronouns dropped), case/whitespace variants merged (sum):",
        run.headline(),
        f"Stage 2 (median rank of lexicon words by log-prob), type-II ANOVA: {terms}",
    ]
    return {
        "files": [str(p) for p in run.files],
        "headline": "\n".join(lines),
        "comparison": run.summary["comparison"],
        "summary": str(out / "summary.json"),
    }


def stage_probes(out_dir: Path, progress: Progress) -> dict:
    """Cache + probe both embedded models into ``out_dir/probes/<model>/``.

    Each model is loaded as an LM (its own formatting), every layer's ``resid_post`` at the last
    token is cached in float16, and logistic and difference-of-means probes (5 word-grouped
    folds, 500 bootstrap resamples, three shuffled-label controls averaged) are fitted. A
    complete store is reused (the cache resumes and finds nothing to do).
    """
    root = out_dir / "probes"
    summary: dict = {
        "responses": demo.PROBE_RESPONSES, "prompts": list(demo.PROBE_PROMPT_KEYS), "models": {},
    }  # fmt: skip
    for name in demo.DEMO_MODELS:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        settings = CacheActivationsSettings(
            model=name, responses=demo.PROBE_RESPONSES, prompt_keys=demo.PROBE_PROMPT_KEYS,
            out=folder / "acts.h5",
        )  # fmt: skip
        cached = cache_for_model(load_model(settings.model_spec()), settings, progress)
        run = run_train_probes(
            TrainProbesSettings(
                acts=cached.path, out=folder / "probes", bootstrap=500, controls=3, overwrite=True
            ),
            progress=progress,
        )
        summary["models"][name] = {
            "acts": str(cached.path),
            "items": cached.n_items,
            "probes": str(run.out),
            "figures": [str(p) for p in run.files if p.suffix == ".png"],
            "best": run.results.best(),
            "headline": run.headline(),
        }
    summary["headline"] = "\n".join(
        f"{name}: {info['headline']}" for name, info in summary["models"].items()
    )
    return summary


def training_words(root: Path) -> Path:
    """Big Two plain entries without pronouns, as a ``response,category`` CSV in ``root``."""
    lexicon = load_lexicon("big2").drop_pronouns()
    return write_table(lexicon.categorise(lexicon.words()), root / "big2_words.csv")


def _controlled_comparison(models: dict) -> dict:
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


def stage_training(out_dir: Path, progress: Progress) -> dict:
    """Train both embedded models on the default data, durability, value lens and patching."""
    from analyses.figures.patching import durability_figure

    root = out_dir / "rm_training"
    root.mkdir(parents=True, exist_ok=True)
    data = load_preference_data("default")
    words_csv = training_words(root)
    progress.note(
        "RM training demo: the default preference data are 300 AI-judged pairs (few, not human "
        "labels), so the RMs below show the method, not findings"
    )
    cfg = demo.TRAINING
    summary: dict = {
        "data": data.record, "labels_warning": data.record.get("labels"),
        "settings": cfg.to_record(), "words": str(words_csv),
        "durability_prompts": list(demo.DURABILITY_PROMPTS), "models": {},
    }  # fmt: skip
    for name in demo.DEMO_MODELS:
        settings = TrainRmSettings(
            base=name, out=root / name, train_last=cfg.train_last, epochs=cfg.epochs, lr=cfg.lr,
            batch_size=cfg.batch_size, max_length=cfg.max_length,
            eval_fraction=cfg.eval_fraction, checkpoint_every=cfg.checkpoint_every,
            save=cfg.save_checkpoints, max_pairs=cfg.max_pairs, seed=cfg.seed,
            lexicon=str(words_csv), prompt_keys=demo.DURABILITY_PROMPTS, overwrite=True,
        )  # fmt: skip
        summary["models"][name] = run_train_rm(settings, progress=progress, data=data).summary
    summary["controlled_comparison"] = _controlled_comparison(summary["models"])
    both = pd.concat(
        [pd.read_csv(root / name / "durability.csv") for name in demo.DEMO_MODELS],
        ignore_index=True,
    )
    summary["durability_figure"] = [
        str(p)
        for p in durability_figure(
            both[both["kind"] == "rm"],
            root / "durability_both",
            "same data, same settings: RMs from two base models (AI-judged demo labels)",
        )  # fmt: skip
    ]
    summary["patching"] = _patching(
        root, summary["models"][demo.DEMO_MODELS[0]], words_csv, progress
    )
    summary["headline"] = _training_headline(summary)
    return summary


def _patching(root: Path, smol: dict, words_csv: Path, progress: Progress) -> dict:
    """Base -> RM patching of the SmolLM2 pair: every block, then layer x position at the top."""
    base, rm_path = demo.DEMO_MODELS[0], smol["final_checkpoint"]
    top = demo.TRAINING.train_last
    common = dict(base=base, rm=rm_path, responses=str(words_csv), sites=("resid_pre",),
                  permutations=5000, overwrite=True)  # fmt: skip
    sweep = run_patch(
        PatchSettings(out=root / "patching-smollm2", prompt_keys=demo.PATCH_PROMPTS, **common),
        progress=progress,
    )
    heat = run_patch(
        PatchSettings(
            out=root / "patching-smollm2-positions",
            prompt_keys=demo.PATCH_PROMPTS[:1],
            layers=f"{-(top + 2)}:",
            positions="all,last:6",
            **common,
        ),  # fmt: skip
        progress=progress,
    )
    n_layers = sweep.sweep.lens_receiver.shape[1] - 1
    n_frozen = n_layers - top
    effects = sweep.effects
    frozen = effects[effects["layer"] <= n_frozen]
    return {
        "checkpoint_note": "only the final checkpoints are saved in the demo (train-rm saves "
        "step 0 too by default); step 0 = the base weights with a seeded random head",
        "pair": f"{base} -> {rm_path}",
        "self_test": sweep.summary["self_test"],
        "largest_effect_per_site": sweep.summary["largest_effect_per_site"],
        "value_lens_final_gap": sweep.summary["value_lens_final_gap"],
        "seconds": sweep.summary["seconds"],
        "files": sweep.summary["files"] + heat.summary["files"],
        "note": f"only blocks {n_frozen}-{n_layers - 1} were trained: patching below block "
        f"{n_frozen} must show no effect, and the value-lens curves coincide up to that depth",
        "frozen_blocks_effect_max": float(frozen["max_abs_word_change"].max()),
    }


def _training_headline(summary: dict) -> str:
    lines = [f"data: {summary['labels_warning'] or summary['data'].get('source')}"]
    for framing, per_model in summary.get("controlled_comparison", {}).items():
        for name, gap in per_model.items():
            lines.append(
                f"{framing} prompts, {name}: Agency-Communion gap (Cohen's d) base LM "
                f"{gap['base_lm_logprob_d']:+.2f}, RM step 0 {gap['rm_d_step0']:+.2f}, RM final "
                f"{gap['rm_d_final']:+.2f}, held-out accuracy {gap['heldout_accuracy_final']:.2f}"
            )
    patching = summary.get("patching", {})
    if patching:
        lines.append(
            f"patching {patching['pair']}: largest effect per site "
            f"{patching['largest_effect_per_site']}"
        )
    return "\n".join(lines)

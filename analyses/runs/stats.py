"""``stats``: the paper's statistics on a score table, written as JSON, CSVs and figures.

Stage 1 (RM scores, families compared: ``analyses.stats.stage1``) or Stage 2 (LM log-probs,
models compared: ``analyses.stats.stage2``), plus cross-model rank agreement when the table holds
two or more models. Every summary carries provenance: the score file's sha256 and its own
provenance, the lexicon, seed and settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.score_table import read_provenance, read_score_table
from analyses.runs.common import (
    Overwrite,
    Resampling,
    RunResult,
    TextInputs,
    write_json,
    write_table,
)
from analyses.runs.options import option
from analyses.stats.agreement import cross_model_agreement
from analyses.stats.stage1 import Stage1Result, stage1
from analyses.stats.stage2 import Stage2Result, stage2
from interp.atomic import RunFolder
from interp.errors import UserError
from interp.progress import NoProgress, Progress
from interp.provenance import provenance


@dataclass(frozen=True, kw_only=True)
class StatsSettings(Resampling, TextInputs, Overwrite):
    """Which table, which lexicon, which stage, and where to write."""

    scores: Path = option(Path(), "--scores", kind="path", required=True, help="Score table.")
    lexicon: str = option("", "--lexicon", required=True,
                          help="Named lexicon (see `lexicons list`) or a lexicon file.")  # fmt: skip
    out: Path = option(
        Path("stats-out"), "--out", kind="path", required=True, help="Output folder."
    )
    stage: str = option(
        "auto", "--stage", kind="choice", choices=("auto", "1", "2"),
        help="1: reward models (families); 2: LM log-probs (models). auto: by score kind.",
    )  # fmt: skip
    no_pronouns: bool = option(
        False, "--no-pronouns", kind="flag", help="Drop the Big Two pronoun entries."
    )
    reference_family: str | None = option(
        None,
        "--reference-family",
        help="Family subtracted in differences (default: first by name).",
    )
    models: tuple[str, ...] = option(
        (), "--model", multiple=True, help="Keep only these models (repeatable)."
    )
    no_figures: bool = option(False, "--no-figures", kind="flag", help="Write no figures.")
    drop_nonfinite: bool = option(
        False, "--drop-nonfinite", kind="flag",
        help="Leave out NaN/infinite scores (counted in the summary) instead of refusing the table.",
    )  # fmt: skip


@dataclass(frozen=True)
class StatsRun(RunResult):
    stage: int = 1
    lines: str = ""

    def headline(self) -> str:
        return f"stage {self.stage}: wrote {len(self.files)} files to {self.out}\n{self.lines}"


def _records_csv(rows, path: Path) -> Path:
    return write_table(pd.DataFrame([asdict(r) for r in rows]), path)


def nonfinite_scores(table: pd.DataFrame, drop: bool, source: str) -> tuple[pd.DataFrame, dict]:
    """Refuse (default) or drop rows whose score is NaN or infinite.

    Returns the table to analyse and a record: how many rows were dropped, per model and prompt.
    A refusal names the counts per model and prompt, so a silently moved headline is impossible.
    """
    bad = ~np.isfinite(table["score"].to_numpy(dtype=np.float64))
    record = {"n_rows": int(len(table)), "n_nonfinite": int(bad.sum()), "dropped": bool(drop)}
    if not bad.any():
        return table, record
    counts = table[bad].groupby(["model", "prompt_key"]).size().sort_values(ascending=False)
    record["per_model_prompt"] = {f"{m} / {p}": int(n) for (m, p), n in counts.items()}
    shown = ", ".join(f"{m} / {p}: {n}" for (m, p), n in list(counts.items())[:4])
    more = f" and {len(counts) - 4} more" if len(counts) > 4 else ""
    if not drop:
        raise UserError(
            f"{source}: {int(bad.sum())} of {len(table)} scores are NaN or infinite ({shown}{more}); "
            "fix the table, or pass --drop-nonfinite to leave them out (the summary then counts them)"
        )
    if bad.all():
        raise UserError(f"{source}: every score is NaN or infinite; nothing to analyse")
    return table[~bad].reset_index(drop=True), record


def write_stage1(result: Stage1Result, out: Path) -> list[Path]:
    """``summary.json`` plus ``cells.csv``, ``differences.csv``, ``mixed_model.csv``,
    ``panels.csv`` and ``median_ranks.csv`` in ``out``."""
    paths = [write_json(result.summary(), out / "summary.json")]
    paths.append(_records_csv(result.cells, out / "cells.csv"))
    paths.append(_records_csv(result.differences, out / "differences.csv"))
    if result.mixed_model is not None:
        paths.append(_records_csv(result.mixed_model.terms, out / "mixed_model.csv"))
    paths.append(_records_csv(result.panels, out / "panels.csv"))
    return [*paths, write_table(result.median_ranks, out / "median_ranks.csv")]


def write_stage2(result: Stage2Result, out: Path) -> list[Path]:
    """``summary.json`` plus ``anova.csv``, ``posthoc.csv`` and ``median_ranks.csv``."""
    paths = [
        write_json(result.summary(), out / "summary.json"),
        _records_csv(result.anova, out / "anova.csv"),
        _records_csv(result.posthoc, out / "posthoc.csv"),
    ]
    return [*paths, write_table(result.median_ranks, out / "median_ranks.csv")]


def pick_stage(scores: pd.DataFrame, stage: str) -> int:
    """Stage 1 for RM scores, 2 for LM log-probs (``auto``), or the one asked for."""
    kinds = set(scores["kind"])
    if stage in ("1", "2"):
        return int(stage)
    if kinds == {"rm"}:
        return 1
    if kinds == {"lm"}:
        return 2
    raise UserError(
        f"score table mixes or has no RM/LM scores (kinds: {', '.join(sorted(kinds))}); "
        "choose --stage 1 or 2"
    )


def _stage1_lines(res: Stage1Result) -> str:
    sig = {(p.framing, p.category): p.p_bonferroni for p in res.panels}
    parts = [
        f"{x.framing}/{x.category}: {res.families[1]}-{res.families[0]} = {x.difference:+.2f} "
        f"(p_bonf={sig.get((x.framing, x.category), float('nan')):.3g})"
        for x in res.differences
    ]
    return "mean median rank difference, " + "; ".join(parts)


def run_stats(settings: StatsSettings, *, progress: Progress | None = None) -> StatsRun:
    """The paper's statistics on a score table: ranks, median ranks, models and tests."""
    with RunFolder(settings.out, overwrite=settings.overwrite) as folder:
        run = _stats(settings, folder.work, progress or NoProgress())
    return dataclasses.replace(run, out=folder.out, files=tuple(map(folder.final, run.files)))


def _stats(s: StatsSettings, out: Path, progress: Progress) -> StatsRun:
    from analyses.figures import stats as figs

    table = read_score_table(s.scores, s.encoding)
    if s.models:
        unknown = sorted(set(s.models) - set(table["model"]))
        if unknown:
            raise UserError(f"model(s) not in {Path(s.scores).name}: {', '.join(unknown)}")
        table = table[table["model"].isin(s.models)]
    table, finite = nonfinite_scores(table, s.drop_nonfinite, f"score table {s.scores}")
    lex = load_lexicon(s.lexicon, progress=progress, encoding=s.encoding)
    if s.no_pronouns:
        lex = lex.drop_pronouns()
    which = pick_stage(table, s.stage)
    inputs = [Path(s.scores)] + ([Path(s.lexicon)] if Path(s.lexicon).is_file() else [])
    prov = provenance(
        inputs=inputs, lexicon=lex, seed=s.seed, stage=which, n_permutations=s.permutations,
        n_bootstrap=s.bootstrap, drop_pronouns=s.no_pronouns, nonfinite_scores=finite,
        scores_provenance=read_provenance(s.scores),
    )  # fmt: skip
    progress.note(f"stage {which} on {table['model'].nunique()} model(s), lexicon {lex.name}")
    if which == 1:
        res1 = stage1(
            table, lex, s.permutations, s.bootstrap, s.seed, s.reference_family, provenance=prov
        )
        files = write_stage1(res1, out)
        if not s.no_figures:
            files += figs.median_rank_violins(
                res1.median_ranks, res1.panels, out / "median_rank_violins",
                families=res1.families, categories=lex.category_names,
            )  # fmt: skip
        lines = _stage1_lines(res1)
    else:
        res2 = stage2(table, lex, provenance=prov)
        files = write_stage2(res2, out)
        if not s.no_figures:
            files += figs.split_violins(
                res2.median_ranks, out / "split_violins", models=res2.models
            )
        terms = "; ".join(
            f"{a.term}: F={a.F:.2f}, p={a.p:.3g}" for a in res2.anova if a.term != "Residual"
        )
        lines = f"ANOVA (type II) {terms}"
    if finite["n_nonfinite"]:
        lines += f"\ndropped {finite['n_nonfinite']} NaN/infinite score(s) (--drop-nonfinite)"
    if table["model"].nunique() >= 2:
        agreement = cross_model_agreement(table)
        files.append(
            write_table(pd.DataFrame([asdict(a) for a in agreement]), out / "agreement.csv")
        )
    return StatsRun(out, tuple(files), prov, stage=which, lines=lines)

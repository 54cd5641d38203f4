"""Entry points behind ``cli.py import-scores`` and ``cli.py stats``: read, analyse, write, plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analyses.errors import UserError
from analyses.lexicons import load_lexicon
from analyses.provenance import provenance
from analyses.score_table import (
    import_paper_scores,
    read_provenance,
    read_score_table,
    write_score_table,
)
from analyses.stats import (
    cross_model_agreement,
    stage1,
    stage2,
    write_stage1,
    write_stage2,
)
from interp.progress import NoProgress, Progress


def parse_family_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["MODEL=FAMILY", ...]`` -> mapping; ``UserError`` on a malformed item."""
    out = {}
    for item in items:
        model, sep, family = item.partition("=")
        if not sep or not model.strip() or not family.strip():
            raise UserError(f"--family {item!r}: expected MODEL=FAMILY")
        out[model.strip()] = family.strip()
    return out


def run_import_scores(
    files: Sequence[str | Path], out: str | Path, family: Sequence[str] = ()
) -> str:
    """Convert the paper's wide CSVs to one score table at ``out``; returns a one-line summary."""
    overrides = parse_family_overrides(family)
    table = import_paper_scores(files, overrides)
    prov = provenance(inputs=files, family_overrides=overrides, converted_from="paper wide CSV")
    path = write_score_table(table, out, prov)
    fams = table.groupby("family")["model"].nunique().to_dict()
    return (
        f"wrote {path}: {len(table)} rows, {table['model'].nunique()} models "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(fams.items()))}), "
        f"{table['prompt_key'].nunique()} prompts, {table['response'].nunique()} responses"
    )


@dataclass(frozen=True)
class StatsRun:
    """What ``run_stats`` wrote and a short human summary."""

    stage: int
    out_dir: Path
    files: tuple[Path, ...]
    headline: str


def _pick_stage(scores: pd.DataFrame, stage: str) -> int:
    kinds = set(scores["kind"])
    if stage in ("1", "2"):
        return int(stage)
    if stage != "auto":
        raise UserError(f"--stage {stage!r}: use 1, 2 or auto")
    if kinds == {"rm"}:
        return 1
    if kinds == {"lm"}:
        return 2
    raise UserError(
        f"score table mixes or has no RM/LM scores (kinds: {', '.join(sorted(kinds))}); "
        "choose --stage 1 or 2"
    )


def run_stats(
    scores: str | Path,
    lexicon: str,
    out_dir: str | Path,
    stage: str = "auto",
    seed: int = 0,
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    drop_pronouns: bool = False,
    reference_family: str | None = None,
    models: Sequence[str] = (),
    figures: bool = True,
    progress: Progress | None = None,
) -> StatsRun:
    """Run Stage 1 (RM scores) or Stage 2 (LM log-probs) on a score table and write the results.

    Writes ``summary.json`` and CSVs (see ``analyses.stats``), ``agreement.csv`` when there are
    two or more models, and figures (PNG + SVG) unless ``figures`` is False. Every summary carries
    provenance: the score file's sha256 and its own provenance, the lexicon, seed and settings.
    """
    from analyses import figures as figs

    progress = progress or NoProgress()
    scores_path = Path(scores)
    table = read_score_table(scores_path)
    if models:
        unknown = sorted(set(models) - set(table["model"]))
        if unknown:
            raise UserError(f"model(s) not in {scores_path.name}: {', '.join(unknown)}")
        table = table[table["model"].isin(models)]
    lex = load_lexicon(lexicon, progress=progress)
    if drop_pronouns:
        lex = lex.drop_pronouns()
    which = _pick_stage(table, stage)
    inputs = [scores_path] + ([Path(lexicon)] if Path(lexicon).is_file() else [])
    prov = provenance(
        inputs=inputs,
        lexicon=lex,
        seed=seed,
        stage=which,
        n_permutations=n_permutations,
        n_bootstrap=n_bootstrap,
        drop_pronouns=drop_pronouns,
        scores_provenance=read_provenance(scores_path),
    )
    out = Path(out_dir)
    progress.note(f"stage {which} on {table['model'].nunique()} model(s), lexicon {lex.name}")
    if which == 1:
        res1 = stage1(
            table, lex, n_permutations, n_bootstrap, seed, reference_family, provenance=prov
        )
        files = write_stage1(res1, out)
        if figures:
            files += figs.median_rank_violins(
                res1.median_ranks,
                res1.panels,
                out / "median_rank_violins",
                families=res1.families,
                categories=lex.category_names,
            )
        d = {(x.framing, x.category): x.difference for x in res1.differences}
        sig = {(p.framing, p.category): p.p_bonferroni for p in res1.panels}
        parts = [
            f"{fr}/{cat}: {res1.families[1]}-{res1.families[0]} = {v:+.2f} "
            f"(p_bonf={sig.get((fr, cat), float('nan')):.3g})"
            for (fr, cat), v in d.items()
        ]
        headline = "mean median rank difference, " + "; ".join(parts)
    else:
        res2 = stage2(table, lex, provenance=prov)
        files = write_stage2(res2, out)
        if figures:
            files += figs.split_violins(
                res2.median_ranks, out / "split_violins", models=res2.models
            )
        terms = "; ".join(
            f"{a.term}: F={a.F:.2f}, p={a.p:.3g}" for a in res2.anova if a.term != "Residual"
        )
        headline = f"ANOVA (type II) {terms}"
    if table["model"].nunique() >= 2:
        agreement = cross_model_agreement(table)
        path = out / "agreement.csv"
        pd.DataFrame([a.__dict__ for a in agreement]).to_csv(path, index=False)
        files.append(path)
    return StatsRun(which, out, tuple(files), headline)

"""``stats``: the paper's statistics on a score table, and the analysis a reviewer asks for.

Stage 1 (RM scores, families compared: ``analyses.stats.stage1``): the paper's numbers (cells,
mixed model with containment df, Welch panel tests with the paper's Bonferroni stars) beside the
model-level tests (exact permutation over assignments of models to families, cluster bootstrap,
random-slopes mixed model), the random-axis control, the specification curve and the power of the
model-level test. Stage 2 (LM log-probs, models compared: ``analyses.stats.stage2``) with partial
eta squared and post-hoc d with CIs. Cross-model rank agreement when the table holds two or more
models. Every test is listed in ``tests.csv`` / ``summary.json["tests"]`` (name, unit, n, effect
with CI, p, correction, family of tests); every summary carries provenance.
"""

from __future__ import annotations

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
    in_run_folder,
    write_json,
    write_table,
)
from analyses.runs.options import key_value_pairs, option
from analyses.stats.agreement import cross_model_agreement
from analyses.stats.coding import MFD_CODINGS, code_lexicon
from analyses.stats.contrast import CategoryPair
from analyses.stats.corrections import format_p
from analyses.stats.ranking import categorised_scores
from analyses.stats.register import stage1_rows, stage2_rows
from analyses.stats.stage1 import Stage1Result, records, stage1
from analyses.stats.stage2 import Stage2Result, stage2
from interp.errors import UserError
from interp.progress import NoProgress, Progress
from interp.provenance import provenance

parse_reference = key_value_pairs("--reference", "FACTOR=LEVEL, e.g. category=Communion")


@dataclass(frozen=True, kw_only=True)
class StatsSettings(Resampling, TextInputs, Overwrite):
    """Which table, which lexicon and coding, which stage, the reviewer's analyses, where to write."""

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
    permutations: int | None = option(
        None, "--permutations", kind="int", low=1, show_default=False,
        help="Permutation draws of the prompt-level tests [default: 2000 x the number of panels, "
        "so the Bonferroni-corrected floor is below 0.001].",
    )  # fmt: skip
    mfd_coding: str | None = option(
        None, "--mfd-coding", kind="choice", choices=MFD_CODINGS, show_default=False,
        help="Moral Foundations coding: paper (the authors': 5 foundations, virtue+vice pooled, "
        "Sanctity_Vice left out), foundation (5, all pooled) or virtue-vice (10).",
    )  # fmt: skip
    no_pronouns: bool = option(
        False, "--no-pronouns", kind="flag", help="Drop the Big Two pronoun entries."
    )
    reference_family: str | None = option(
        None,
        "--reference-family",
        help="Family subtracted in differences (default: first by name).",
    )
    reference: tuple[tuple[str, str], ...] = option(
        (), "--reference", multiple=True, parse=parse_reference, metavar="FACTOR=LEVEL",
        help="Reference level of the mixed models (family, category, framing; repeatable) "
        "[default: R's: alphabetical, framing positive].",
    )  # fmt: skip
    models: tuple[str, ...] = option(
        (), "--model", multiple=True, help="Keep only these models (repeatable)."
    )
    gap: CategoryPair | None = option(
        None, "--gap", metavar="A,B", parse=CategoryPair.parse, show_default=False,
        help="The pair for the random-axis control and specification curve "
        "[default: Agency,Communion, else the first two categories].",
    )  # fmt: skip
    control_lexicons: tuple[str, ...] = option(
        (), "--control-lexicon", multiple=True,
        help="Other value axes for the random-axis control (lexicon name or file; repeatable).",
    )  # fmt: skip
    spec_lexicons: tuple[str, ...] = option(
        (), "--spec-lexicon", multiple=True,
        help="Further word lists for the specification curve (lexicon name or file; repeatable).",
    )  # fmt: skip
    random_splits: int = option(
        1000, "--random-splits", kind="int", low=10, help="Random word splits of the control."
    )
    power_models: int = option(
        5, "--power-models", kind="int", low=2, help="Models per family of the planned design."
    )
    power_sims: int = option(
        400, "--power-sims", kind="int", low=50, help="Simulated data sets per effect size."
    )
    no_robustness: bool = option(
        False, "--no-robustness", kind="flag",
        help="Skip the random-axis control and power (Stage 1) and the specification curve.",
    )  # fmt: skip
    no_figures: bool = option(False, "--no-figures", kind="flag", help="Write no figures.")
    drop_nonfinite: bool = option(
        False, "--drop-nonfinite", kind="flag",
        help="Leave out NaN/infinite scores (counted in the summary) instead of refusing the table.",
    )  # fmt: skip

    def validate(self) -> None:
        super().validate()
        factors = [k for k, _ in self.reference]
        if len(set(factors)) != len(factors):
            raise UserError("--reference: one level per factor")


@dataclass(frozen=True)
class StatsRun(RunResult):
    stage: int = 1
    lines: str = ""

    def headline(self) -> str:
        return f"stage {self.stage}: wrote {len(self.files)} files to {self.out}\n{self.lines}"


def _csv(rows, path: Path) -> Path:
    """A list of result records, or a table, as an atomic CSV."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([asdict(r) for r in rows])
    return write_table(frame, path)


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


def write_stage1(result: Stage1Result, out: Path, extra: dict | None = None) -> list[Path]:
    """``summary.json`` (with ``extra`` sections) plus ``cells.csv``, ``differences.csv``,
    ``mixed_model.csv``, ``mixed_model_random_slopes.csv``, ``panels.csv``, ``median_ranks.csv``
    and ``tests.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary() | dict(extra or {})
    paths = [write_json(summary, out / "summary.json")]
    paths.append(_csv(result.cells, out / "cells.csv"))
    paths.append(_csv(result.differences, out / "differences.csv"))
    if result.mixed_model is not None:
        paths.append(_csv(result.mixed_model.terms, out / "mixed_model.csv"))
    if result.random_slopes is not None:
        paths.append(_csv(result.random_slopes.terms, out / "mixed_model_random_slopes.csv"))
    paths.append(_csv(result.panels, out / "panels.csv"))
    paths.append(_csv(result.median_ranks, out / "median_ranks.csv"))
    if "tests" in summary:
        paths.append(_csv(pd.DataFrame(summary["tests"]), out / "tests.csv"))
    return paths


def write_stage2(result: Stage2Result, out: Path, extra: dict | None = None) -> list[Path]:
    """``summary.json`` (with the test register and ``extra`` sections) plus ``anova.csv``,
    ``posthoc.csv``, ``median_ranks.csv`` and ``tests.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    tests = stage2_rows(result)
    return [
        write_json(result.summary() | dict(extra or {}) | {"tests": tests}, out / "summary.json"),
        _csv(result.anova, out / "anova.csv"),
        _csv(result.posthoc, out / "posthoc.csv"),
        _csv(result.median_ranks, out / "median_ranks.csv"),
        _csv(pd.DataFrame(tests), out / "tests.csv"),
    ]


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


def pick_pair(categories: tuple[str, ...], given: CategoryPair | None) -> CategoryPair:
    """``--gap`` when given (must be analysed categories), else Agency/Communion, else the first two."""
    if given is not None:
        missing = [c for c in given if c not in categories]
        if missing:
            raise UserError(f"--gap {given.label}: no category {', '.join(missing)} "
                            f"(analysed: {', '.join(categories)})")  # fmt: skip
        return given
    if {"Agency", "Communion"} <= set(categories):
        return CategoryPair("Agency", "Communion")
    if len(categories) < 2:
        raise UserError("the random-axis control needs two categories")
    return CategoryPair(categories[0], categories[1])


def _stage1_lines(res: Stage1Result) -> str:
    lines = [f"panels ({res.families[1]} - {res.families[0]}, mean median rank; lower = "
             "preferred): paper's view = prompt-level Welch p, Bonferroni, stars; model level "
             "= exact permutation over assignments of models to families"]  # fmt: skip
    for p in res.panels:
        lines.append(
            f"  {p.framing}/{p.category}: {p.diff:+.2f}, d={p.d:+.2f} | paper: p_bonf="
            f"{format_p(p.p_bonferroni)} {p.stars} | model level ({p.n_models_a}+{p.n_models_b}"
            f" models): p={format_p(p.p_model_level)}, p_bonf={format_p(p.p_model_level_bonferroni)}"
        )
    notes = {p.model_level_note for p in res.panels if p.model_level_note}
    lines += [f"  note: {n}" for n in sorted(notes)]
    return "\n".join(lines)


def _reviewer(s: StatsSettings, table, res: Stage1Result, coding, progress) -> tuple[dict, list]:
    """Random-axis control, specification curve and power: summary sections and figure inputs."""
    from analyses.stats.contrast import category_words
    from analyses.stats.panels import panel_order
    from analyses.stats.power import power_table
    from analyses.stats.random_axis import axis_effects, random_split_null, rank_matrix
    from analyses.stats.specification import specification_curve

    categories = tuple(c for c in coding.lexicon.category_names
                       if c in set(res.median_ranks["category"]))  # fmt: skip
    pair = pick_pair(categories, s.gap)
    progress.note(f"random-axis control ({s.random_splits} splits of {pair.label})")
    words = category_words(res.ranked[["response", "category"]], pair)
    ra, nulls = random_split_null(rank_matrix(res.ranked), (words.first, words.second), pair,
                                  res.families, s.random_splits, s.seed, s.bootstrap)  # fmt: skip
    axes = axis_effects(coding.lexicon.name, res.ranked, res.families, nulls, pair,
                        order=coding.lexicon.category_names)  # fmt: skip
    notes = []
    for name in s.control_lexicons:
        other = load_lexicon(name, progress=progress)
        try:
            found = axis_effects(other.name, categorised_scores(table, other), res.families,
                                 nulls, order=other.category_names)  # fmt: skip
            if not found:
                notes.append(f"control lexicon {other.name}: no pair of its categories has 5 "
                             "scored words each")  # fmt: skip
        except UserError as err:
            found = []
            notes.append(f"control lexicon {other.name}: {err}")
        axes += found
    progress.note("specification curve")
    spec_lex = [(coding.lexicon.name, coding.lexicon)]
    spec_lex += [(str(n), load_lexicon(n, progress=progress)) for n in s.spec_lexicons]
    spec, skipped = specification_curve(table, spec_lex, pair, res.families, s.bootstrap, s.seed)
    progress.note("power of the model-level test")
    power = power_table(res.median_ranks, res.families, panel_order(res.median_ranks, categories),
                        s.power_models, n_sims=s.power_sims, seed=s.seed)  # fmt: skip
    sections = {
        "pair": pair.label,
        "random_axis": records(ra),
        "value_axes": records(axes),
        "specification": spec.to_dict("records"),
        "specification_skipped": skipped,
        "power": records(power),
        "robustness_notes": notes,
    }
    return sections, [ra, nulls, axes, spec, power, pair]


def _run_stage1(s: StatsSettings, table, lex, prov, out: Path, progress) -> tuple[list, str]:
    from analyses.figures import robustness as rfigs
    from analyses.figures import stats as figs

    coding = code_lexicon(lex, s.mfd_coding)
    res = stage1(table, lex, s.permutations, s.bootstrap, s.seed, s.reference_family,
                 provenance=prov, coding=coding, reference=dict(s.reference))  # fmt: skip
    extra, parts = ({}, None) if s.no_robustness else _reviewer(s, table, res, coding, progress)
    extra["tests"] = stage1_rows(res, parts[0] if parts else ())
    files = write_stage1(res, out, extra)
    if parts:
        ra, nulls, axes, spec, power, pair = parts
        files += [_csv(ra, out / "random_axis.csv"), _csv(axes, out / "value_axes.csv"),
                  _csv(spec, out / "specification.csv"), _csv(power, out / "power.csv")]  # fmt: skip
    if not s.no_figures:
        files += figs.median_rank_violins(
            res.median_ranks, res.panels, out / "median_rank_violins",
            families=res.families, categories=coding.lexicon.category_names,
        )  # fmt: skip
        if parts:
            files += rfigs.specification_figure(spec, out / "specification_curve", pair)
            files += rfigs.random_axis_figure(ra, nulls, axes, out / "random_axis")
    return files, _stage1_lines(res)


def _run_stage2(s: StatsSettings, table, lex, prov, out: Path) -> tuple[list, Stage2Result]:
    """Stage 2, and the specification curve of each model's category gap (unless
    ``--no-robustness``): does the base models' preference depend on the word list?"""
    from analyses.figures import robustness as rfigs
    from analyses.figures import stats as figs
    from analyses.stats.specification import specification_curve

    res = stage2(table, lex, provenance=prov, n_bootstrap=s.bootstrap, seed=s.seed)
    extra, spec = {}, None
    if not s.no_robustness:
        pair = pick_pair(lex.category_names, s.gap)
        spec_lex = [(lex.name, lex)]
        spec_lex += [(str(n), load_lexicon(n)) for n in s.spec_lexicons]
        spec, skipped = specification_curve(table, spec_lex, pair, None, s.bootstrap, s.seed)
        extra = {"pair": pair.label, "specification": spec.to_dict("records"),
                 "specification_skipped": skipped}  # fmt: skip
    files = write_stage2(res, out, extra)
    if spec is not None:
        files.append(_csv(spec, out / "specification.csv"))
    if not s.no_figures:
        files += figs.split_violins(res.median_ranks, out / "split_violins", models=res.models)
        if spec is not None:
            files += rfigs.specification_figure(spec, out / "specification_curve", pair)
    return files, res


def run_stats(settings: StatsSettings, *, progress: Progress | None = None) -> StatsRun:
    """The paper's statistics on a score table, with the model-level tests and robustness checks."""
    progress = progress or NoProgress()
    return in_run_folder(
        settings.out, settings.overwrite, lambda work: _stats(settings, work, progress)
    )


def _stats(s: StatsSettings, out: Path, progress: Progress) -> StatsRun:
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
    if which == 2 and s.mfd_coding:
        raise UserError("--mfd-coding applies to Stage 1 (reward models)")
    inputs = [Path(s.scores)] + ([Path(s.lexicon)] if Path(s.lexicon).is_file() else [])
    prov = provenance(
        inputs=inputs, lexicon=lex, seed=s.seed, stage=which, n_permutations=s.permutations,
        n_bootstrap=s.bootstrap, drop_pronouns=s.no_pronouns, mfd_coding=s.mfd_coding,
        reference=dict(s.reference), nonfinite_scores=finite,
        scores_provenance=read_provenance(s.scores),
    )  # fmt: skip
    progress.note(f"stage {which} on {table['model'].nunique()} model(s), lexicon {lex.name}")
    if which == 1:
        files, lines = _run_stage1(s, table, lex, prov, out, progress)
    else:
        files, res2 = _run_stage2(s, table, lex, prov, out)
        terms = "; ".join(
            f"{a.term}: F={a.F:.2f}, p={format_p(a.p)}, partial eta2={a.partial_eta_sq:.3f}"
            for a in res2.anova if a.term != "Residual"
        )  # fmt: skip
        lines = f"ANOVA (type II) {terms}"
    if finite["n_nonfinite"]:
        lines += f"\ndropped {finite['n_nonfinite']} NaN/infinite score(s) (--drop-nonfinite)"
    if table["model"].nunique() >= 2:
        agreement = cross_model_agreement(table)
        files.append(_csv(agreement, out / "agreement.csv"))
    return StatsRun(out, tuple(files), prov, stage=which, lines=lines)

"""``import-scores``: the paper's released wide CSVs (``big2_rewards_<model>.csv``) into one score table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analyses.inputs.paper_scores import import_paper_scores
from analyses.inputs.score_table import SCORE_FORMATS, write_score_table
from analyses.runs.common import TextInputs, TextRun, output_file
from analyses.runs.options import option
from interp.errors import UserError
from interp.progress import Progress
from interp.provenance import provenance


def parse_family_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["MODEL=FAMILY", ...]`` -> mapping; ``UserError`` on a malformed item."""
    out = {}
    for item in items:
        model, sep, family = item.partition("=")
        if not sep or not model.strip() or not family.strip():
            raise UserError(f"--family {item!r}: expected MODEL=FAMILY")
        out[model.strip()] = family.strip()
    return out


@dataclass(frozen=True, kw_only=True)
class ImportScoresSettings(TextInputs):
    files: tuple[Path, ...] = option(
        (), "FILES", argument=True, nargs=-1, kind="path", required=True
    )
    out: Path = option(Path("scores.parquet"), "--out", kind="path", required=True,
                       help="Score table to write (.parquet, or .csv).")  # fmt: skip
    family: tuple[str, ...] = option((), "--family", multiple=True, metavar="MODEL=FAMILY",
                                     help="Override the base family of a model (repeatable).")  # fmt: skip


def run_import_scores(
    settings: ImportScoresSettings, *, progress: Progress | None = None
) -> TextRun:
    """Convert the paper's wide score CSVs (big2_rewards_<model>.csv) into a score table."""
    overrides = parse_family_overrides(settings.family)
    with output_file(settings.out, SCORE_FORMATS):
        table = import_paper_scores(settings.files, overrides, encoding=settings.encoding)
        prov = provenance(
            inputs=settings.files, family_overrides=overrides, converted_from="paper wide CSV"
        )
        path = write_score_table(table, settings.out, prov)
    fams = table.groupby("family")["model"].nunique().to_dict()
    text = (
        f"wrote {path}: {len(table)} rows, {table['model'].nunique()} models "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(fams.items()))}), "
        f"{table['prompt_key'].nunique()} prompts, {table['response'].nunique()} responses"
    )
    return TextRun(path, (path,), prov, text=text)

"""``compare-probes``: per-layer direction cosines, transfer and score-head alignment of two probe folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from analyses.runs.common import Overwrite, RunResult, write_json, write_table
from analyses.runs.options import option
from interp.atomic import RunFolder
from interp.progress import Progress
from probes.compare import compare_probe_dirs


@dataclass(frozen=True, kw_only=True)
class CompareProbesSettings(Overwrite):
    dir_a: Path = option(Path(), "DIR_A", argument=True, kind="path", required=True)
    dir_b: Path = option(Path(), "DIR_B", argument=True, kind="path", required=True)
    out: Path | None = option(None, "--out", kind="path", help="Output folder [DIR_B/compare_with_A].",
                              show_default=False)  # fmt: skip
    acts_a: Path | None = option(
        None, "--acts-a", kind="path", help="Moved store of A.", show_default=False
    )
    acts_b: Path | None = option(
        None, "--acts-b", kind="path", help="Moved store of B.", show_default=False
    )
    no_figures: bool = option(False, "--no-figures", kind="flag", help="Write no figures.")


@dataclass(frozen=True)
class CompareRun(RunResult):
    summary: dict = field(default_factory=dict)

    def headline(self) -> str:
        lines = [f"A = {self.summary['a']}", f"B = {self.summary['b']}"]
        for entry in self.summary["per_method"]:
            text = (
                f"{entry['kind']} {entry['method']}: mean cosine {entry['mean_cosine']:.3f} "
                f"(max at layer {entry['max_cosine_layer']})"
            )
            if "best_transfer_a_on_b_auroc" in entry:
                text += (
                    f"; best transfer A->B AUROC {entry['best_transfer_a_on_b_auroc']:.3f} "
                    f"at layer {entry['best_transfer_a_on_b_auroc_layer']}"
                )
            for side in ("a", "b"):
                if f"best_head_cosine_{side}" in entry:
                    text += (
                        f"; |cos| with {side.upper()}'s score head peaks at layer "
                        f"{entry[f'best_head_cosine_{side}_layer']} "
                        f"({entry[f'best_head_cosine_{side}']:+.3f})"
                    )
            lines.append(text)
        lines += [f"note: {n}" for n in self.summary["notes"]]
        lines.append(f"wrote {len(self.files)} files to {self.out}")
        return "\n".join(lines)


def run_compare_probes(
    settings: CompareProbesSettings, *, progress: Progress | None = None
) -> CompareRun:
    """Per-layer direction cosines, transfer accuracy and RM score-head alignment of A and B.

    Writes ``compare.parquet``, ``compare.json`` and ``compare_curves`` into ``out`` (default
    ``<dir_b>/compare_with_<name of dir_a>``)."""
    from analyses.figures.probes import comparison_curves

    s = settings
    target = Path(s.out) if s.out else Path(s.dir_b) / f"compare_with_{Path(s.dir_a).name}"
    with RunFolder(target, overwrite=s.overwrite) as folder:
        comparison = compare_probe_dirs(s.dir_a, s.dir_b, s.acts_a, s.acts_b)
        out = folder.work
        summary = comparison.summary()
        files = [
            write_table(comparison.table, out / "compare.parquet"),
            write_json(summary, out / "compare.json"),
        ]
        if not s.no_figures:
            title = f"A: {Path(s.dir_a).name}  vs  B: {Path(s.dir_b).name}"
            files += comparison_curves(comparison.table, out / "compare_curves", title)
    return CompareRun(folder.out, tuple(map(folder.final, files)), summary=summary)

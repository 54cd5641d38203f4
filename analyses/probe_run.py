"""``train-probes`` and ``compare-probes`` end to end: fit, save, plot, summarise."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from activations.store import ActivationStore
from analyses.probe_plots import comparison_curves, embedding_plot, layer_curves
from interp.errors import UserError
from interp.progress import Progress
from probes.compare import compare_probe_dirs
from probes.io import save_probe_dir
from probes.layerwise import ProbeResults, ProbeSettings, fit_layer_probes, select_items


@dataclass(frozen=True)
class ProbeRun:
    """What ``train-probes`` wrote, and a short headline."""

    out_dir: Path
    files: tuple[Path, ...]
    results: ProbeResults

    def headline(self) -> str:
        first, second = self.results.settings.classes
        data = self.results.data_summary
        lines = [
            f"{first} vs {second}: {data['n_items']} items, {data['n_words']} words "
            f"({', '.join(f'{k} {v}' for k, v in data['words_per_class'].items())})"
        ]
        for best in self.results.best():
            lines.append(
                f"best {best['kind']} layer ({best['method']}): {best['best_layer']}  "
                f"AUROC {best['auroc']:.3f} [{best['auroc_ci'][0]:.3f}, {best['auroc_ci'][1]:.3f}]"
                f"  control {best['control_auroc']:.3f}  selectivity "
                f"{best['selectivity_auroc']:+.3f}"
            )
        return "\n".join(lines)


def parse_classes(text: str) -> tuple[str, str]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if len(parts) != 2:
        raise UserError(f"--classes {text!r}: give exactly two classes, e.g. Agency,Communion")
    return parts  # type: ignore[return-value]


def parse_methods(text: str) -> tuple[str, ...]:
    if text == "both":
        return ("logistic", "diffmean")
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _embedding_site(results: ProbeResults, layer: int | None, kind: str | None) -> str:
    table = results.table()
    kinds = list(dict.fromkeys(table["kind"]))
    kind = kind or ("resid_post" if "resid_post" in kinds else kinds[0])
    if layer is None:
        best = [b for b in results.best() if b["kind"] == kind]
        return best[0]["site"]
    match = table[(table["kind"] == kind) & (table["layer"] == layer)]
    if match.empty:
        raise UserError(f"--embed-layer {layer}: no {kind} site at that layer in the store")
    return str(match["site"].iloc[0])


def train_probes(
    acts: str | Path,
    out: str | Path,
    target: str = "category",
    classes: tuple[str, str] = ("Agency", "Communion"),
    methods: tuple[str, ...] = ("logistic", "diffmean"),
    folds: int = 5,
    C: float = 1.0,
    n_bootstrap: int = 1000,
    n_controls: int = 1,
    seed: int = 0,
    embed_layer: int | None = None,
    embed_kind: str | None = None,
    figures: bool = True,
    allow_incomplete: bool = False,
    progress: Progress | None = None,
) -> ProbeRun:
    """Fit layerwise probes on a store and write ``probes.parquet``, ``summary.json``,
    ``directions.npz`` and (``figures``) ``layer_curves`` and ``embedding_<site>`` plots."""
    settings = ProbeSettings(
        target=target,
        classes=tuple(classes),
        methods=tuple(methods),
        folds=folds,
        C=C,
        n_bootstrap=n_bootstrap,
        n_controls=n_controls,
        seed=seed,
    )
    out = Path(out)
    with ActivationStore(acts, require_complete=not allow_incomplete) as store:
        results = fit_layer_probes(store, settings, progress=progress)
        save_probe_dir(results, out)
        files = [out / "probes.parquet", out / "summary.json", out / "directions.npz"]
        if figures:
            model = store.manifest["model"]["model"]
            title = (
                f"{model} ({store.manifest['model']['kind']}): {classes[0]} vs {classes[1]}, "
                f"positions={store.positions}, {results.data_summary['n_words']} words"
            )
            files += layer_curves(results.table(), out / "layer_curves", title)
            site = _embedding_site(results, embed_layer, embed_kind)
            data = select_items(store, settings)
            labels = store.labels(target)[data.rows]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # umap: "n_jobs overridden by random_state"
                files += embedding_plot(
                    store.load(site, data.rows),
                    labels,
                    out / f"embedding_{site.replace('.', '_')}",
                    f"{model} {site}",
                    seed=seed,
                )
    return ProbeRun(out, tuple(files), results)


@dataclass(frozen=True)
class CompareRun:
    out_dir: Path
    files: tuple[Path, ...]
    summary: dict

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
        return "\n".join(lines)


def compare_probes(
    dir_a: str | Path,
    dir_b: str | Path,
    out: str | Path | None = None,
    acts_a: str | Path | None = None,
    acts_b: str | Path | None = None,
    figures: bool = True,
) -> CompareRun:
    """Compare two probe directories; writes ``compare.parquet``, ``compare.json`` and
    ``compare_curves`` into ``out`` (default ``<dir_b>/compare_with_<name of dir_a>``)."""
    comparison = compare_probe_dirs(dir_a, dir_b, acts_a, acts_b)
    out = Path(out) if out else Path(dir_b) / f"compare_with_{Path(dir_a).name}"
    out.mkdir(parents=True, exist_ok=True)
    comparison.table.to_parquet(out / "compare.parquet", index=False)
    summary = comparison.summary()
    (out / "compare.json").write_text(json.dumps(summary, indent=1))
    files = [out / "compare.parquet", out / "compare.json"]
    if figures:
        title = f"A: {Path(dir_a).name}  vs  B: {Path(dir_b).name}"
        files += comparison_curves(comparison.table, out / "compare_curves", title)
    return CompareRun(out, tuple(files), summary)

"""``train-probes``: one linear probe per (site, layer) of an activation store, saved and plotted.

Writes ``probes.parquet``, ``summary.json``, ``directions.npz`` (``probes.io``) and, unless asked
not to, ``layer_curves`` and ``embedding_<site>`` figures.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from activations.store import ActivationStore
from analyses.runs.common import Overwrite, RunResult, in_run_folder
from analyses.runs.options import option
from analyses.stats.contrast import CategoryPair
from interp.errors import UserError
from interp.progress import Progress
from probes.fit import METHODS
from probes.io import save_probe_dir
from probes.layerwise import ProbeResults, ProbeSettings, fit_layer_probes, select_items


def parse_methods(text: str) -> tuple[str, ...]:
    """``both`` -> every method; otherwise a comma-separated list."""
    if text == "both":
        return METHODS
    return tuple(p.strip() for p in text.split(",") if p.strip())


@dataclass(frozen=True, kw_only=True)
class TrainProbesSettings(Overwrite):
    """The store, what to predict, the probe methods and their uncertainty settings."""

    acts: Path = option(Path(), "--acts", kind="path", required=True, help="Activation store.")
    out: Path = option(
        Path("probes-out"), "--out", kind="path", required=True, help="Output folder."
    )
    target: str = option("category", "--target", help="Item column to predict.")
    classes: CategoryPair = option(
        CategoryPair("Agency", "Communion"), "--classes", metavar="CLASS1,CLASS0",
        parse=lambda t: CategoryPair.parse(t, "--classes"), show_default=False,
        help="Class 1,class 0: directions point from class 0 to class 1. [default: Agency,Communion]",
    )  # fmt: skip
    method: tuple[str, ...] = option(
        METHODS, "--method", parse=parse_methods, metavar="logistic|diffmean|both",
        help="Probe methods. [default: both]", show_default=False,
    )  # fmt: skip
    folds: int = option(5, "--folds", kind="int", low=2, help="Word-grouped CV folds.")
    C: float = option(1.0, "--C", kind="float", above=0, help="Inverse L2 strength (> 0).")
    bootstrap: int = option(1000, "--bootstrap", kind="int", low=1, help="Word resamples.")
    controls: int = option(1, "--controls", kind="int", low=1, help="Shuffled-label runs.")
    seed: int = option(
        0, "--seed", kind="int", low=0, help="Seed of folds, bootstrap and controls."
    )
    embed_layer: int | None = option(None, "--embed-layer", kind="int", low=0,
                                     help="Layer for the UMAP/PCA plot [best].")  # fmt: skip
    embed_kind: str | None = None
    allow_incomplete: bool = option(False, "--allow-incomplete", kind="flag",
                                    help="Probe the done items of a partial store.")  # fmt: skip
    no_figures: bool = option(False, "--no-figures", kind="flag", help="Write no figures.")

    def validate(self) -> None:
        super().validate()
        unknown = [m for m in self.method if m not in METHODS]
        if unknown or not self.method:
            raise UserError(f"--method {','.join(self.method)}: use {', '.join(METHODS)} or both")

    def probe_settings(self) -> ProbeSettings:
        return ProbeSettings(
            target=self.target, classes=(self.classes.first, self.classes.second),
            methods=tuple(self.method), folds=self.folds, C=self.C, n_bootstrap=self.bootstrap,
            n_controls=self.controls, seed=self.seed,
        )  # fmt: skip


@dataclass(frozen=True)
class ProbeRun(RunResult):
    """What ``train-probes`` wrote, and a short headline."""

    results: ProbeResults | None = None

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
        lines.append(f"wrote {len(self.files)} files to {self.out}")
        return "\n".join(lines)


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


def run_train_probes(
    settings: TrainProbesSettings, *, progress: Progress | None = None
) -> ProbeRun:
    """Fit one probe per (site, layer) with word-grouped CV, bootstrap CIs and a control."""
    return in_run_folder(
        settings.out, settings.overwrite, lambda work: _train_probes(settings, work, progress)
    )


def _train_probes(s: TrainProbesSettings, out: Path, progress: Progress | None) -> ProbeRun:
    from analyses.figures.probes import embedding_plot, layer_curves

    probe_settings = s.probe_settings()
    with ActivationStore(s.acts, require_complete=not s.allow_incomplete) as store:
        results = fit_layer_probes(store, probe_settings, progress=progress)
        save_probe_dir(results, out)
        files = [out / "probes.parquet", out / "summary.json", out / "directions.npz"]
        if not s.no_figures:
            model = store.manifest["model"]["model"]
            title = (
                f"{model} ({store.manifest['model']['kind']}): {s.classes.first} vs "
                f"{s.classes.second}, positions={store.positions}, "
                f"{results.data_summary['n_words']} words"
            )
            files += layer_curves(results.table(), out / "layer_curves", title)
            site = _embedding_site(results, s.embed_layer, s.embed_kind)
            data = select_items(store, probe_settings)
            labels = store.labels(s.target)[data.rows]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # umap: "n_jobs overridden by random_state"
                files += embedding_plot(
                    store.load(site, data.rows), labels,
                    out / f"embedding_{site.replace('.', '_')}", f"{model} {site}", seed=s.seed,
                )  # fmt: skip
    return ProbeRun(out, tuple(files), {"store": str(s.acts)}, results=results)

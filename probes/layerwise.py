"""One probe per (site, layer, method) over an activation store, with controls and uncertainty.

For each stored site: out-of-fold scores from word-grouped cross-validation give accuracy and
AUROC with word-bootstrap intervals; a shuffled-label control (labels permuted over the unit on
which they are constant, normally the word, as in Hewitt & Liang's control tasks) run through the
same pipeline gives the chance baseline; selectivity = real - control. The final probe is fitted
on all selected items; its unit direction is what gets saved and compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from activations.store import ActivationStore
from interp.errors import UserError
from interp.evidence import Estimate
from interp.progress import NoProgress, Progress
from probes.fit import METHODS, LinearProbe, cross_val_scores, fit_probe, n_folds
from probes.metrics import score_with_ci


@dataclass(frozen=True)
class ProbeSettings:
    """``classes``: (class 1, class 0): directions point from the second to the first."""

    target: str = "category"
    classes: tuple[str, str] = ("Agency", "Communion")
    methods: tuple[str, ...] = METHODS
    folds: int = 5
    C: float = 1.0
    n_bootstrap: int = 1000
    n_controls: int = 1
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.classes) != 2 or self.classes[0] == self.classes[1]:
            raise UserError("--classes takes two different class names, e.g. Agency,Communion")
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise UserError(f"--method: unknown {bad}; use logistic, diffmean or both")


@dataclass(frozen=True)
class ProbeData:
    """The selected items: ``rows`` into the store, binary ``y``, word ``groups``, and the
    unit the labels are constant on (``word``, ``prompt`` or ``item``) for the control."""

    rows: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    prompts: np.ndarray
    label_unit: str
    n_excluded: int

    @property
    def n_words(self) -> int:
        return len(np.unique(self.groups))

    def words_per_class(self) -> tuple[int, int]:
        return (
            len(np.unique(self.groups[self.y == 1])),
            len(np.unique(self.groups[self.y == 0])),
        )


@dataclass(frozen=True)
class LayerProbeResult:
    """One (site, layer, method): real and control scores, sample sizes, the final probe."""

    site: str
    kind: str
    layer: int
    method: str
    n_items: int
    n_words: int
    words_per_class: tuple[int, int]
    folds: int
    accuracy: Estimate
    auroc: Estimate
    control_accuracy: Estimate
    control_auroc: Estimate
    probe: LinearProbe

    @property
    def selectivity_accuracy(self) -> float:
        return self.accuracy.value - self.control_accuracy.value

    @property
    def selectivity_auroc(self) -> float:
        return self.auroc.value - self.control_auroc.value

    def row(self) -> dict:
        out = {
            "site": self.site,
            "kind": self.kind,
            "layer": self.layer,
            "method": self.method,
            "n_items": self.n_items,
            "n_words": self.n_words,
            "n_words_class1": self.words_per_class[0],
            "n_words_class0": self.words_per_class[1],
            "folds": self.folds,
        }
        for name, est in (
            ("accuracy", self.accuracy),
            ("auroc", self.auroc),
            ("control_accuracy", self.control_accuracy),
            ("control_auroc", self.control_auroc),
        ):
            out[name] = est.value
            out[f"{name}_low"] = est.low
            out[f"{name}_high"] = est.high
        out["selectivity_accuracy"] = self.selectivity_accuracy
        out["selectivity_auroc"] = self.selectivity_auroc
        out["weight_norm"] = float(np.linalg.norm(self.probe.weight))
        return out


@dataclass(frozen=True)
class ProbeResults:
    """Every layer's result plus what was probed (store path and manifest, settings)."""

    settings: ProbeSettings
    store_path: str
    store_manifest: dict
    data_summary: dict
    results: tuple[LayerProbeResult, ...]
    score_head: dict | None

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([r.row() for r in self.results])

    def best(self) -> list[dict]:
        """Per (site kind, method): the layer with the highest cross-validated AUROC."""
        table = self.table()
        out = []
        for (kind, method), part in table.groupby(["kind", "method"], sort=False):
            top = part.loc[part["auroc"].idxmax()]
            out.append(
                {
                    "kind": kind,
                    "method": method,
                    "best_layer": int(top["layer"]),
                    "site": top["site"],
                    "auroc": float(top["auroc"]),
                    "auroc_ci": [float(top["auroc_low"]), float(top["auroc_high"])],
                    "accuracy": float(top["accuracy"]),
                    "accuracy_ci": [float(top["accuracy_low"]), float(top["accuracy_high"])],
                    "control_auroc": float(top["control_auroc"]),
                    "selectivity_auroc": float(top["selectivity_auroc"]),
                }
            )
        return out


def _label_column(store: ActivationStore, target: str) -> np.ndarray:
    if target == "framing":
        framing = store.prompts()["framing"].to_numpy(dtype=object)
        return framing[store.column("prompt_index")]
    columns = ("category", "response", "prompt_key", "group")
    if target not in columns:
        raise UserError(f"--target {target!r}: use one of {', '.join(columns)} or framing")
    return store.labels(target)


def _constant_within(labels: np.ndarray, units: np.ndarray) -> bool:
    frame = pd.DataFrame({"u": units, "l": labels})
    return bool((frame.groupby("u")["l"].nunique() <= 1).all())


def select_items(store: ActivationStore, settings: ProbeSettings) -> ProbeData:
    """Done items labelled exactly one of the two classes (multi-category words excluded)."""
    if store.positions == "all":
        raise UserError(
            f"{store.path} stores every token (positions=all); probes need one row per item: "
            "cache with --positions last, response-last or response-mean"
        )
    labels = _label_column(store, settings.target)
    done = store.done
    first, second = settings.classes
    present = sorted(set(labels[done]))
    missing = [c for c in settings.classes if c not in present]
    if missing:
        raise UserError(
            f"class {', '.join(missing)} not found in {settings.target!r} of {store.path}; "
            f"values present: {', '.join(map(repr, present[:12]))}"
        )
    keep = done & np.isin(labels, [first, second])
    rows = np.flatnonzero(keep)
    y = (labels[rows] == first).astype(int)
    groups = store.groups()[rows]
    prompts = store.column("prompt_index")[rows]
    if _constant_within(y, groups):
        unit = "word"
    elif _constant_within(y, prompts):
        unit = "prompt"
    else:
        unit = "item"
    n_excluded = int(done.sum() - len(rows))
    return ProbeData(rows, y, groups, prompts, unit, n_excluded)


def shuffled_labels(data: ProbeData, rng: np.random.Generator) -> np.ndarray:
    """Labels permuted over the unit they are constant on (word, prompt), else over items."""
    if data.label_unit == "item":
        return rng.permutation(data.y)
    units = data.groups if data.label_unit == "word" else data.prompts
    names, index = np.unique(units, return_inverse=True)
    unit_label = np.zeros(len(names), dtype=int)
    unit_label[index] = data.y
    return rng.permutation(unit_label)[index]


def probe_site(
    X: np.ndarray, data: ProbeData, site: str, kind: str, layer: int, settings: ProbeSettings
) -> list[LayerProbeResult]:
    """All methods on one site's activations ``X`` ``[n_selected, d]``."""
    folds = n_folds(data.y, data.groups, settings.folds)
    out = []
    for m_index, method in enumerate(settings.methods):
        scores = cross_val_scores(X, data.y, data.groups, method, folds, settings.seed, settings.C)
        real = score_with_ci(
            scores, data.y, data.groups, settings.n_bootstrap, settings.level, settings.seed
        )
        control_acc, control_auc = [], []
        for k in range(max(1, settings.n_controls)):
            rng = np.random.default_rng([settings.seed, 7919, k])
            y_shuffled = shuffled_labels(data, rng)
            c_scores = cross_val_scores(
                X, y_shuffled, data.groups, method, folds, settings.seed + 1 + k, settings.C
            )
            c = score_with_ci(
                c_scores,
                y_shuffled,
                data.groups,
                settings.n_bootstrap,
                settings.level,
                settings.seed + 100 + m_index,
            )
            control_acc.append(c.accuracy)
            control_auc.append(c.auroc)
        out.append(
            LayerProbeResult(
                site=site,
                kind=kind,
                layer=layer,
                method=method,
                n_items=len(data.y),
                n_words=data.n_words,
                words_per_class=data.words_per_class(),
                folds=folds,
                accuracy=real.accuracy,
                auroc=real.auroc,
                control_accuracy=_mean_estimate(control_acc),
                control_auroc=_mean_estimate(control_auc),
                probe=fit_probe(X, data.y, method, settings.C),
            )
        )
    return out


def _mean_estimate(estimates: Sequence[Estimate]) -> Estimate:
    if len(estimates) == 1:
        return estimates[0]
    return Estimate(
        float(np.mean([e.value for e in estimates])),
        float(np.mean([e.low for e in estimates])),
        float(np.mean([e.high for e in estimates])),
        estimates[0].level,
    )


def fit_layer_probes(
    store: ActivationStore,
    settings: ProbeSettings = ProbeSettings(),
    sites: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ProbeResults:
    """Probe every stored (site, layer) (or the named ``sites``) with every method."""
    progress = progress or NoProgress()
    data = select_items(store, settings)
    chosen = [s for s in store.sites if sites is None or s.name in sites]
    if not chosen:
        raise UserError(f"none of the sites {sites} is in {store.path}")
    progress.start(len(chosen), f"probing {len(chosen)} sites")
    results = []
    for site in chosen:
        X = store.load(site, data.rows)
        if not np.isfinite(X).all():
            raise UserError(f"{store.path}: {site.name} holds NaN/inf values (see `inspect`)")
        results.extend(probe_site(X, data, site.name, site.kind, site.layer, settings))
        progress.advance(1)
    progress.close()
    summary = {
        "n_items": int(len(data.y)),
        "n_words": data.n_words,
        "words_per_class": dict(zip(settings.classes, data.words_per_class(), strict=True)),
        "items_per_class": {
            settings.classes[0]: int(data.y.sum()),
            settings.classes[1]: int((1 - data.y).sum()),
        },
        "excluded_items": data.n_excluded,
        "label_unit": data.label_unit,
    }
    head = store.score_head()
    return ProbeResults(
        settings=settings,
        store_path=str(store.path.resolve()),
        store_manifest=store.manifest,
        data_summary=summary,
        results=tuple(results),
        score_head={k: v.tolist() for k, v in head.items()} if head else None,
    )

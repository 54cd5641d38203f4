"""Probes: metrics, fitting, word-grouped CV, a planted direction, saving, comparing, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from activations.cache import CacheSettings, cache_activations
from activations.items import ResponseWords, plan_items
from activations.store import ActivationStore
from analyses.figures.probes import comparison_curves, embedding_plot, layer_curves
from analyses.inputs.prompts import paper_prompts
from analyses.runs.compare_probes import CompareProbesSettings, run_compare_probes
from analyses.runs.train_probes import TrainProbesSettings, run_train_probes
from interp.errors import UserError
from interp.models.loading import ModelSpec, load_model
from interp.sites import make_sites
from probes.compare import compare_probe_dirs
from probes.fit import cross_val_scores, fit_probe
from probes.io import ProbeDir
from probes.layerwise import ProbeSettings, fit_layer_probes
from probes.metrics import auroc, pair_counts, score_with_ci

PLANT_LAYER = 2
N_WORDS = 48


# ---------------------------------------------------------------- metrics and fitting


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(size=300) + y * 0.5, 1)  # many ties
    assert auroc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_group_bootstrap_is_consistent():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 5)
    y = (groups % 2).astype(int)
    scores = rng.normal(size=150) + y
    _, index = np.unique(groups, return_inverse=True)
    K, P, N = pair_counts(scores, y, index, 30)
    assert K.sum() / (P.sum() * N.sum()) == pytest.approx(auroc(scores, y))
    scored = score_with_ci(scores, y, groups, n_boot=500, seed=0)
    for est in (scored.accuracy, scored.auroc):
        assert est.low <= est.value <= est.high
        assert est.high - est.low > 0.02
    again = score_with_ci(scores, y, groups, n_boot=500, seed=0)
    assert again == scored  # seeded


def test_probes_are_linear_readouts_in_the_raw_basis():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 6)) * [1, 5, 0.1, 2, 1, 3] + [0, 1, 2, 3, 4, 5]
    y = (X[:, 0] + (X[:, 2] - 2) * 5 + rng.normal(size=200) > 0).astype(int)
    probe = fit_probe(X, y, "logistic", C=0.5)
    reference = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, l1_ratio=0.0))
    reference.fit(X, y)
    np.testing.assert_allclose(probe.decision(X), reference.decision_function(X), atol=1e-4)
    assert np.linalg.norm(probe.direction) == pytest.approx(1.0)
    mean = fit_probe(X, y, "diffmean")
    midpoint = (X[y == 0].mean(0) + X[y == 1].mean(0)) / 2
    assert mean.decision(midpoint[None])[0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(UserError, match="unknown probe method"):
        fit_probe(X, y, "svm")


def test_grouped_cv_keeps_words_out_of_their_own_test_fold():
    """Word identity predicts a random per-word label only if a word leaks across folds."""
    rng = np.random.default_rng(3)
    n_words, n_prompts = 40, 6
    word_vectors = rng.normal(size=(n_words, 64))  # d > words: identity is memorisable
    groups = np.repeat(np.arange(n_words), n_prompts)
    X = word_vectors[groups] + 0.05 * rng.normal(size=(len(groups), 64))
    y = rng.permutation(np.arange(n_words) % 2)[groups]
    grouped = cross_val_scores(X, y, groups, "logistic", folds=5)
    leaky = cross_val_scores(X, y, np.arange(len(y)), "logistic", folds=5)
    assert abs(auroc(grouped, y) - 0.5) < 0.2
    assert auroc(leaky, y) > 0.9


# ---------------------------------------------------------------- a planted direction


def _words() -> ResponseWords:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = tuple(f"{letters[i // 26]}{letters[i % 26]}ion" for i in range(N_WORDS))
    cats = tuple("Agency" if i % 2 == 0 else "Communion" for i in range(N_WORDS))
    return ResponseWords("synthetic", words, cats, {"kind": "test"})


def _planted_direction(d_model: int) -> np.ndarray:
    v = torch.randn(d_model, generator=torch.Generator().manual_seed(11))
    return (v / v.norm()).numpy()


@pytest.fixture(scope="module")
def planted(tiny_llama_lm, tmp_path_factory):
    """A tiny LM whose MLP at PLANT_LAYER adds 20 * v to every position of Agency items, so
    ``v`` enters the residual stream at ``resid_post(PLANT_LAYER)`` and stays there."""
    loaded = load_model(ModelSpec(tiny_llama_lm, kind="lm"))
    plan = plan_items(loaded, paper_prompts()[:3], _words())
    agency = {
        tuple(plan.sequence(i))
        for i in range(plan.n_items)
        if plan.responses.categories[plan.split(i)[1]] == "Agency"
    }
    v = torch.as_tensor(_planted_direction(loaded.d_model))
    state = {}

    def remember(module, args, kwargs):
        state.update(ids=kwargs["input_ids"], mask=kwargs["attention_mask"])

    def plant(module, args, output):
        rows = [tuple(r[m.bool()].tolist()) in agency for r, m in zip(state["ids"], state["mask"])]
        return output + 20.0 * torch.tensor(rows, dtype=output.dtype)[:, None, None] * v

    hooks = [
        loaded.backbone.register_forward_pre_hook(remember, with_kwargs=True),
        loaded.layers[PLANT_LAYER].mlp.register_forward_hook(plant),
    ]
    folder = tmp_path_factory.mktemp("planted")
    path = folder / "acts.h5"
    settings = CacheSettings(
        make_sites(["resid_post"], range(loaded.n_layers)), "last", "float32",
        route="full-sequence",  # the planting hook reads whole sequences
    )  # fmt: skip
    cache_activations(loaded, plan, settings, path)
    for hook in hooks:
        hook.remove()
    return path


def test_planted_direction_is_found(planted):
    v = _planted_direction(32)
    settings = ProbeSettings(n_bootstrap=200, n_controls=3)
    with ActivationStore(planted) as store:
        results = fit_layer_probes(store, settings)
    table = results.table()
    for method in ("logistic", "diffmean"):
        part = table[table["method"] == method].set_index("layer")
        assert part.loc[PLANT_LAYER, "auroc"] > 0.97, method
        assert (part.loc[: PLANT_LAYER - 1, "auroc"] < 0.9).all(), method
        first_found = int(part.index[part["auroc"] > 0.95][0])
        assert first_found == PLANT_LAYER
        assert abs(part.loc[PLANT_LAYER, "control_auroc"] - 0.5) < 0.2
        assert part.loc[PLANT_LAYER, "selectivity_auroc"] > 0.25
        assert part.loc[PLANT_LAYER, "n_words"] == N_WORDS
    best = {b["method"]: b for b in results.best()}
    assert best["diffmean"]["best_layer"] == PLANT_LAYER
    cosines = {
        r.method: float(r.probe.direction @ v) for r in results.results if r.layer == PLANT_LAYER
    }
    assert cosines["diffmean"] > 0.9
    assert cosines["logistic"] > 0.8  # standardisation + L2 tilt it off the mean difference


def test_save_load_compare_and_refusals(planted, tmp_path):
    run = run_train_probes(
        TrainProbesSettings(acts=planted, out=tmp_path / "a", bootstrap=50, no_figures=True)
    )
    probe_dir = ProbeDir(tmp_path / "a")
    assert set(probe_dir.methods) == {"logistic", "diffmean"}
    site = f"blocks.{PLANT_LAYER}.hook_resid_post"
    original = next(r for r in run.results.results if r.site == site and r.method == "logistic")
    with ActivationStore(planted) as store:
        X = store.load(site)
    np.testing.assert_allclose(
        probe_dir.probe(site, "logistic").decision(X), original.probe.decision(X), rtol=1e-6
    )
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert {b["method"] for b in summary["best"]} == {"logistic", "diffmean"}
    assert summary["data"]["n_words"] == N_WORDS and "Communion" in summary["direction_sign"]

    comparison = compare_probe_dirs(tmp_path / "a", tmp_path / "a")
    assert np.allclose(comparison.table["cosine"], 1.0)
    planted_row = comparison.table.query("layer == @PLANT_LAYER and method == 'diffmean'")
    assert planted_row["transfer_a_on_b_auroc"].iloc[0] > 0.97
    assert "head_cosine_a" not in comparison.table  # an LM has no score head

    (tmp_path / "a" / "summary.json").rename(tmp_path / "a" / "summary.bak")
    with pytest.raises(UserError, match="not a probe directory"):
        ProbeDir(tmp_path / "a")
    (tmp_path / "a" / "summary.bak").rename(tmp_path / "a" / "summary.json")
    other = tmp_path / "b"
    other.mkdir()
    for name in ("probes.parquet", "directions.npz"):
        (other / name).write_bytes((tmp_path / "a" / name).read_bytes())
    summary["model"]["d_model"] = 64
    (other / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match="width"):
        compare_probe_dirs(tmp_path / "a", other)


def test_rm_head_alignment(tiny_gemma_rm, tmp_path):
    loaded = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    plan = plan_items(loaded, paper_prompts()[:2], _words())
    path = tmp_path / "rm.h5"
    cache_activations(
        loaded, plan, CacheSettings(make_sites(["resid_post"], range(4)), "last", "float32"), path
    )
    run_train_probes(
        TrainProbesSettings(acts=path, out=tmp_path / "rm", bootstrap=20, no_figures=True)
    )
    run = run_compare_probes(
        CompareProbesSettings(
            dir_a=tmp_path / "rm", dir_b=tmp_path / "rm", out=tmp_path / "cmp", no_figures=True
        )
    )
    table = compare_probe_dirs(tmp_path / "rm", tmp_path / "rm").table
    assert table["head_cosine_a"].between(-1, 1).all()
    assert (tmp_path / "cmp" / "compare.json").is_file()
    assert "score head" in run.headline()


def test_probe_inputs_are_checked(planted, tmp_path):
    with ActivationStore(planted) as store:
        with pytest.raises(UserError, match="class Virtue not found"):
            fit_layer_probes(store, ProbeSettings(classes=("Agency", "Virtue")))
        with pytest.raises(UserError, match="--target"):
            fit_layer_probes(store, ProbeSettings(target="score"))
    with pytest.raises(UserError, match="two different"):
        ProbeSettings(classes=("Agency", "Agency"))


def test_plots_write_png_and_svg(planted, tmp_path):
    run = run_train_probes(
        TrainProbesSettings(acts=planted, out=tmp_path / "p", bootstrap=20, no_figures=True)
    )
    table = run.results.table()
    files = layer_curves(table, tmp_path / "curves", "test")
    comparison = compare_probe_dirs(tmp_path / "p", tmp_path / "p")
    files += comparison_curves(comparison.table, tmp_path / "compare", "test")
    with ActivationStore(planted) as store:
        X, labels = store.load("blocks.2.hook_resid_post"), store.labels()
    files += embedding_plot(X, labels, tmp_path / "embedding", "test", with_umap=False)
    assert sorted(p.suffix for p in files) == [".png", ".png", ".png", ".svg", ".svg", ".svg"]
    assert all(p.stat().st_size > 1000 for p in files)


def test_cli_train_and_compare(planted, tmp_path):
    from click.testing import CliRunner

    from cli import main

    out = tmp_path / "probes"
    args = ["train-probes", "--acts", str(planted), "--out", str(out), "--bootstrap", "20"]
    result = CliRunner().invoke(main, [*args, "--method", "diffmean", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert f"best resid_post layer (diffmean): {PLANT_LAYER}" in result.output
    result = CliRunner().invoke(main, ["compare-probes", str(out), str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert "mean cosine 1.000" in result.output
    result = CliRunner().invoke(main, [*args, "--classes", "Agency"])
    assert result.exit_code == 2 and "two different categories" in result.output

"""Demo stage: cache activations of both embedded models on Big Two words and fit probe curves.

Words: the plain (non-wildcard) entries of the ``big2`` lexicon (Pietraszkiewicz et al. 2019,
version a, fetched from PyPI on first use), under the prompts ``greatest_ever_one`` and
``worst_ever_one`` (two prompts keep the stage to a few minutes on 2 CPU cores; add keys to
``DEMO_PROMPT_KEYS`` for more items per word). Each model is loaded as
an LM (its own formatting: SmolLM2's chat template, Gemma's raw prompt), every layer's
``resid_post`` at the last token is cached in float16, and layerwise probes (logistic and
difference of means, 5 word-grouped folds, 500 bootstrap resamples, three shuffled-label controls averaged)
are fitted and plotted.
A complete store is reused (the cache resumes and finds nothing to do), so a rerun only refits.
"""

from __future__ import annotations

from pathlib import Path

from analyses.activation_run import cache_for_model
from analyses.probe_run import train_probes
from interp.loading import ModelSpec, load_model
from interp.progress import NoProgress, Progress

DEMO_MODELS = ("smollm2-135m-instruct", "gemma3-270m")
DEMO_PROMPT_KEYS = ("greatest_ever_one", "worst_ever_one")
DEMO_LEXICON = "big2"


def demo_words() -> str:
    """The ``--responses`` spec the demo uses (never ``../shared``: the product runs without it)."""
    return DEMO_LEXICON


def demo_stage_probes(out_dir: Path, progress: Progress | None = None) -> dict:
    """Cache + probe both embedded models into ``out_dir/probes/<model>/``; returns a summary."""
    progress = progress or NoProgress()
    out_dir = Path(out_dir) / "probes"
    summary: dict = {"responses": demo_words(), "prompts": list(DEMO_PROMPT_KEYS), "models": {}}
    for name in DEMO_MODELS:
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        loaded = load_model(ModelSpec(name, kind="lm"))
        cached = cache_for_model(
            loaded,
            "paper54",
            demo_words(),
            folder / "acts.h5",
            sites="resid_post",
            layers="all",
            positions="last",
            store_dtype="float16",
            prompt_keys=DEMO_PROMPT_KEYS,
            progress=progress,
        )
        del loaded
        run = train_probes(
            folder / "acts.h5",
            folder / "probes",
            n_bootstrap=500,
            n_controls=3,
            progress=progress,
        )
        summary["models"][name] = {
            "acts": str(cached.path),
            "items": cached.n_items,
            "probes": str(run.out_dir),
            "figures": [str(p) for p in run.files if p.suffix == ".png"],
            "best": run.results.best(),
            "headline": run.headline(),
        }
    return summary

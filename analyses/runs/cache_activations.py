"""``cache-activations``: hidden activations of every (prompt, response) item into an HDF5 store.

Resumable: rerun the same command to continue an interrupted store; different settings are
refused by name (``activations.cache``). For ``last``/``response-last``/``response-mean``
positions each prompt's prefix runs once and items run only their own tokens on top of it
(``activations.batch_reading``); ``--full-sequences`` runs whole sequences instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from activations.cache import CacheResult, cache_activations
from activations.items import ResponseWords, plan_items
from activations.manifest import CacheSettings
from activations.positions import POSITIONS
from activations.store import STORE_DTYPES
from analyses.inputs.prompts import load_prompts
from analyses.inputs.responses import response_words
from analyses.runs.common import ModelChoice, PromptChoice, RunResult
from analyses.runs.options import option
from interp.atomic import check_writable, output_format
from interp.locks import OutputLock
from interp.models.loading import LoadedModel, load_model
from interp.progress import Progress
from interp.prompts import Prompt
from interp.sites import BACKENDS, parse_sites


@dataclass(frozen=True, kw_only=True)
class CacheActivationsSettings(ModelChoice, PromptChoice):
    """Which items, which sites and positions, and how to store them."""

    responses: str = option(
        "", "--responses", required=True,
        help="Word file (.txt, or .csv with a category column) or a lexicon (named or file).",
    )  # fmt: skip
    sites: str = option(
        "resid_post", "--sites",
        help="resid_pre,attn_out,mlp_out,resid_post (any subset) or names like blocks.3.hook_mlp_out.",
    )  # fmt: skip
    layers: str = option(
        "all", "--layers", help="all | 0,5,10 | 0:30:2 | -1 (negatives count from the end)."
    )
    positions: str = option(
        "last", "--positions", kind="choice", choices=POSITIONS,
        help="Token(s) stored per item; all stores every token (ragged rows).",
    )  # fmt: skip
    store_dtype: str = option("float16", "--store-dtype", kind="choice", choices=STORE_DTYPES,
                              help="dtype on disk (HDF5 has no bfloat16).")  # fmt: skip
    backend: str = option("nnsight", "--backend", kind="choice", choices=BACKENDS,
                          help="How activations are read.")  # fmt: skip
    out: Path = option(
        Path("acts.h5"), "--out", kind="path", required=True, help="Output .h5 file."
    )
    batch_size: int | None = option(None, "--batch-size", kind="int", low=1,
                                    help="Items per forward pass [auto].")  # fmt: skip
    overwrite: bool = option(
        False, "--overwrite", kind="flag", help="Replace OUT instead of resuming it."
    )
    full_sequences: bool = option(
        False, "--full-sequences", kind="flag",
        help="Run every item's whole sequence (by default last/response-* positions run each "
        "prompt's prefix once and only the items' own tokens on top of it).",
    )  # fmt: skip


@dataclass(frozen=True)
class CacheActivationsRun(RunResult):
    result: CacheResult | None = None

    def headline(self) -> str:
        return self.result.summary() if self.result else super().headline()


STORE_SUFFIXES = ("h5", "hdf5")


def check_store_output(settings: CacheActivationsSettings) -> None:
    """Refuse, before any model is loaded, an --out that cannot be a store or that another
    process is writing."""
    output_format(settings.out, STORE_SUFFIXES)
    check_writable(settings.out)
    OutputLock(settings.out).refuse_if_held()


def read_cache_inputs(settings: CacheActivationsSettings) -> tuple[list[Prompt], ResponseWords]:
    """Check the output (``check_store_output``), then read the prompts and the words: what a
    run needs before any model is loaded."""
    check_store_output(settings)
    prompts = load_prompts(settings.prompts, settings.prompt_keys, settings.encoding)
    return prompts, response_words(settings.responses, settings.encoding)


def cache_for_model(
    loaded: LoadedModel, settings: CacheActivationsSettings, progress: Progress | None = None,
    inputs: tuple[list[Prompt], ResponseWords] | None = None,
) -> CacheResult:  # fmt: skip
    """Cache activations of an already loaded model with ``settings`` (its model fields unused);
    ``inputs``: ``read_cache_inputs(settings)`` when already read."""
    prompts, words = inputs or read_cache_inputs(settings)
    cache_settings = CacheSettings(
        sites=parse_sites(settings.sites, settings.layers, loaded.n_layers),
        positions=settings.positions,
        store_dtype=settings.store_dtype,
        backend=settings.backend,
        batch_size=settings.batch_size,
        route="full-sequence" if settings.full_sequences else None,
    )
    plan = plan_items(loaded, prompts, words)
    return cache_activations(
        loaded, plan, cache_settings, settings.out, overwrite=settings.overwrite, progress=progress
    )


def run_cache_activations(
    settings: CacheActivationsSettings, *, progress: Progress | None = None
) -> CacheActivationsRun:
    """Cache activations of every (prompt, response) item to HDF5 (resumable: rerun to continue)."""
    inputs = read_cache_inputs(settings)  # inputs and output are checked before the model loads
    result = cache_for_model(
        load_model(settings.model_spec(), progress), settings, progress, inputs
    )
    return CacheActivationsRun(result.path, (result.path,), result=result)

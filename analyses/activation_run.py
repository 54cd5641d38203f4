"""``cache-activations`` end to end: load the model, resolve prompts and responses, cache to HDF5."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from activations.cache import CacheResult, CacheSettings, cache_activations
from activations.items import UNLABELLED, ResponseWords, plan_items
from analyses.prompts import load_prompts
from analyses.responses import load_responses
from interp.errors import UserError
from interp.loading import LoadedModel, ModelSpec, load_model
from interp.progress import Progress
from interp.sites import parse_sites


def response_words(spec: str) -> ResponseWords:
    """``--responses`` (word file, CSV with categories, lexicon) as words with category labels.

    Uses the scorer's resolver (``analyses.responses``), so caching and scoring read the same
    words; a word matching several categories gets them joined by ``|``.
    """
    if spec == "vocab":
        raise UserError(
            "--responses vocab is for scoring; cache activations for a word list or a lexicon"
        )
    resolved = load_responses(spec)
    words = tuple(resolved.responses.words)
    by_word: dict[str, list[str]] = {}
    for word, category in zip(
        resolved.categories["response"], resolved.categories["category"], strict=True
    ):
        by_word.setdefault(str(word), [])
        if str(category) not in by_word[str(word)]:
            by_word[str(word)].append(str(category))
    categories = tuple("|".join(by_word.get(w, [])) or UNLABELLED for w in words)
    return ResponseWords(spec, words, categories, dict(resolved.description))


def cache_for_model(
    loaded: LoadedModel,
    prompts: str,
    responses: str,
    out: str | Path,
    sites: str = "resid_post",
    layers: str = "all",
    positions: str = "last",
    store_dtype: str = "float16",
    backend: str = "nnsight",
    batch_size: int | None = None,
    overwrite: bool = False,
    prompt_keys: tuple[str, ...] | None = None,
    progress: Progress | None = None,
) -> CacheResult:
    """Cache ``sites`` x ``layers`` at ``positions`` of a loaded model for every (prompt, word).

    ``sites``: comma-separated kinds (``resid_post,attn_out``) or canonical names; ``layers``:
    ``all``, ``0,5,10`` or ``0:30:2``. See ``activations.cache`` for resume and settings checks.
    """
    settings = CacheSettings(
        sites=parse_sites(sites, layers, loaded.n_layers),
        positions=positions,
        store_dtype=store_dtype,
        backend=backend,
        batch_size=batch_size,
    )
    plan = plan_items(loaded, load_prompts(prompts, prompt_keys), response_words(responses))
    return cache_activations(loaded, plan, settings, out, overwrite=overwrite, progress=progress)


def run_cache_activations(spec: ModelSpec, *args: Any, **kwargs: Any) -> CacheResult:
    """Load ``spec``, then ``cache_for_model`` with the same further arguments and defaults."""
    return cache_for_model(load_model(spec), *args, **kwargs)

"""Stage 0 of an audit: the exact words and prompts every later stage reads, written once as files.

- ``words.csv`` (``word, category``): the lexicon's plain entries in the two categories of the
  gap (Big Two pronouns dropped unless kept), optionally N words of each category spread evenly
  over the lexicon's order (``spread``); a word in both categories keeps both rows (every
  contrast leaves it out of both groups). ``words-patch.csv``: the patching sweeps' subset.
- ``prompts.yaml`` (all prompts), ``prompts-internal.yaml`` (activations, probes, value lens),
  ``prompts-patch.yaml`` (patching) and ``prompts-tokens.yaml`` (token sweep): ``key: text``
  files; subsets are spread evenly over the framings (``select_prompts``).

``model_identity`` names a model cheaply for settings hashes (a local folder by its files'
sizes and modification times, so a retrained checkpoint at the same path is noticed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from analyses.audit.config import AuditConfig
from analyses.audit.ledger import Ledger, Step
from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.prompts import load_prompts
from analyses.runs.score import prompts_digest
from interp.atomic import atomic_write_text
from interp.errors import UserError
from interp.models import zoo
from interp.prompts import Prompt
from interp.provenance import file_sha256

PROMPT_FILES = {
    "all": "prompts.yaml",
    "internal": "prompts-internal.yaml",
    "patch": "prompts-patch.yaml",
    "tokens": "prompts-tokens.yaml",
}


def model_identity(name: str, revision: str | None = None) -> dict:
    """What names a model's weights without loading it (for settings hashes)."""
    if name in zoo.EMBEDDED:
        return {"embedded": name}
    path = Path(name).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        return {
            "folder": str(path.resolve()),
            "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files],
        }
    return {"hub": name, "revision": revision}


def select_prompts(prompts: Sequence[Prompt], n: int | None) -> list[Prompt]:
    """``n`` prompts spread evenly over each framing, framings taken in turn (all if ``n`` is
    None or too large); the set's order is kept."""
    prompts = list(prompts)
    if n is None or n >= len(prompts):
        return prompts
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.framing, []).append(i)
    quota = {f: 0 for f in groups}
    for k in range(n):
        quota[list(groups)[k % len(groups)]] += 1
    chosen = []
    for framing, idx in groups.items():
        q = min(quota[framing], len(idx))
        picks = np.linspace(0, len(idx) - 1, q).round().astype(int) if q else []
        chosen += [idx[j] for j in picks]
    return [prompts[i] for i in sorted(set(chosen))]


def _write_prompts(path: Path, prompts: Sequence[Prompt]) -> Path:
    text = yaml.safe_dump({p.key: p.text for p in prompts}, sort_keys=False, allow_unicode=True)
    return atomic_write_text(path, text)


def _words_table(config: AuditConfig):
    lexicon = load_lexicon(config.lexicon)
    if not config.keep_pronouns:
        lexicon = lexicon.drop_pronouns()
    cats = lexicon.categorise(lexicon.words())
    pair = (config.gap.first, config.gap.second)
    missing = [c for c in pair if c not in set(cats["category"])]
    if missing:
        raise UserError(
            f"lexicon {config.lexicon}: no words in {', '.join(missing)} (categories: "
            f"{', '.join(lexicon.category_names)}); choose two with --gap A,B"
        )
    cats = cats[cats["category"].isin(pair)]
    table = cats.rename(columns={"response": "word"})[["word", "category"]]
    return lexicon, per_category(table, pair, config.words_per_category)


def spread(items: Sequence, n: int | None) -> list:
    """``n`` items evenly spaced over ``items`` (all of them when ``n`` is None or too large)."""
    items = list(items)
    if not n or n >= len(items):
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def per_category(table, pair: Sequence[str], n: int | None):
    """The rows of ``n`` words of each category of ``pair`` (``spread``); words in both
    categories are kept only when everything is kept."""
    if not n:
        return table.reset_index(drop=True)
    by_word = table.groupby("word", sort=False)["category"].agg(set)
    keep: list[str] = []
    for cat in pair:
        keep += spread([w for w, c in by_word.items() if c == {cat}], n)
    return table[table["word"].isin(keep)].reset_index(drop=True)


def _lexicon_identity(config: AuditConfig) -> dict:
    lexicon = load_lexicon(config.lexicon)
    return {"spec": config.lexicon, "digest": lexicon.digest()}


def _prompt_source_identity(config: AuditConfig) -> dict:
    path = Path(config.prompts)
    return {"source": config.prompts, "sha256": file_sha256(path) if path.is_file() else None}


def input_steps(config: AuditConfig, ledger: Ledger) -> list[Step]:
    """The two steps of stage 0 (``0-inputs/words`` and ``0-inputs/prompts``)."""

    def words(folder: Path) -> dict:
        lexicon, table = _words_table(config)
        path = folder / "words.csv"
        atomic_write_text(path, table.to_csv(index=False))
        patch = per_category(table, list(config.gap), config.patch_words_per_category)
        patch_path = atomic_write_text(folder / "words-patch.csv", patch.to_csv(index=False))
        counts = table.groupby("category")["word"].nunique().to_dict()
        return {
            "file": ledger.rel(path),
            "patch_file": ledger.rel(patch_path),
            "n_patch_words": int(patch["word"].nunique()),
            "sha256": file_sha256(path),
            "n_words": int(table["word"].nunique()),
            "words_per_category": {k: int(v) for k, v in counts.items()},
            "lexicon": lexicon.describe(),
            "pronouns_dropped": not config.keep_pronouns,
        }

    def prompts(folder: Path) -> dict:
        everything = load_prompts(config.prompts, config.prompt_keys)
        chosen = select_prompts(everything, config.max_prompts)
        subsets = {
            "all": chosen,
            "internal": select_prompts(chosen, config.internal_prompts),
            "patch": select_prompts(chosen, config.patch_prompts),
            "tokens": select_prompts(chosen, config.token_sweep_prompts),
        }
        out = {}
        for name, subset in subsets.items():
            path = _write_prompts(folder / PROMPT_FILES[name], subset)
            out[name] = {
                "file": ledger.rel(path),
                "keys": [p.key for p in subset],
                "framings": sorted({p.framing for p in subset}),
                "digest": prompts_digest(subset),
            }
        out["source"] = config.prompts
        return out

    word_settings = {
        "lexicon": _lexicon_identity(config), "keep_pronouns": config.keep_pronouns,
        "words_per_category": config.words_per_category, "gap": list(config.gap),
        "patch_words_per_category": config.patch_words_per_category,
    }  # fmt: skip
    prompt_settings = {
        "prompts": _prompt_source_identity(config), "keys": config.prompt_keys,
        "max_prompts": config.max_prompts, "internal": config.internal_prompts,
        "patch": config.patch_prompts, "tokens": config.token_sweep_prompts,
    }  # fmt: skip
    return [
        Step("0-inputs", "words", word_settings, words, weight=0.0),
        Step("0-inputs", "prompts", prompt_settings, prompts, weight=0.0),
    ]

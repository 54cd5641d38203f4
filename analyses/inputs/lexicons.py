"""Resolving a lexicon: a named source (fetched and cached) or a file, and describing one.

This module imports both the sources and the file formats; neither imports it, so there is no
import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from analyses.inputs import lexicon_sources
from analyses.inputs.lexicon import Lexicon
from analyses.inputs.lexicon_formats import read_lexicon_file
from interp.errors import UserError


def load_lexicon(spec: str | Path, progress=None, encoding: str | None = None) -> Lexicon:
    """A lexicon from a named source (see ``lexicon_sources.SOURCES``) or a local file path
    (decoded as UTF-8 unless ``encoding`` says otherwise)."""
    spec_str = str(spec)
    if spec_str in lexicon_sources.SOURCES:
        return lexicon_sources.fetch_lexicon(spec_str, progress=progress)
    path = Path(spec_str)
    if path.exists():
        return read_lexicon_file(path, encoding=encoding)
    raise UserError(
        f"lexicon {spec_str!r} is neither a file nor a named source "
        f"({', '.join(lexicon_sources.SOURCES)})"
    )


def lexicon_report(lexicon: Lexicon) -> str:
    """A few lines describing a lexicon: identity, then one line per category."""
    lines = [f"{lexicon.name} (version {lexicon.version}) from {lexicon.source}"]
    for row in lexicon.summary().itertuples(index=False):
        lines.append(
            f"  {row.category:<20} {row.patterns:>5} patterns  {row.wildcards:>5} wildcards  "
            f"{row.multi_word:>3} multi-word"
        )
    return "\n".join(lines)


def load_tokenizer_vocab(model: str) -> tuple[str, Mapping[str, int]]:
    """(name, vocabulary) of a model's tokenizer: embedded name, local folder or HF id."""
    from transformers import AutoTokenizer

    from interp.models.loading import resolve_source

    source = resolve_source(model)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the tokenizer of {model}: {err}") from None
    return model, tok.get_vocab()

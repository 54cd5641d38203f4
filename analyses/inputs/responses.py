"""What to score: the ``--responses`` option resolved to words (with categories) or the vocabulary.

Accepted: ``vocab`` (every token id as a one-token response), a text file (one word per line,
``#`` comments), a CSV or TSV table with a header, a word column (``response``, ``word``,
``token_decoded`` or ``DicTerm``) and an optional category column (``category``/``Category``),
or a lexicon (a named source such as
``big2``, or a ``.dic``/``.dicx``/``.json`` file). For a lexicon, its plain (non-wildcard)
entries are scored; wildcard patterns are expanded against a vocabulary by ``lexicons expand``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from activations.items import UNLABELLED, ResponseWords
from analyses.inputs.lexicons import load_lexicon
from interp.errors import UserError
from interp.files import read_delimited, read_lines
from interp.models.fingerprint import tokenizer_digest
from interp.models.loading import LoadedModel
from interp.provenance import file_sha256
from interp.scoring import Responses, Shard, vocabulary_responses

_WORD_COLUMNS = ("response", "word", "token_decoded", "DicTerm")
_CATEGORY_COLUMNS = ("category", "Category")


@dataclass(frozen=True)
class ResponseSet:
    """Responses plus their lexicon categories (``response, category`` rows; may be empty).

    ``responses`` are candidates ``[start, start + len(responses))`` of a full list of ``total``
    (a shard's slice); ``digest`` identifies the full list (so shards of one sweep share it)."""

    responses: Responses
    categories: pd.DataFrame
    description: dict
    total: int = 0
    start: int = 0
    digest: str = ""

    def candidates(self) -> dict:
        """The candidate range of this set within the full list, for provenance."""
        return {"start": self.start, "stop": self.start + len(self.responses),
                "total": self.total, "responses_digest": self.digest}  # fmt: skip


def _from_table(path: Path, encoding: str | None) -> tuple[list[str], pd.DataFrame]:
    table = read_delimited(path, "responses table", encoding)
    word_col = next((c for c in _WORD_COLUMNS if c in table.columns), None)
    if word_col is None:
        raise UserError(f"{path}: no word column (expected one of {', '.join(_WORD_COLUMNS)})")
    cat_col = next((c for c in _CATEGORY_COLUMNS if c in table.columns), None)
    table = table[table[word_col].str.strip() != ""]
    words = list(dict.fromkeys(table[word_col].str.strip()))
    if cat_col is None:
        return words, pd.DataFrame(columns=["response", "category"])
    cats = table[[word_col, cat_col]].rename(columns={word_col: "response", cat_col: "category"})
    return words, cats.drop_duplicates().reset_index(drop=True)


def load_responses(
    spec: str,
    loaded: LoadedModel | None = None,
    shard: Shard = Shard(),
    encoding: str | None = None,
) -> ResponseSet:
    """Resolve ``--responses``. ``loaded`` is needed for ``vocab``; ``shard`` slices any set;
    ``encoding`` decodes word files (default UTF-8, see ``interp.files``)."""
    empty = pd.DataFrame(columns=["response", "category"])
    if spec == "vocab":
        if loaded is None:
            raise UserError("--responses vocab needs a model")
        responses = vocabulary_responses(loaded, shard)
        total = min(len(loaded.tokenizer), loaded.vocab_size)
        digest = _digest(["vocab", total, tokenizer_digest(loaded.tokenizer)])
        start = shard.select(total).start
        description = {"responses": "vocab", "shard": str(shard)}
        return ResponseSet(responses, empty, description, total, start, digest)
    path = Path(spec)
    if path.is_file() and path.suffix.lower() in (".txt", ".csv", ".tsv", ""):
        if path.suffix.lower() in (".csv", ".tsv"):
            words, cats = _from_table(path, encoding)
        else:
            words = list(dict.fromkeys(read_lines(path, "word list", encoding)))
            cats = empty
        description = {"responses": str(path), "sha256": file_sha256(path)}
    else:
        lexicon = load_lexicon(spec, encoding=encoding)
        words = list(lexicon.words())
        cats = lexicon.categorise(words)
        description = {"responses": spec, "lexicon": lexicon.describe()}
    if not words:
        raise UserError(f"responses {spec!r}: no words to score")
    selected = shard.select(len(words))
    digest = _digest(["words", words])
    total = len(words)
    words = words[selected.start : selected.stop]
    description["shard"] = str(shard)
    responses = Responses(source=spec, words=tuple(words))
    return ResponseSet(responses, cats, description, total, selected.start, digest)


def _digest(payload) -> str:
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:24]


def response_words(spec: str, encoding: str | None = None) -> ResponseWords:
    """``--responses`` (word file, CSV with categories, lexicon) as words with category labels.

    Uses ``load_responses``, so caching and scoring read the same
    words; a word matching several categories gets them joined by ``|``.
    """
    if spec == "vocab":
        raise UserError(
            "--responses vocab is for scoring; cache activations for a word list or a lexicon"
        )
    resolved = load_responses(spec, encoding=encoding)
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

"""Value lexicons: parse LIWC-style word lists, match words against patterns, expand wildcards.

A lexicon maps category names (``Agency``, ``care.virtue``, ...) to LIWC-style patterns: lowercase
strings where a trailing ``*`` is a prefix wildcard (``achiev*`` matches achieve, achievement and
achiev itself); a few entries are multi-word phrases (``common good``); a word may belong to several
categories. Formats read here:

- LIWC ``.dic``: a ``%``-delimited header of ``code name`` lines, then ``term<TAB>code [code ...]``
  lines (a term may repeat on several lines; the codes may be separated by tabs or spaces).
- LIWC-22 ``.dicx`` (and CSV files whose first column is ``DicTerm``): one row per term, one column
  per category, ``X`` marking membership.
- JSON ``{category: [patterns]}``.
- CSV word lists with a category column and a word column (``Category,token_decoded``).

Named sources that can be fetched on a fresh machine live in ``analyses.lexicon_sources``.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analyses.errors import UserError

WILDCARD = "*"
# Big Two pronoun entries (they dominate counts when scoring model outputs).
BIG2_PRONOUN_ENTRIES: frozenset[str] = frozenset(
    {
        "you*",
        "your*",
        "we",
        "us",
        "our*",
        "our",
        "you",
        "your",
        "yours",
        "yourself",
        "you'*",
        "ours",
    }
)
# Whitespace markers of subword tokenizers: GPT-2 byte-level (space, newline) and SentencePiece.
TOKEN_SPACE_MARKERS = ("Ġ", "▁", "Ċ")
_WORD_CHARS = re.compile(r"^[a-z][a-z'\-]*$")
CATEGORY_COLUMN_NAMES = ("category", "categories", "cat", "label", "dimension")
WORD_COLUMN_NAMES = ("word", "words", "term", "pattern", "token_decoded", "dicterm", "entry")


def normalise_pattern(pattern: str) -> str:
    """Lowercase, strip, and collapse internal whitespace to one space."""
    return " ".join(str(pattern).strip().lower().split())


def is_wildcard(pattern: str) -> bool:
    """True for a prefix pattern such as ``achiev*``."""
    return pattern.endswith(WILDCARD)


def pattern_matches(pattern: str, word: str) -> bool:
    """Does ``word`` (any case, any inner whitespace) match ``pattern``?"""
    word = normalise_pattern(word)
    if is_wildcard(pattern):
        return word.startswith(pattern[:-1])
    return word == pattern


@dataclass(frozen=True)
class Lexicon:
    """A named set of categories, each a tuple of normalised patterns (order kept, no duplicates).

    ``source`` says where the entries came from (a URL with its checksum, a wheel member, a file
    path with its sha256); ``version`` identifies the content (a dictionary version or a digest).
    """

    name: str
    source: str
    version: str
    categories: dict[str, tuple[str, ...]]
    _exact: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _prefix: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cats: dict[str, tuple[str, ...]] = {}
        for cat, patterns in self.categories.items():
            seen = dict.fromkeys(p for p in (normalise_pattern(x) for x in patterns) if p)
            if WILDCARD in seen:
                raise UserError(f"lexicon {self.name}: category {cat!r} has a bare '*' pattern")
            if seen:
                cats[str(cat)] = tuple(seen)
        if not cats:
            raise UserError(f"lexicon {self.name}: no category with any entry")
        exact: dict[str, list[str]] = {}
        prefix: dict[str, list[str]] = {}
        for cat, patterns in cats.items():
            for p in patterns:
                target = prefix if is_wildcard(p) else exact
                key = p[:-1] if is_wildcard(p) else p
                target.setdefault(key, []).append(cat)
        object.__setattr__(self, "categories", cats)
        object.__setattr__(self, "_exact", {k: tuple(v) for k, v in exact.items()})
        object.__setattr__(self, "_prefix", {k: tuple(v) for k, v in prefix.items()})

    # ------------------------------------------------------------------ views
    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(self.categories)

    def patterns(self) -> tuple[str, ...]:
        """All distinct patterns, in category order."""
        return tuple(dict.fromkeys(p for ps in self.categories.values() for p in ps))

    def words(self, category: str | None = None) -> tuple[str, ...]:
        """Plain (non-wildcard) entries, of one category or all, without duplicates."""
        cats = [category] if category is not None else list(self.categories)
        for c in cats:
            if c not in self.categories:
                raise UserError(f"lexicon {self.name} has no category {c!r}")
        return tuple(
            dict.fromkeys(p for c in cats for p in self.categories[c] if not is_wildcard(p))
        )

    def to_frame(self) -> pd.DataFrame:
        """Long table with columns ``category, pattern, wildcard``."""
        rows = [(c, p, is_wildcard(p)) for c, patterns in self.categories.items() for p in patterns]
        return pd.DataFrame(rows, columns=["category", "pattern", "wildcard"])

    def summary(self) -> pd.DataFrame:
        """Per category: number of patterns, wildcards, multi-word entries."""
        rows = [
            {
                "category": c,
                "patterns": len(ps),
                "wildcards": sum(is_wildcard(p) for p in ps),
                "multi_word": sum(" " in p for p in ps),
            }
            for c, ps in self.categories.items()
        ]
        return pd.DataFrame(rows)

    def describe(self) -> dict:
        """JSON-ready identity of this lexicon, for provenance records."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "digest": self.digest(),
            "categories": {c: len(p) for c, p in self.categories.items()},
        }

    def digest(self) -> str:
        """sha256 of the normalised content (categories and patterns), independent of format."""
        payload = json.dumps({c: list(p) for c, p in self.categories.items()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    # --------------------------------------------------------------- matching
    def match(self, word: str) -> tuple[str, ...]:
        """Categories whose patterns match ``word`` (sorted by lexicon order; may be empty)."""
        w = normalise_pattern(word)
        found: set[str] = set(self._exact.get(w, ()))
        for i in range(len(w) + 1):
            found.update(self._prefix.get(w[:i], ()))
        return tuple(c for c in self.categories if c in found)

    def matching_patterns(self, word: str) -> tuple[str, ...]:
        """Patterns (of any category) that match ``word``."""
        w = normalise_pattern(word)
        out = [w] if w in self._exact else []
        out += [w[:i] + WILDCARD for i in range(len(w) + 1) if w[:i] in self._prefix]
        return tuple(out)

    def categorise(self, words: Iterable[str]) -> pd.DataFrame:
        """Long table ``response, category`` for every (word, matching category); unmatched drop.

        The ``response`` column keeps each word exactly as given, so it joins a score table.
        """
        rows = [(w, c) for w in dict.fromkeys(words) for c in self.match(w)]
        return pd.DataFrame(rows, columns=["response", "category"])

    # --------------------------------------------------------------- variants
    def drop_pronouns(self) -> Lexicon:
        """A copy without the Big Two pronoun entries (``you*``, ``your*``, ``we``, ``us``, ...)."""
        cats = {
            c: tuple(p for p in ps if p not in BIG2_PRONOUN_ENTRIES)
            for c, ps in self.categories.items()
        }
        return Lexicon(self.name, self.source, f"{self.version}-nopronouns", cats)

    def subset(self, categories: Iterable[str]) -> Lexicon:
        """A copy with only the named categories (in the given order)."""
        names = list(categories)
        missing = [c for c in names if c not in self.categories]
        if missing:
            raise UserError(
                f"lexicon {self.name} has no category {', '.join(missing)}; "
                f"it has {', '.join(self.categories)}"
            )
        return Lexicon(self.name, self.source, self.version, {c: self.categories[c] for c in names})

    # -------------------------------------------------------------- storage
    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "source": self.source,
                "version": self.version,
                "categories": {c: list(p) for c, p in self.categories.items()},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Lexicon:
        data = json.loads(text)
        return cls(data["name"], data["source"], data["version"], data["categories"])


# ---------------------------------------------------------------------- parsers
def parse_dic(text: str) -> dict[str, list[str]]:
    """Parse a LIWC ``.dic``: ``%`` header of ``code name`` lines, then ``term<TAB>codes``.

    Terms without a TAB are split at the first run of whitespace followed only by codes, so
    multi-word terms survive. Codes may be separated by tabs or spaces; duplicates merge.
    """
    lines = text.lstrip("\ufeff").splitlines()
    marks = [i for i, ln in enumerate(lines) if ln.strip() == "%" or ln.strip().startswith("%")]
    if len(marks) < 2:
        raise UserError("not a LIWC .dic file: expected a header between two '%' lines")
    codes: dict[str, str] = {}
    for ln in lines[marks[0] + 1 : marks[1]]:
        parts = ln.split(None, 1)
        if len(parts) == 2:
            codes[parts[0].lstrip("0") or "0"] = parts[1].strip()
    if not codes:
        raise UserError("LIWC .dic header defines no category")
    cats: dict[str, list[str]] = {name: [] for name in codes.values()}
    code_re = re.compile(r"^\d+$")
    for lineno, ln in enumerate(lines[marks[1] + 1 :], start=marks[1] + 2):
        if not ln.strip():
            continue
        if "\t" in ln:
            term, rest = ln.split("\t", 1)
            fields = rest.split()
        else:
            tokens = ln.split()
            k = len(tokens)
            while k > 0 and code_re.match(tokens[k - 1]):
                k -= 1
            term, fields = " ".join(tokens[:k]), tokens[k:]
        term = normalise_pattern(term)
        if not term:
            continue
        for code in fields:
            if not code_re.match(code):
                raise UserError(f"LIWC .dic line {lineno}: {code!r} is not a category code")
            key = code.lstrip("0") or "0"
            if key not in codes:
                raise UserError(f"LIWC .dic line {lineno}: code {code} is not in the header")
            cats[codes[key]].append(term)
    return cats


def parse_x_table(text: str) -> dict[str, list[str]]:
    """Parse a LIWC-22 ``.dicx``: CSV ``DicTerm,<categories>`` with ``X`` marking membership."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or len(rows[0]) < 2:
        raise UserError("not a .dicx table: expected a header 'DicTerm,<category>,...'")
    header = [h.strip() for h in rows[0]]
    cats: dict[str, list[str]] = {h: [] for h in header[1:]}
    for row in rows[1:]:
        if not row or not row[0].strip():
            continue
        term = normalise_pattern(row[0])
        for name, cell in zip(header[1:], row[1:], strict=False):
            if cell.strip().upper() == "X":
                cats[name].append(term)
    return cats


def parse_json(text: str) -> dict[str, list[str]]:
    """Parse JSON ``{category: [patterns]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"not valid JSON: {err}") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise UserError("JSON lexicon must be an object mapping category -> list of patterns")
    return {str(k): [str(x) for x in v] for k, v in data.items()}


def parse_word_csv(
    text: str, category_column: str | None = None, word_column: str | None = None
) -> dict[str, list[str]]:
    """Parse a CSV word list with a category column and a word column.

    Column names are looked up case-insensitively; defaults are the first of
    ``CATEGORY_COLUMN_NAMES`` and ``WORD_COLUMN_NAMES`` present. A ``DicTerm`` first column with
    X-marked category columns is read as ``.dicx`` instead.
    """
    df = pd.read_csv(io.StringIO(text.lstrip("\ufeff")), dtype=str, keep_default_na=False)
    lower = {c.lower().strip(): c for c in df.columns}
    if category_column is None and word_column is None and df.columns[0].lower() == "dicterm":
        return parse_x_table(text)

    def pick(given: str | None, candidates: tuple[str, ...], what: str) -> str:
        if given is not None:
            if given.lower() not in lower:
                raise UserError(f"CSV lexicon has no column {given!r} (has {list(df.columns)})")
            return lower[given.lower()]
        for c in candidates:
            if c in lower:
                return lower[c]
        raise UserError(
            f"CSV lexicon: cannot find the {what} column among {list(df.columns)}; "
            f"expected one of {', '.join(candidates)}"
        )

    cat_col = pick(category_column, CATEGORY_COLUMN_NAMES, "category")
    word_col = pick(word_column, WORD_COLUMN_NAMES, "word")
    cats: dict[str, list[str]] = {}
    for cat, word in zip(df[cat_col], df[word_col], strict=True):
        if cat.strip() and word.strip():
            cats.setdefault(cat.strip(), []).append(word)
    return cats


def parse_lexicon_text(
    text: str, fmt: str, category_column: str | None = None, word_column: str | None = None
) -> dict[str, list[str]]:
    """Parse lexicon text in format ``dic``, ``dicx``, ``json`` or ``csv``."""
    if fmt == "dic":
        return parse_dic(text)
    if fmt == "dicx":
        return parse_x_table(text)
    if fmt == "json":
        return parse_json(text)
    if fmt in ("csv", "tsv"):
        return parse_word_csv(text, category_column, word_column)
    raise UserError(f"unknown lexicon format {fmt!r}; use dic, dicx, json or csv")


def sniff_format(text: str, suffix: str = "") -> str:
    """Guess the format from the file suffix, else from the content."""
    suffix = suffix.lower().lstrip(".")
    if suffix in ("dic", "dicx", "json", "csv"):
        return suffix
    head = text.lstrip("\ufeff").lstrip()
    if head.startswith("%"):
        return "dic"
    if head.startswith("{"):
        return "json"
    if head.lower().startswith(("dicterm", '"dicterm"')):
        return "dicx"
    return "csv"


def read_lexicon_file(
    path: str | Path,
    name: str | None = None,
    category_column: str | None = None,
    word_column: str | None = None,
) -> Lexicon:
    """Read a lexicon file (format by suffix or content). ``version`` is the file's sha256[:12]."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"lexicon file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    sha = hashlib.sha256(raw).hexdigest()
    fmt = sniff_format(text, path.suffix)
    try:
        cats = parse_lexicon_text(text, fmt, category_column, word_column)
    except UserError as err:
        raise UserError(f"lexicon file {path}: {err}") from None
    return Lexicon(
        name=name or path.stem,
        source=f"file:{path.resolve()} sha256={sha}",
        version=sha[:12],
        categories=cats,
    )


def load_lexicon(spec: str | Path, progress=None) -> Lexicon:
    """A lexicon from a named source (see ``lexicon_sources.SOURCES``) or a local file path."""
    from analyses import lexicon_sources

    spec_str = str(spec)
    if spec_str in lexicon_sources.SOURCES:
        return lexicon_sources.fetch_lexicon(spec_str, progress=progress)
    path = Path(spec_str)
    if path.exists():
        return read_lexicon_file(path)
    raise UserError(
        f"lexicon {spec_str!r} is neither a file nor a named source "
        f"({', '.join(lexicon_sources.SOURCES)})"
    )


# -------------------------------------------------------------------- expansion
@dataclass(frozen=True)
class Expansion:
    """Wildcard expansion of a lexicon against a vocabulary.

    ``table`` has one row per (category, pattern, word[, token]) with columns
    ``category, pattern, word`` and, for a tokenizer vocabulary, ``token, token_id``.
    ``unmatched`` lists ``(category, pattern)`` pairs that matched nothing.
    """

    lexicon: str
    vocabulary: str
    table: pd.DataFrame
    unmatched: tuple[tuple[str, str], ...]

    def words_by_category(self) -> dict[str, tuple[str, ...]]:
        """Matched words per category (sorted, distinct)."""
        return {
            c: tuple(sorted(set(g["word"]))) for c, g in self.table.groupby("category", sort=False)
        }


def _expand(
    lexicon: Lexicon, vocab: Mapping[str, list[tuple[str, int]]] | Iterable[str]
) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Core expansion: ``vocab`` maps normalised word -> [(token, id), ...] or is a word list."""
    if isinstance(vocab, Mapping):
        entries = vocab
    else:
        entries = {normalise_pattern(w): [] for w in vocab}
        entries.pop("", None)
    sorted_words = sorted(entries)
    rows: list[tuple] = []
    unmatched: list[tuple[str, str]] = []
    for cat, patterns in lexicon.categories.items():
        for p in patterns:
            if is_wildcard(p):
                stem = p[:-1]
                i = bisect.bisect_left(sorted_words, stem)
                hits = []
                while i < len(sorted_words) and sorted_words[i].startswith(stem):
                    hits.append(sorted_words[i])
                    i += 1
            else:
                hits = [p] if p in entries else []
            if not hits:
                unmatched.append((cat, p))
            for w in hits:
                toks = entries[w] or [(None, None)]
                rows.extend((cat, p, w, tok, tid) for tok, tid in toks)
    return rows, unmatched


def _check_categories_matched(lexicon: Lexicon, table: pd.DataFrame, vocabulary: str) -> None:
    empty = [c for c in lexicon.categories if c not in set(table["category"])]
    if empty:
        examples = ", ".join(lexicon.categories[empty[0]][:5])
        raise UserError(
            f"lexicon {lexicon.name}: no pattern of category {', '.join(empty)} matches any word "
            f"of {vocabulary} (patterns such as {examples})"
        )


def expand_against_words(
    lexicon: Lexicon, words: Iterable[str], vocabulary: str = "word list", strict: bool = True
) -> Expansion:
    """Expand every pattern against a word list (case-insensitive).

    Raises ``UserError`` when ``strict`` and some category matches no word at all.
    """
    rows, unmatched = _expand(lexicon, list(words))
    table = pd.DataFrame([r[:3] for r in rows], columns=["category", "pattern", "word"])
    if strict:
        _check_categories_matched(lexicon, table, vocabulary)
    return Expansion(lexicon.name, vocabulary, table, tuple(unmatched))


def single_token_words(vocab: Mapping[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Tokenizer vocabulary -> {lowercased word: [(token, token_id), ...]}.

    Leading whitespace markers (``Ġ``, ``▁``, ``Ċ``) are stripped; a token is kept when the rest
    is a word (ASCII letters, then letters, apostrophes or hyphens). Several tokens (``love``,
    ``Ġlove``, ``ĠLove``) can map to one word; all their ids are kept, sorted by id.
    """
    out: dict[str, list[tuple[str, int]]] = {}
    for token, tid in vocab.items():
        stripped = token
        while stripped.startswith(TOKEN_SPACE_MARKERS):
            stripped = stripped[1:]
        word = stripped.lower()
        if _WORD_CHARS.match(word):
            out.setdefault(word, []).append((token, int(tid)))
    for toks in out.values():
        toks.sort(key=lambda t: t[1])
    return out


def expand_against_tokenizer(
    lexicon: Lexicon, tokenizer, vocabulary: str | None = None, strict: bool = True
) -> Expansion:
    """Expand against a tokenizer's single-token words (``tokenizer.get_vocab()`` or a mapping).

    Multi-word patterns never match a single token. The table has one row per matching token,
    with ``token`` (raw vocabulary string) and ``token_id``.
    """
    vocab = tokenizer if isinstance(tokenizer, Mapping) else tokenizer.get_vocab()
    name = vocabulary or getattr(tokenizer, "name_or_path", None) or "tokenizer vocabulary"
    rows, unmatched = _expand(lexicon, single_token_words(vocab))
    table = pd.DataFrame(rows, columns=["category", "pattern", "word", "token", "token_id"])
    table["token_id"] = table["token_id"].astype("int64")
    if strict:
        _check_categories_matched(lexicon, table, name)
    return Expansion(lexicon.name, name, table, tuple(unmatched))


# ---------------------------------------------------------------- reporting
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

    from interp.loading import resolve_source

    source = resolve_source(model)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load the tokenizer of {model}: {err}") from None
    return model, tok.get_vocab()


def show_lexicon(
    spec: str,
    drop_pronouns: bool = False,
    words_file: str | Path | None = None,
    tokenizer_model: str | None = None,
    out: str | Path | None = None,
) -> str:
    """Describe a lexicon; optionally expand it against a word list or a tokenizer.

    ``words_file``: one word per line. ``tokenizer_model``: single-token words of that model's
    tokenizer. ``out``: write the expansion table (pattern -> matched words) as CSV. Returns the
    report text.
    """
    lexicon = load_lexicon(spec)
    if drop_pronouns:
        lexicon = lexicon.drop_pronouns()
    text = lexicon_report(lexicon)
    if words_file is None and tokenizer_model is None:
        return text
    if words_file is not None and tokenizer_model is not None:
        raise UserError("give either a word list or a tokenizer, not both")
    if words_file is not None:
        path = Path(words_file)
        if not path.is_file():
            raise UserError(f"word list not found: {path}")
        words = [w for w in path.read_text(encoding="utf-8").splitlines() if w.strip()]
        exp = expand_against_words(lexicon, words, vocabulary=path.name)
    else:
        name, vocab = load_tokenizer_vocab(tokenizer_model)
        exp = expand_against_tokenizer(lexicon, vocab, vocabulary=name)
    lines = [text, f"expansion against {exp.vocabulary}:"]
    for cat, words in exp.words_by_category().items():
        n_pat = len(set(exp.table.loc[exp.table["category"] == cat, "pattern"]))
        lines.append(
            f"  {cat:<20} {len(words):>6} words from {n_pat} of "
            f"{len(lexicon.categories[cat])} patterns"
        )
    if exp.unmatched:
        shown = ", ".join(p for _, p in exp.unmatched[:8])
        more = f" and {len(exp.unmatched) - 8} more" if len(exp.unmatched) > 8 else ""
        lines.append(f"  {len(exp.unmatched)} pattern(s) matched nothing: {shown}{more}")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        exp.table.to_csv(out, index=False)
        lines.append(f"wrote {out} ({len(exp.table)} rows)")
    return "\n".join(lines)

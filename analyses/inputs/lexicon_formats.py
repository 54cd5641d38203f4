"""Lexicon file formats: LIWC ``.dic``, LIWC-22 ``.dicx``, JSON and CSV word lists.

- LIWC ``.dic``: a ``%``-delimited header of ``code name`` lines, then ``term<TAB>code [code ...]``
  lines (a term may repeat on several lines; the codes may be separated by tabs or spaces).
- LIWC-22 ``.dicx`` (and CSV files whose first column is ``DicTerm``): one row per term, one column
  per category, ``X`` marking membership.
- JSON ``{category: [patterns]}``.
- CSV word lists with a category column and a word column (``Category,token_decoded``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path

from analyses.inputs.lexicon import Lexicon, normalise_pattern
from interp import files
from interp.errors import UserError

CATEGORY_COLUMN_NAMES = ("category", "categories", "cat", "label", "dimension")
WORD_COLUMN_NAMES = (
    "word", "words", "response", "term", "pattern", "token_decoded", "dicterm", "entry",
)  # fmt: skip


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
    """Parse JSON ``{category: [patterns]}`` (every pattern a string)."""
    data = files.parse_json(text, "JSON lexicon")
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise UserError("JSON lexicon must be an object mapping category -> list of patterns")
    bad = [k for k, v in data.items() if not all(isinstance(x, str) for x in v)]
    if bad:
        raise UserError(f"JSON lexicon: category {bad[0]!r} holds something other than text")
    return {str(k): list(v) for k, v in data.items()}


def parse_word_csv(
    text: str, category_column: str | None = None, word_column: str | None = None, sep: str = ","
) -> dict[str, list[str]]:
    """Parse a CSV (or, with ``sep="\\t"``, TSV) word list with a category and a word column.

    Column names are looked up case-insensitively; defaults are the first of
    ``CATEGORY_COLUMN_NAMES`` and ``WORD_COLUMN_NAMES`` present. A ``DicTerm`` first column with
    X-marked category columns is read as ``.dicx`` instead.
    """
    df = files.parse_delimited(text.lstrip("\ufeff"), "CSV lexicon", sep)
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
        return parse_word_csv(text, category_column, word_column, "\t" if fmt == "tsv" else ",")
    raise UserError(f"unknown lexicon format {fmt!r}; use dic, dicx, json, csv or tsv")


def sniff_format(text: str, suffix: str = "") -> str:
    """Guess the format from the file suffix, else from the content."""
    suffix = suffix.lower().lstrip(".")
    if suffix in ("dic", "dicx", "json", "csv", "tsv"):
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
    encoding: str | None = None,
) -> Lexicon:
    """Read a lexicon file (format by suffix or content). ``version`` is the file's sha256[:12].

    The text is UTF-8 (or what its byte-order mark says) unless ``encoding`` is given."""
    path = Path(path)
    raw = files.read_bytes(path, "lexicon file")
    text = files.decode(raw, path, "lexicon file", encoding)
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

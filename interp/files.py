"""Reading the files a user gives: every input file of the suite is opened here.

Each reader checks, in this order, and refuses with a ``UserError`` that says what was expected:

1. the path exists and is a file (not a folder), and is not empty;
2. compression: ``.gz`` is decompressed in memory; a truncated or corrupt stream is refused;
3. text encoding: a byte-order mark (UTF-8, UTF-16, UTF-32) wins; otherwise the bytes must be
   UTF-8, else ``not UTF-8 (byte 0xe9 at 12); re-save as UTF-8 or pass --encoding latin-1``
   (``encoding=`` decodes with that codec instead, strictly);
4. syntax (YAML with duplicate keys refused, JSON, JSON lines with the line number, CSV/TSV with
   a header row, Parquet);
5. shape: tables have every field of every row (a short row is a truncated file), JSON lines
   are objects.

The table format comes from the file extension (``table_format``): ``.parquet``, ``.csv`` or
``.tsv`` (tab-separated); anything else is refused, never guessed. Text cells are read as strings
exactly as written (``"NA"``, ``"null"``, ``""`` and a lone ``"\\r"`` stay strings).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from interp.errors import UserError

TABLE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "tsv"}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def check_encoding(name: str | None) -> str | None:
    """``name`` if Python knows that codec (``--encoding``), else ``UserError``."""
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UserError(
            f"--encoding {name!r}: unknown text encoding (e.g. utf-8, latin-1)"
        ) from None


def input_path(path: str | Path, what: str = "input file") -> Path:
    """``path`` if it is an existing, non-empty file; else ``UserError`` naming ``what``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{what} not found: {path}")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror}") from None
    if size == 0:
        raise UserError(f"{what} {path} is empty")
    return path


def read_bytes(path: str | Path, what: str = "input file") -> bytes:
    """The file's bytes (``.gz`` decompressed); refuses a missing, empty or truncated file."""
    path = input_path(path, what)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror}") from None
    if path.suffix.lower() != ".gz":
        return raw
    try:
        data = gzip.decompress(raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        reason = "it ends early, truncated" if isinstance(err, EOFError) else str(err)
        raise UserError(
            f"{what} {path}: not a complete gzip file ({reason}); download or compress it again"
        ) from None
    if not data:
        raise UserError(f"{what} {path} is empty (after decompression)")
    return data


def decode(
    data: bytes, path: str | Path, what: str = "input file", encoding: str | None = None
) -> str:
    """Text of ``data``: by BOM, else strict UTF-8 (or ``encoding``), with a clear refusal."""
    if encoding is not None:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as err:
            raise UserError(
                f"{what} {path}: not {encoding} (byte 0x{data[err.start]:02x} at {err.start})"
            ) from None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise UserError(
                    f"{what} {path}: starts with a {codec} mark but is not {codec}"
                ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{what} {path}: not UTF-8 (byte 0x{data[err.start]:02x} at {err.start}); "
            "re-save as UTF-8 or pass --encoding latin-1"
        ) from None


def read_text(path: str | Path, what: str = "input file", encoding: str | None = None) -> str:
    """The decoded text of a file (``.gz`` decompressed); must hold more than whitespace."""
    text = decode(read_bytes(path, what), path, what, encoding)
    if not text.strip():
        raise UserError(f"{what} {path} holds only blank lines")
    return text


def read_lines(
    path: str | Path, what: str = "input file", encoding: str | None = None, comments: bool = True
) -> list[str]:
    """Non-blank lines of a text file, stripped (``comments``: ``#`` lines dropped too)."""
    lines = [ln.strip() for ln in read_text(path, what, encoding).splitlines()]
    return [ln for ln in lines if ln and not (comments and ln.startswith("#"))]


# ----------------------------------------------------------------------------- JSON and YAML
def parse_json(text: str, source: str) -> Any:
    """``json.loads`` with a one-line refusal giving line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{source}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None


def read_json(path: str | Path, what: str = "input file", encoding: str | None = None) -> Any:
    return parse_json(read_text(path, what, encoding), f"{what} {path}")


def read_jsonl(
    path: str | Path, what: str = "input file", encoding: str | None = None
) -> list[dict]:
    """One JSON object per non-blank line (``.jsonl`` or ``.jsonl.gz``)."""
    rows = []
    for lineno, line in enumerate(read_text(path, what, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json(line, f"{what} {path} line {lineno}")
        if not isinstance(row, dict):
            raise UserError(
                f"{what} {path} line {lineno}: expected a JSON object, got {type(row).__name__}"
            )
        rows.append(row)
    return rows


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key is itself a list or mapping", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """Safe YAML (no object construction) with duplicate keys refused; one-line errors."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{source}: not valid YAML{where}: {problem}") from None


def read_yaml(path: str | Path, what: str = "input file", encoding: str | None = None) -> Any:
    return parse_yaml(read_text(path, what, encoding), f"{what} {path}")


# ----------------------------------------------------------------------------- tables
def table_format(
    path: str | Path, what: str = "table", allowed: tuple[str, ...] = ("parquet", "csv", "tsv")
) -> str:
    """``parquet`` / ``csv`` / ``tsv`` from the extension, or ``UserError`` naming the allowed ones."""
    fmt = TABLE_FORMATS.get(Path(path).suffix.lower())
    if fmt not in allowed:
        names = " or ".join(f".{a}" for a in allowed)
        raise UserError(
            f"{what} {path}: unknown table format {Path(path).suffix or '(no extension)'!r}; use {names}"
        )
    return fmt


def parse_delimited(
    text: str, source: str, sep: str = ",", na_columns: tuple[str, ...] = ()
) -> pd.DataFrame:
    """A CSV/TSV text with a header row, every cell a string exactly as written.

    Quoted cells may hold the delimiter, quotes, ``\\r`` and newlines. A row with more or fewer
    fields than the header (a truncated or mangled file) is refused; an empty cell of
    ``na_columns`` becomes NaN.
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        header = next(csv.reader(io.StringIO(text), delimiter=sep))
    except (StopIteration, csv.Error):
        header = []
    if not [h for h in header if h.strip()]:
        raise UserError(f"{source} is empty; expected a header row and data rows")
    if any(not h.strip() for h in header):
        raise UserError(f"{source}: the header row has an empty column name ({header})")
    if len(set(header)) != len(header):
        raise UserError(f"{source}: the header row names a column twice ({header})")
    try:
        table = pcsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            parse_options=pcsv.ParseOptions(delimiter=sep, newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=False,
                quoted_strings_can_be_null=False, null_values=[],
            ),
        )  # fmt: skip
    except pa.ArrowInvalid as err:
        detail = str(err).strip().splitlines()[0].removeprefix("CSV parse error: ")
        raise UserError(
            f"{source}: malformed table ({detail[:160]}); every row needs {len(header)} fields, "
            "as many as the header (is the file truncated?)"
        ) from None
    df = table.to_pandas()
    for col in na_columns:
        if col in df.columns:
            df[col] = df[col].mask(df[col] == "")
    return df


def read_delimited(
    path: str | Path,
    what: str = "table",
    encoding: str | None = None,
    na_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """A ``.csv`` or ``.tsv`` file as strings (see ``parse_delimited``); format by extension."""
    fmt = table_format(path, what, ("csv", "tsv"))
    text = read_text(path, what, encoding)
    return parse_delimited(text, f"{what} {path}", "\t" if fmt == "tsv" else ",", na_columns)


def read_parquet(path: str | Path, what: str = "table") -> pd.DataFrame:
    """A Parquet file; a truncated or foreign file is refused in one line."""
    path = input_path(path, what)
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{what} {path}: not a readable Parquet file ({first})") from None


def read_table(
    path: str | Path,
    what: str = "table",
    encoding: str | None = None,
    na_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """A Parquet, CSV or TSV table by extension (text tables as strings)."""
    if table_format(path, what) == "parquet":
        return read_parquet(path, what)
    return read_delimited(path, what, encoding, na_columns)


def require_columns(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    """Refuse a table that lacks any of ``columns``, naming what it has."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise UserError(
            f"{source}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})"
        )

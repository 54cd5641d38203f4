"""The validation section of the report: its content as data, and a standalone ``validation.html``.

``validation_section(out_dir)`` returns the section (title, columns, rows, figure path, summary
line, the location rules in words) from a finished ``validate`` folder, so the report can include
it; ``write_html`` renders the same section on its own page.
"""

from __future__ import annotations

import html
import inspect
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analyses.validation import inheritance_rules, rules
from analyses.validation.table import summary_line

TITLE = "Validation: model organisms with known answers"
SHOWN = ("organism", "seed", "method", "control", "expected", "found", "agree", "effect",
         "ci_low", "ci_high", "effect_name", "p")  # fmt: skip


@dataclass(frozen=True)
class ReportSection:
    """One report section: ``rows`` are dicts over ``columns``; ``figure`` is a PNG path."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[dict, ...]
    figure: str | None
    summary: str
    rules: str


def rules_text() -> str:
    """The location rules, as the rule modules state them."""
    return "\n\n".join(inspect.getdoc(m) or "" for m in (rules, inheritance_rules))


def validation_section(out_dir: str | Path) -> ReportSection:
    """The section of a finished ``validate`` output folder."""
    out_dir = Path(out_dir)
    table = pd.read_csv(out_dir / "validation.csv")
    figure = out_dir / "validation.png"
    rows = tuple(
        {c: (None if pd.isna(v) else v) for c, v in r.items()}
        for r in table[list(SHOWN)].to_dict("records")
    )
    return ReportSection(TITLE, SHOWN, rows, str(figure) if figure.exists() else None,
                         summary_line(table), rules_text())  # fmt: skip


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def write_html(section: ReportSection, path: Path) -> Path:
    """A standalone page: the summary line, the figure, the table, the rules."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns)
    body = []
    for row in section.rows:
        style = "" if row.get("agree") in (True, "True") else ' class="miss"'
        cells = "".join(f"<td>{_cell(row.get(c))}</td>" for c in section.columns)
        body.append(f"<tr{style}>{cells}</tr>")
    figure = (
        f'<img src="{html.escape(Path(section.figure).name)}" style="max-width:100%">'
        if section.figure
        else ""
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(section.title)}</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}tr.miss{background:#f8d7da}"
        "pre{white-space:pre-wrap;font-size:12px}</style></head><body>"
        f"<h1>{html.escape(section.title)}</h1><p><b>{html.escape(section.summary)}</b></p>"
        f"{figure}<table><tr>{head}</tr>{''.join(body)}</table>"
        f"<h2>Location rules</h2><pre>{html.escape(section.rules)}</pre></body></html>\n"
    )
    from interp.atomic import atomic_write_text

    return atomic_write_text(path, page)

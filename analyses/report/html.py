"""``report.html``: one self-contained page rendered from a ``Report`` (and ``report.json`` beside it).

The page has inline CSS, every figure as a ``data:image/png;base64`` URI, no script and no link
to anything outside itself, so it opens offline from a laptop or a cluster's file browser. Every
number of the answer is a ``<span class="num" data-key="KEY">`` holding exactly the text of
``report.json``'s ``key_numbers[KEY].text``. The output depends only on the report's content and
the figure files' bytes: writing twice gives identical files.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any

from analyses.report.content import Report, Section, Table, fill, format_number
from interp.atomic import atomic_write_text

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0;background:#fafafa;color:#222;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5em 2em 4em;background:#fff}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
 margin-top:2em}h3{margin-bottom:.3em}
nav ol{columns:2;font-size:.9em}nav a{color:#235}
ol.answer li{margin:.5em 0;font-size:1.08em}
.num{font-weight:600;background:#eef4ff;padding:0 .15em;border-radius:3px}
.status{color:#865;font-style:italic}
figure{margin:1.2em 0;padding:.6em;border:1px solid #e4e4e4;background:#fff}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:.9em;color:#444;margin-top:.4em}
table{border-collapse:collapse;font-size:.84em;margin:.6em 0;width:auto}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv td:first-child{font-weight:600;white-space:nowrap}
.caveat-warning{border-left:4px solid #c44e52;padding:.3em .7em;margin:.5em 0;background:#fff6f6}
.caveat-note{border-left:4px solid #8aa;padding:.3em .7em;margin:.5em 0;background:#f6fafa}
details summary{cursor:pointer;color:#235}
footer{margin-top:3em;font-size:.8em;color:#777}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(value: Any, column: str) -> str:
    if isinstance(value, bool) or value is None:
        return f"<td>{_e('n/a' if value is None else value)}</td>"
    if isinstance(value, int):
        return f'<td class="n">{value}</td>'
    if isinstance(value, float):
        style = "p" if column.lower().startswith("p") and "prompt" not in column else "plain"
        return f'<td class="n">{_e(format_number(value, style))}</td>'
    return f"<td>{_e(value)}</td>"


def render_table(table: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, c) for v, c in zip(row, table.columns)) + "</tr>"
        for row in table.rows
    )
    inner = (
        f'<table id="{_e(table.key)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )
    note = f"<p><small>{_e(table.note)}</small></p>" if table.note else ""
    if table.collapsed:
        return f"<details><summary>{_e(table.title)} ({len(table.rows)} rows)</summary>{inner}{note}</details>"
    return f"<h3>{_e(table.title)}</h3>{inner}{note}"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_section(section: Section, folder: Path) -> str:
    parts = [f'<section id="{_e(section.key)}"><h2>{_e(section.title)}</h2>']
    if section.status != "ran":
        parts.append(f'<p class="status">{_e(section.status)}</p>')
    parts += [f"<p>{_e(p)}</p>" for p in section.paragraphs]
    for fig in section.figures:
        parts.append(
            f'<figure id="{_e(fig.key)}"><img src="{_data_uri(folder / fig.path)}" '
            f'alt="{_e(fig.title)}"><figcaption><b>{_e(fig.title)}.</b> {_e(fig.caption)}'
            "</figcaption></figure>"
        )
    parts += [render_table(t) for t in section.tables]
    parts.append("</section>")
    return "\n".join(parts)


def _kv(value: Any) -> str:
    if isinstance(value, dict):
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_kv(v)}</td></tr>" for k, v in value.items())
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return _e(", ".join("n/a" if v is None else str(v) for v in value))
        return "".join(_kv(v) for v in value)
    return _e("n/a" if value is None else value)


TEST_COLUMNS = ("test", "question", "unit", "n", "effect size", "95% CI", "statistic", "p",
                "p adjusted", "correction (family)")  # fmt: skip
FOLD_TESTS = 12
"""A stage with more tests than this shows them folded (``<details>``)."""


def _test_row(t) -> str:
    ci = f"[{format_number(t.ci_low)}, {format_number(t.ci_high)}]"
    corr = t.correction + (f" ({t.family})" if t.family else "")
    cells = (t.name, t.question, t.unit, "n/a" if t.n is None else str(t.n),
             f"{t.effect} = {format_number(t.value)}", ci, format_number(t.statistic),
             format_number(t.p, "p"), format_number(t.p_adjusted, "p"), corr)  # fmt: skip
    return "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _tests(report: Report) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in TEST_COLUMNS)
    groups: dict[str, list] = {}
    for t in report.tests:
        groups.setdefault(t.section, []).append(t)
    parts = []
    for i, (section, tests) in enumerate(groups.items()):
        table = (f'<table id="tests-{i}"><thead><tr>{head}</tr></thead><tbody>'
                 + "".join(_test_row(t) for t in tests) + "</tbody></table>")  # fmt: skip
        title = f"{_e(section)}: {len(tests)} test{'s' if len(tests) != 1 else ''}"
        if len(tests) > FOLD_TESTS:
            parts.append(f"<details><summary>{title}</summary>{table}</details>")
        else:
            parts.append(f"<h3>{title}</h3>{table}")
    return (
        '<section id="tests"><h2>Every test</h2><p>Each row is one hypothesis test: the unit of '
        "inference is what was resampled or counted as independent; effect sizes carry 95% "
        "confidence intervals; p adjusted is p after the stated correction over the stated "
        "family.</p>" + "".join(parts) + "</section>"
    )


def _caveats(report: Report) -> str:
    if not report.caveats:
        items = "<p>The run detected nothing that limits the answer.</p>"
    else:
        items = "".join(
            f'<div class="caveat-{_e(c.severity)}" id="caveat-{_e(c.key)}"><b>{_e(c.severity)}:'
            f"</b> {_e(c.text)}</div>"
            for c in report.caveats
        )
    return f'<section id="caveats"><h2>Caveats the run detected</h2>{items}</section>'


def render(report: Report, folder: Path) -> str:
    """The whole page; figure paths are read relative to ``folder``."""
    numbers = report.numbers()

    def span(key: str) -> str:
        return f'<span class="num" data-key="{_e(key)}">{_e(numbers[key].text)}</span>'

    answer = "".join(f"<li>{fill(_e(s), span)}</li>" for s in report.answer)
    toc = [("answer", "The answer"), ("pair", "The pair and its provenance")]
    toc += [(s.key, s.title) for s in report.sections]
    toc += [("tests", "Every test"), ("caveats", "Caveats the run detected")]
    nav = "".join(f'<li><a href="#{_e(k)}">{_e(t)}</a></li>' for k, t in toc)
    body = [
        f"<h1>{_e(report.title)}</h1>",
        f"<nav><ol>{nav}</ol></nav>",
        f'<section id="answer"><h2>The answer</h2><ol class="answer">{answer}</ol></section>',
        f'<section id="pair"><h2>The pair and its provenance</h2>{_kv(report.pair)}</section>',
        *[render_section(s, folder) for s in report.sections],
        _tests(report),
        _caveats(report),
        f"<footer>valuebias report · settings hash {_e(report.pair.get('settings_hash', ''))}"
        "</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.title)}</title><style>{CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )


def write_report(report: Report, folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``folder`` (atomically); returns both."""
    folder = Path(folder)
    record = report.to_json()
    record["figure_files"] = {
        fig.key: {
            "path": fig.path,
            "sha256": hashlib.sha256((folder / fig.path).read_bytes()).hexdigest(),
        }
        for s in report.sections
        for fig in s.figures
    }
    json_path = atomic_write_text(
        folder / "report.json", json.dumps(record, indent=1, sort_keys=False) + "\n"
    )
    html_path = atomic_write_text(folder / "report.html", render(report, folder))
    return json_path, html_path

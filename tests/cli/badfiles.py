"""Bad input files a careful user can have, built once per test module, and the check that a
refused command left no output a reader would accept.

``bad_files(folder)`` returns file name -> path; ``check_case`` runs one command line
(``{file name}`` placeholders replaced by those paths, ``{out}`` by a fresh output path and
``{dir}`` by its folder) and asserts the
rules for bad input (``tests.helpers.refusal``) plus: the expected words are in the error line,
and ``{out}`` does not exist afterwards (nor any file beside it that is not a hidden partial).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from interp.atomic import staging_path
from tests.helpers import refusal

PAIRS = [
    {"chosen": f"\n\nHuman: question {i}?\n\nAssistant: a kind answer",
     "rejected": f"\n\nHuman: question {i}?\n\nAssistant: a rude answer"}
    for i in range(12)
]  # fmt: skip


def bad_files(folder: Path) -> dict[str, Path]:
    """Every bad (and a few good) input files, written into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes | str] = {
        "latin1-words.txt": "caf\xe9\npower\n".encode("latin-1"),
        "latin1.csv": "response,category\ncaf\xe9,Agency\n".encode("latin-1"),
        "latin1.yaml": "best_ever_one: What is the caf\xe9?\n".encode("latin-1"),
        "empty.csv": b"",
        "blank.txt": "\n \n\n",
        "header-only.csv": "response,category\n",
        "truncated.csv": "response,category\npower,Agency\nlove,Communion\ncare",
        "extra-field.csv": "response,category\npower,Agency,x\n",
        "no-word-column.csv": "colour,category\nred,Agency\n",
        "words.csv": "response,category\npower,Agency\nsuccess,Agency\nvictory,Agency\n"
        "love,Communion\ncare,Communion\nfamily,Communion\n",
        "one-category.csv": "response,category\npower,Agency\nsuccess,Agency\nvictory,Agency\n",
        "uncategorised.txt": "power\nlove\n",
        "nested.yaml": "best_ever_one:\n  text: What is best?\n",
        "null.yaml": "best_ever_one: null\nworst_ever_one: What is worst?\n",
        "duplicate.yaml": "best_ever_one: What is best?\nbest_ever_one: What is greatest?\n",
        "number.yaml": "best_ever_one: 42\n",
        "list-of-maps.yaml": "- text: What is best?\n",
        "broken.yaml": "best_ever_one: [What is best?\n",
        "scalar.yaml": "just a sentence\n",
        "empty.yaml": b"",
        "broken.json": '{"best_ever_one": "What is best?",}',
        "good.yaml": "best_ever_one: What, in one word, is the best thing ever?\n"
        "worst_ever_one: What, in one word, is the worst thing ever?\n",
        "lexicon.json": json.dumps(
            {"Agency": ["power", "success", "victory"], "Communion": ["love", "care", "family"]}
        ),
        "one-category.json": json.dumps({"Agency": ["power", "success", "victory"]}),
        "nonstring-lexicon.json": json.dumps({"Agency": ["power", 3], "Communion": ["love"]}),
        "broken.dic": "%\n1\tAgency\n%\npower\tX\n",
        "pairs.json": json.dumps(PAIRS),
        "pairs-latin1.json": json.dumps(PAIRS)
        .replace("kind", "k\\u00e9ind")
        .encode()
        .replace(b"\\u00e9", b"\xe9"),
        "pairs-broken.jsonl": json.dumps(PAIRS[0]) + "\n{not json}\n",
        "pairs-scalar.jsonl": json.dumps(PAIRS[0]) + "\n42\n",
        "pairs-unusable.json": json.dumps([{"chosen": "no markers", "rejected": "none"}] * 3),
        "pairs-unknown.json": json.dumps([{"question": "a", "answer": "b"}]),
        "pairs.txt": "chosen,rejected\n",
        "garbage.jsonl.gz": b"this is not gzip at all",
        "not.parquet": "definitely not parquet",
        "not.h5": "definitely not HDF5",
    }
    out = {}
    for name, data in files.items():
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
        out[name] = path
    whole = gzip.compress("".join(json.dumps(p) + "\n" for p in PAIRS).encode())
    out["truncated.jsonl.gz"] = folder / "truncated.jsonl.gz"
    out["truncated.jsonl.gz"].write_bytes(whole[: len(whole) // 2])
    out["a-file"] = folder / "a-file"
    out["a-file"].write_text("x")
    out["a-folder"] = folder / "a-folder"
    out["a-folder"].mkdir(exist_ok=True)
    out["missing"] = folder / "no-such-file.csv"
    return out


def check_case(args: list[str], expected: str, paths: dict, out: Path) -> str:
    """Run ``args`` (placeholders filled), assert a clean refusal mentioning ``expected`` and
    that ``out`` was not created; returns the error line."""
    from cli import main

    subs = {f"{{{k}}}": str(v) for k, v in paths.items()}
    subs |= {"{out}": str(out), "{dir}": str(out.parent)}
    filled = []
    for a in args:
        for key, value in subs.items():
            a = a.replace(key, value)
        filled.append(a)
    result = CliRunner().invoke(main, filled)
    line = refusal(result)
    assert expected.lower() in line.lower(), line
    assert not out.exists(), f"{out} was left behind by a refused run"
    left = [p.name for p in out.parent.iterdir() if p.name.startswith(out.name) and p != out]
    assert not left, left  # no sidecar, no lock file
    assert not staging_path(out).exists(), "a staging folder was left behind"
    return line

"""Bad input for ``lexicons`` and ``models``: refused with exit 2 and one ``error:`` line, no
traceback, no output file; a one-category lexicon is refused wherever a contrast needs two."""

from __future__ import annotations

import pytest

from analyses.inputs.lexicons import load_lexicon
from analyses.inputs.responses import load_responses
from analyses.stats.contrast import CategoryPair, category_words
from interp.errors import UserError
from tests.cli.badfiles import bad_files, check_case

SHOW = ["lexicons", "show"]
CASES = [
    ([*SHOW, "{empty.csv}"], "is empty"),
    ([*SHOW, "{blank.txt}"], "is empty"),
    ([*SHOW, "{latin1.csv}"], "not UTF-8 (byte 0xe9 at 21); re-save as UTF-8 or pass --encoding latin-1"),
    ([*SHOW, "{truncated.csv}"], "truncated"),
    ([*SHOW, "{header-only.csv}"], "no category"),
    ([*SHOW, "{nonstring-lexicon.json}"], "holds something other than text"),
    ([*SHOW, "{broken.json}"], "not valid JSON (line 1"),
    ([*SHOW, "{broken.dic}"], "not a category code"),
    ([*SHOW, "{a-folder}"], "is a folder"),
    ([*SHOW, "nope"], "neither a file nor a named source"),
    ([*SHOW, "{lexicon.json}", "--words", "{missing}"], "word list not found"),
    ([*SHOW, "{lexicon.json}", "--words", "{latin1-words.txt}"], "not UTF-8"),
    ([*SHOW, "{lexicon.json}", "--words", "{blank.txt}"], "only blank lines"),
    ([*SHOW, "{lexicon.json}", "--words", "{words.csv}", "--tokenizer", "x"], "either a word list or a tokenizer"),
    ([*SHOW, "{lexicon.json}", "--tokenizer", "no-such-model"], "unknown model"),
    ([*SHOW, "{lexicon.json}", "--words", "{uncategorised.txt}", "--out", "{dir}/x.xlsx"], ".xlsx is not an output format"),
    ([*SHOW, "{lexicon.json}", "--words", "{uncategorised.txt}", "--out", "{a-file}/x.csv"], "is a file, not a folder"),
    ([*SHOW, "{lexicon.json}", "--encoding", "utf-99"], "unknown text encoding"),
    (["lexicons", "fetch", "liwc2015"], "unknown lexicon"),
    (["models", "fetch", "gpt-5"], "unknown embedded model"),
]  # fmt: skip


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return bad_files(tmp_path_factory.mktemp("bad-lexicons") / "files")


@pytest.mark.parametrize("args, expected", CASES, ids=[c[1][:30] for c in CASES])
def test_lexicons_and_models_refuse(args, expected, paths, tmp_path):
    check_case(args, expected, paths, tmp_path / "expansion.csv")


def test_one_category_lexicon_is_refused_for_contrasts(paths):
    for spec in (paths["one-category.json"], paths["one-category.csv"]):
        rs = load_responses(str(spec))
        with pytest.raises(
            UserError, match=r"needs at least 2 words in each category; found 3 and 0"
        ):
            category_words(rs.categories, CategoryPair("Agency", "Communion"))
    assert load_lexicon(paths["one-category.json"]).category_names == ("Agency",)

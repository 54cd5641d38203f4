"""Score table schema, Parquet/CSV round trips with provenance, and the paper CSV import."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from analyses.inputs.paper_scores import (
    family_from_model_id,
    import_paper_scores,
    model_id_from_paper_file,
)
from analyses.inputs.prompts import framing_of_key
from analyses.inputs.score_table import (
    read_provenance,
    read_score_table,
    sidecar_path,
    write_score_table,
)
from interp.errors import UserError
from interp.score_rows import SCORE_COLUMNS

GEMMA = "big2_rewards_Skywork_Skywork-Reward-Gemma-2-27B.csv"
LLAMA = "big2_rewards_Skywork_Skywork-Reward-Llama-3.1-8B-v0.2.csv"


@pytest.fixture(scope="module")
def sample_files(shared_dir):
    folder = shared_dir / "paper-data" / "reward_model_scores_sample"
    return [folder / GEMMA, folder / LLAMA]


def test_model_id_family_framing_rules():
    assert model_id_from_paper_file("x/big2_rewards_Org_Model-7B.csv") == "Org_Model-7B"
    assert model_id_from_paper_file("MFD20_rewards_a_b.csv") == "a_b"
    with pytest.raises(UserError, match="big2_rewards_"):
        model_id_from_paper_file("scores_Org_Model.csv")
    assert family_from_model_id("Skywork_Skywork-Reward-GEMMA-2") == "Gemma"
    assert family_from_model_id("Skywork_Skywork-Reward-Llama-3.1-8B") == "Llama"
    assert family_from_model_id("allenai_tulu") == "Llama"
    assert framing_of_key("greatest_ever_one") == "positive"
    assert framing_of_key("good_time_please") == "positive"
    assert framing_of_key("terrible_world_single") == "negative"
    assert framing_of_key("worst_ever_one") == "negative"


def test_import_paper_scores(sample_files, shared_dir):
    table = import_paper_scores(sample_files)
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert len(table) == 2 * 265 * 54
    fams = table.groupby("model")["family"].first().to_dict()
    assert fams == {
        "Skywork_Skywork-Reward-Gemma-2-27B": "Gemma",
        "Skywork_Skywork-Reward-Llama-3.1-8B-v0.2": "Llama",
    }
    assert set(table["kind"]) == {"rm"}
    assert table["token_id"].isna().all()
    framing = table.groupby("prompt_key")["framing"].first()
    assert (framing == "positive").sum() == 27 and (framing == "negative").sum() == 27
    # a value straight from the file's first data row
    row = table[
        (table["model"] == "Skywork_Skywork-Reward-Gemma-2-27B")
        & (table["response"] == "accuracy")
        & (table["prompt_key"] == "best_ever_one")
    ]
    assert row["score"].tolist() == [-27.375]
    # prompt texts are the paper's (prompts.yaml)
    texts = yaml.safe_load((shared_dir / "paper-data" / "prompts.yaml").read_text())
    got = table.groupby("prompt_key")["prompt"].first().to_dict()
    assert got == texts


def test_import_family_override_and_bad_override(sample_files):
    table = import_paper_scores(
        sample_files, {"Skywork_Skywork-Reward-Gemma-2-27B": "Other"}, prompt_texts={}
    )
    assert set(table["family"]) == {"Other", "Llama"}
    assert set(table["prompt"]) == {""}
    with pytest.raises(UserError, match="not among the files"):
        import_paper_scores(sample_files, {"nope": "Gemma"})


def test_import_missing_prompt_is_a_clear_error(sample_files, tmp_path):
    wide = pd.read_csv(sample_files[1]).drop(columns=["bad_time_please", "good_ever_one"])
    short = tmp_path / LLAMA
    wide.to_csv(short, index=False)
    with pytest.raises(UserError, match="missing prompt.*bad_time_please, good_ever_one"):
        import_paper_scores([sample_files[0], short])


def test_import_missing_score_and_no_response_column(sample_files, tmp_path):
    wide = pd.read_csv(sample_files[0])
    wide.loc[3, "best_ever_one"] = None
    bad = tmp_path / "big2_rewards_m1.csv"
    wide.to_csv(bad, index=False)
    with pytest.raises(UserError, match="1 missing score"):
        import_paper_scores([bad])
    nocol = tmp_path / "big2_rewards_m2.csv"
    wide.rename(columns={"response": "word"}).to_csv(nocol, index=False)
    with pytest.raises(UserError, match="no 'response' column"):
        import_paper_scores([nocol])


def _small_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "family": ["Llama"] * 3,
            "kind": ["lm"] * 3,
            "prompt_key": ["best_ever_one"] * 3,
            "prompt": ["What?"] * 3,
            "framing": ["positive"] * 3,
            "response": ["love", "NA", "001"],
            "token_id": [5, None, 7],
            "score": [-1.5, -2.0, -3.25],
        }
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_round_trip_with_provenance(tmp_path, suffix):
    path = tmp_path / f"scores{suffix}"
    prov = {"model": {"fingerprint": "abc"}, "seed": 3}
    write_score_table(_small_table(), path, prov)
    back = read_score_table(path)
    assert back["response"].tolist() == ["love", "NA", "001"]  # strings survive CSV
    assert back["token_id"].tolist()[0] == 5 and pd.isna(back["token_id"].tolist()[1])
    assert back["score"].tolist() == [-1.5, -2.0, -3.25]
    recorded = read_provenance(path)
    assert {k: recorded[k] for k in prov} == prov and recorded["rows"] == 3
    assert len(recorded["digest"]) == 64 and "hash_pandas_object" in recorded["digest_method"]
    assert json.loads(sidecar_path(path).read_text()) == recorded
    assert sidecar_path(path).name == f"scores{suffix}.meta.json"


def test_parquet_metadata_holds_provenance_without_sidecar(tmp_path):
    path = tmp_path / "s.parquet"
    write_score_table(_small_table(), path, {"x": 1})
    sidecar_path(path).unlink()
    assert read_provenance(path)["x"] == 1 and read_provenance(path)["rows"] == 3


def test_truncated_or_edited_tables_are_refused(tmp_path):
    big = pd.concat([_small_table()] * 30, ignore_index=True)
    big["score"] = range(len(big))
    csv = tmp_path / "s.csv"
    write_score_table(big, csv, {"x": 1})
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:51]))  # 50 of 90 rows survive a cut-off copy
    with pytest.raises(UserError, match="50 rows but its provenance records 90"):
        read_score_table(csv)
    pq_path = tmp_path / "s.parquet"
    write_score_table(big, pq_path, {"x": 1})
    edited = pd.read_parquet(pq_path)
    edited.loc[3, "score"] = 99.0
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(edited, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(pq.read_metadata(pq_path).metadata), pq_path)
    with pytest.raises(UserError, match="differs from the digest"):
        read_score_table(pq_path)


def test_csv_round_trips_every_control_character(tmp_path):
    table = _small_table()
    table["response"] = ["a\rb", "\r", '"q",\n']
    path = tmp_path / "s.csv"
    write_score_table(table, path)
    assert read_score_table(path)["response"].tolist() == ["a\rb", "\r", '"q",\n']


def test_schema_errors(tmp_path):
    with pytest.raises(UserError, match="missing column.*score"):
        write_score_table(_small_table().drop(columns="score"), tmp_path / "a.parquet")
    bad = _small_table().assign(kind="reward")
    with pytest.raises(UserError, match="unknown kind"):
        write_score_table(bad, tmp_path / "b.parquet")
    bad = _small_table().assign(framing="neutral")
    with pytest.raises(UserError, match="unknown framing"):
        write_score_table(bad, tmp_path / "c.parquet")
    with pytest.raises(UserError, match="not found"):
        read_score_table(tmp_path / "none.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(UserError, match="not a readable Parquet file"):
        read_score_table(junk)


def _vocabulary_table(tokenizer, model: str) -> pd.DataFrame:
    """A score table holding every token of ``tokenizer`` as a response, as a sweep writes it."""
    from interp.prompts import Prompt
    from interp.score_rows import score_rows

    ids = list(range(len(tokenizer)))
    return score_rows(
        model=model, family="x", kind="lm", prompt=Prompt("best_ever_one", "What?", "positive"),
        responses=[tokenizer.decode([i]) for i in ids], scores=np.linspace(-30.0, 0.0, len(ids)),
        token_ids=ids, raw_token=tokenizer.convert_ids_to_tokens(ids), n_tokens=1,
        template="chat",
    )  # fmt: skip


def test_csv_quotes_every_text_field(tmp_path):
    table = _small_table().assign(response=["\r", 'say "hi", twice', "line\nbreak"])
    path = write_score_table(table, tmp_path / "t.csv")
    text = path.read_bytes()
    assert b'"\r"' in text and b'"say ""hi"", twice"' in text
    back = read_score_table(path)
    assert list(back["response"]) == ["\r", 'say "hi", twice', "line\nbreak"]


@pytest.mark.embedded
@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "gemma3-270m"])
def test_csv_round_trip_over_the_whole_vocabulary(name, tmp_path):
    """Every token of both embedded tokenizers (including SmolLM2's "\\r", id 201) reads back
    from a CSV score table exactly as written."""
    from transformers import AutoTokenizer

    from interp.models import zoo

    tokenizer = AutoTokenizer.from_pretrained(str(zoo.fetch_embedded(name)))
    table = _vocabulary_table(tokenizer, name)
    path = write_score_table(table, tmp_path / "vocab.csv")
    back = read_score_table(path)
    assert len(back) == len(table) == len(tokenizer)
    assert list(back["response"]) == list(table["response"])
    assert list(back["raw_token"]) == list(table["raw_token"])
    assert back["token_id"].tolist() == table["token_id"].tolist()
    np.testing.assert_array_equal(back["score"].to_numpy(), table["score"].to_numpy())
    if name.startswith("smollm2"):
        assert back.loc[back["token_id"] == 201, "response"].item() == "\r"

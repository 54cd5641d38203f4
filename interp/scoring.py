"""Scoring responses: RM rewards, LM log-probs, and the exhaustive vocabulary sweep.

Two routes give the same numbers:

- ``score_full_sequences`` (reference, "naive"): each whole conversation's exact ids, right-padded
  in batches; the reward is read at each row's last real token. Right padding keeps every real
  token's position and attention identical to the unpadded sequence.
- ``PrefixRunner`` (fast): the shared prefix (system + user turn + assistant header) runs once;
  its keys/values are shared by a batch of candidates (``interp.prefix_attention``: one GEMM
  against the prefix, never a per-candidate copy) and only the per-candidate suffix
  (response ids + closing ids) runs. Candidates are bucketed by suffix length, so no padding is
  ever needed. For a one-token response this processes ~3 tokens per candidate instead of ~45.

Rewards are float32 scalars in the RM's own units; log-probs are natural-log probabilities (nats)
summed over the response's tokens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from interp.budget import rows_per_pass, run_in_batches
from interp.errors import UserError
from interp.formatting import ConversationFormat, conversation_format, response_ids
from interp.models.loading import LoadedModel
from interp.prefix_attention import shared_prefix_attention
from interp.progress import NoProgress, Progress
from interp.prompts import Prompt
from interp.score_rows import score_rows


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (1-based) of ``count`` equal slices of the candidate list."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        if not text:
            return cls()
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise UserError(
                f"--shard {text!r}: expected i/n with whole numbers, e.g. 1/4"
            ) from None
        if count < 1 or not 1 <= index <= count:
            raise UserError(f"--shard {text}: need 1 <= i <= n (shards are numbered from 1)")
        return cls(index, count)

    def select(self, n: int) -> range:
        """The half-open index range of this shard among ``n`` candidates (contiguous slices)."""
        start = (self.index - 1) * n // self.count
        stop = self.index * n // self.count
        return range(start, stop)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Responses:
    """Responses to score: words (strings), or token ids scored as one-token responses."""

    source: str
    words: tuple[str, ...] = ()
    token_ids: tuple[int, ...] = ()

    @property
    def is_vocab(self) -> bool:
        return bool(self.token_ids)

    def slice(self, start: int, stop: int) -> Responses:
        """Candidates ``[start, stop)`` of this list."""
        if self.is_vocab:
            return Responses(self.source, token_ids=self.token_ids[start:stop])
        return Responses(self.source, words=self.words[start:stop])

    def __len__(self) -> int:
        return len(self.token_ids) if self.is_vocab else len(self.words)


def _head(loaded: LoadedModel):
    """The map from a final hidden state to the scores: LM logits (soft-capped where the model
    caps them, as Gemma 2 does) or a linear RM head."""
    if loaded.kind == "rm":
        assert loaded.reward_layout is not None
        if not loaded.reward_layout.linear:
            raise ValueError("a head-module RM has no single linear head")
        return loaded.reward_layout.head(loaded.model)
    return lm_logits(loaded)


def lm_logits(loaded: LoadedModel):
    """``hidden [..., d] -> logits [..., vocab]`` exactly as the causal LM computes them."""
    head = loaded.model.get_output_embeddings()
    cap = getattr(loaded.model.config.get_text_config(), "final_logit_softcapping", None)
    if not cap:
        return head
    return lambda hidden: torch.tanh(head(hidden) / cap) * cap


def _rewards(
    loaded: LoadedModel, hidden: torch.Tensor, ids: torch.Tensor, prefix=None
) -> torch.Tensor:
    """RM rewards ``[B]`` from final-normed ``hidden [B, S, d]`` of ``ids [B, S]`` after an optional
    shared ``prefix`` (``(ids [P], hidden [P, d])``): the linear head at the last token, or the
    model's own head module on the whole sequence (in row chunks of the token budget)."""
    layout = loaded.reward_layout
    assert layout is not None
    if layout.linear:
        return layout.head(loaded.model)(hidden[:, -1]).float()[:, 0]
    if prefix is not None:
        p_ids, p_hidden = prefix
        full_ids = torch.cat([p_ids.to(ids.device).expand(len(ids), -1), ids], dim=1)

        def chunk(start: int, stop: int) -> torch.Tensor:
            pre = p_hidden[None].expand(stop - start, *p_hidden.shape)
            return torch.cat([pre, hidden[start:stop]], dim=1)
    else:
        full_ids = ids

        def chunk(start: int, stop: int) -> torch.Tensor:
            return hidden[start:stop]

    rows = rows_per_pass(loaded.device, full_ids.shape[1])
    return loaded.head_module().reward_chunked(chunk, full_ids, rows)


class PrefixRunner:
    """Runs a shared prefix once and then any number of suffix batches on top of it.

    ``prefix_ids`` (length P) run with a key/value cache; ``run(suffix)`` takes ``[B, S]`` ids and
    returns the final-normed hidden states ``[B, S, d_model]`` of the suffix positions, exactly as
    if each row ``prefix + suffix[b]`` had been run alone.
    """

    def __init__(self, loaded: LoadedModel, prefix_ids: Sequence[int]) -> None:
        from transformers import DynamicCache

        self.loaded = loaded
        ids = torch.tensor([list(prefix_ids)], device=loaded.device)
        with torch.no_grad():
            # A cache of plain (full) layers, even for sliding-window layers: a sliding layer
            # would keep only the last `window` prefix tokens and lose the true position offset.
            out = loaded.backbone(input_ids=ids, cache=DynamicCache(), use_cache=True)
        cache = out.cache
        self._kv = [(layer.keys, layer.values) for layer in cache.layers]
        self.prefix_ids = ids[0]  # [P]
        self.prefix_hidden = out.last_hidden_state[0]  # [P, d_model]
        self.last_hidden = self.prefix_hidden[-1]  # [d_model]
        self.prefix_len = ids.shape[1]

    @property
    def kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The prefix's keys and values per layer, ``[1, kv_heads, P, head_dim]``."""
        return self._kv

    def positions(self, suffix: torch.Tensor) -> torch.Tensor:
        """Position ids ``[B, S]`` of suffix rows: ``P, P + 1, ...``."""
        batch, length = suffix.shape
        steps = torch.arange(self.prefix_len, self.prefix_len + length, device=self.loaded.device)
        return steps.expand(batch, length)

    @torch.no_grad()
    def run(self, suffix: torch.Tensor) -> torch.Tensor:
        with shared_prefix_attention(self.loaded.model, self._kv):
            out = self.loaded.backbone(
                input_ids=suffix.to(self.loaded.device),
                position_ids=self.positions(suffix),
                use_cache=False,
            )
        return out.last_hidden_state


def _buckets(suffixes: list[list[int]]) -> dict[int, list[int]]:
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(suffixes):
        by_len[len(s)].append(i)
    return by_len


@torch.no_grad()
def score_candidates(
    loaded: LoadedModel,
    fmt: ConversationFormat,
    candidates: Sequence[Sequence[int]],
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Score each candidate response (its token ids) after the prefix, prefix-cached.

    RM: reward at the last token of ``response + suffix``. LM: sum of log p(token) over the
    response tokens (teacher-forced). Returns float32 ``[len(candidates)]`` on the CPU.
    """
    progress = progress or NoProgress()
    if any(len(c) == 0 for c in candidates):
        raise UserError("a response has no tokens (empty string?)")
    runner = PrefixRunner(loaded, fmt.prefix_ids)
    head = _head(loaded) if loaded.kind == "lm" else None
    suffixes = [[*c, *fmt.suffix_ids] for c in candidates]
    scores = torch.empty(len(candidates), dtype=torch.float32)
    first_logp = None
    if loaded.kind == "lm":
        first_logp = torch.log_softmax(head(runner.last_hidden).float(), dim=-1)
    for length, members in sorted(_buckets(suffixes).items()):

        def run(start: int, stop: int, members=members, length=length) -> None:
            idx = members[start:stop]
            ids = torch.tensor([suffixes[i] for i in idx], device=loaded.device)
            if loaded.kind == "lm" and length == 1:
                batch_scores = first_logp[ids[:, 0]]
            else:
                hidden = runner.run(ids)
                if loaded.kind == "rm":
                    prefix = (runner.prefix_ids, runner.prefix_hidden)
                    batch_scores = _rewards(loaded, hidden, ids, prefix)
                else:
                    logp = torch.log_softmax(head(hidden[:, :-1]).float(), dim=-1)
                    later = logp.gather(-1, ids[:, 1:, None])[..., 0].sum(-1)
                    batch_scores = first_logp[ids[:, 0]] + later
            scores[torch.tensor(idx)] = batch_scores.cpu()
            progress.advance(len(idx))

        if batch_size:
            for start in range(0, len(members), batch_size):
                run(start, start + batch_size)
        else:  # the token budget's size, halved on out-of-memory (remembered)
            size = rows_per_pass(loaded.device, length + 1)
            run_in_batches(len(members), size, run, loaded.device, length + 1)
    return scores


@torch.no_grad()
def score_full_sequences(
    loaded: LoadedModel,
    sequences: Sequence[Sequence[int]],
    batch_size: int = 16,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Reference RM scorer: whole sequences, right-padded, reward at each row's last real token.

    Returns float32 ``[len(sequences)]``. Used to check the prefix-cached path and as the
    benchmark's naive baseline.
    """
    progress = progress or NoProgress()
    linear = loaded.reward_layout is not None and loaded.reward_layout.linear
    pad = loaded.tokenizer.pad_token_id
    out = torch.empty(len(sequences), dtype=torch.float32)
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(list(seq))
            mask[row, : len(seq)] = 1
        hidden = loaded.backbone(
            input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device)
        ).last_hidden_state
        last = mask.sum(1) - 1
        if linear:
            picked = hidden[torch.arange(len(chunk)), last.to(loaded.device)]
            scores = _head(loaded)(picked).float()[:, 0]
        else:  # the model's own head on each row's unpadded sequence
            scores = torch.cat(
                [_rewards(loaded, hidden[r : r + 1, : len(s)], ids[r : r + 1, : len(s)])
                 for r, s in enumerate(chunk)]
            )  # fmt: skip
        out[start : start + len(chunk)] = scores.cpu()
        progress.advance(len(chunk))
    return out


@torch.no_grad()
def next_token_logprobs(loaded: LoadedModel, prompts: Sequence[str]) -> torch.Tensor:
    """log p(token | prompt) for every vocabulary token: float32 ``[len(prompts), vocab_size]``.

    Each prompt is formatted as for log-probs (chat template with generation prompt, or the raw
    prompt for a model without a template) and run on its own (no padding).
    """
    if loaded.kind != "lm":
        raise UserError("next-token log-probs need a model loaded as an LM (--as lm)")
    head = _head(loaded)
    rows = []
    for prompt in prompts:
        fmt = conversation_format(loaded, prompt)
        ids = torch.tensor([list(fmt.prefix_ids)], device=loaded.device)
        hidden = loaded.backbone(input_ids=ids).last_hidden_state[0, -1]
        rows.append(torch.log_softmax(head(hidden).float(), dim=-1).cpu())
    return torch.stack(rows)


def vocabulary_responses(loaded: LoadedModel, shard: Shard = Shard()) -> Responses:
    """Every token id the model can emit (this shard's slice), as one-token responses."""
    n = min(len(loaded.tokenizer), loaded.vocab_size)
    return Responses(source=f"vocab[{shard}]", token_ids=tuple(shard.select(n)))


def score_block(
    loaded: LoadedModel,
    prompt: Prompt,
    responses: Responses,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Score-table rows of every response to one prompt (see ``score_responses`` for columns)."""
    progress = progress or NoProgress()
    tok = loaded.tokenizer
    fmt = conversation_format(loaded, prompt.text)
    if responses.is_vocab:
        candidates = [[t] for t in responses.token_ids]
        words = [tok.decode([t]) for t in responses.token_ids]
        raw = tok.convert_ids_to_tokens(list(responses.token_ids))
    else:
        candidates = [response_ids(loaded, fmt, w) for w in responses.words]
        words = list(responses.words)
        raw = [None] * len(words)
    if loaded.kind == "lm" and responses.is_vocab:
        logp = next_token_logprobs(loaded, [prompt.text])[0]
        scores = logp[torch.tensor(responses.token_ids)]
        progress.advance(len(candidates))
    else:
        scores = score_candidates(loaded, fmt, candidates, batch_size, progress)
    return score_rows(
        model=loaded.name,
        family=loaded.family,
        kind=loaded.kind,
        prompt=prompt,
        responses=words,
        scores=scores.numpy(),
        token_ids=[c[0] if len(c) == 1 else None for c in candidates],
        n_tokens=[len(c) for c in candidates],
        raw_token=raw,
        template=fmt.mode,
    )


def score_responses(
    loaded: LoadedModel,
    prompts: Sequence[Prompt],
    responses: Responses,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Score every (prompt, response) pair: the score table (``interp.score_rows``) plus detail columns.

    Extra columns: ``n_tokens`` (response length in tokens), ``raw_token`` (vocabulary string,
    vocab sweeps only), ``template`` (formatting mode used).
    """
    progress = progress or NoProgress()
    if len(responses) == 0:
        raise UserError(f"no responses to score in {responses.source}")
    progress.start(len(prompts) * len(responses), f"scoring {loaded.name} ({loaded.kind})")
    frames = [score_block(loaded, p, responses, batch_size, progress) for p in prompts]
    progress.close()
    return pd.concat(frames, ignore_index=True)

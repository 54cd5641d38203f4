"""Implicit reward between two language models (the paper's "MWLR"): the join and the arithmetic.

For a prompt, model 1 (``p``) and model 2 (``q``) each give a full next-token distribution. Their
vocabularies differ, so both are keyed by the decoded string of each token: when several token ids
decode to the same string, the one with the higher log-prob is kept. The two tables are joined on
that string (strings in both vocabularies only), and

    log_ratio(y) = log q(y) - log p(y)                      (nats)
    MWLR(y)      = 0.5 * (p(y) + q(y)) * log_ratio(y)       (nats, probability-weighted)

so MWLR > 0 means model 2 favours ``y`` more than model 1 does, weighted by how likely ``y`` is
under either model at all.

The empty decoded string is dropped before the join (as the paper's scripts drop it).

Optionally, case and whitespace variants (``" Love"``, ``"love"``, ``"LOVE"``) are merged to one
key (stripped, lowercased) after the join: ``merge="mean"`` is the paper's Fig 3 procedure, the
mean of the variants' MWLR values (and of their log-ratios; ``logp``/``logq`` are then the mean
log-probs, for reference: MWLR of averaged log-probs is a different, smaller-weighted number);
``merge="sum"`` adds their probabilities (log-sum-exp: the probability of emitting the word in any
of those surface forms) and takes MWLR of those. ``"sum"`` suits two models whose prompt formats
differ (an instruct model answers after a newline, ``"Love"``; a pretrained model continues the
raw prompt, ``" Love"``).

``lexicon_logprob_scores`` reads a lexicon word's log-prob for Stage 2 in one of two modes:
``variants`` (the best of the tokens that decode to the word after stripping and lowercasing) or
``exact`` (the paper's: only a token that decodes to exactly the word counts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analyses.inputs.lexicon import Lexicon
from analyses.stats.contrast import CategoryPair, Contrast, category_words, contrast_by
from interp.errors import UserError
from interp.score_rows import score_rows

MERGE_MODES = ("none", "mean", "sum")
WORD_MATCH = ("variants", "exact")
WORDLIKE = re.compile(r"^[a-z][a-z'\-]*$")


# ------------------------------------------------------------------ core arithmetic
def mwlr(logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """``0.5 * (p + q) * (log q - log p)`` elementwise; inputs are natural-log probabilities."""
    logp = np.asarray(logp, dtype=np.float64)
    logq = np.asarray(logq, dtype=np.float64)
    return 0.5 * (np.exp(logp) + np.exp(logq)) * (logq - logp)


def dedupe_by_string(strings: Sequence[str], logprobs: np.ndarray) -> pd.DataFrame:
    """One row per distinct decoded string, keeping the token with the highest log-prob.

    ``strings[i]`` is the decoded token ``i``; ``logprobs`` is ``[vocab]``. Returns columns
    ``response, logprob, token_id`` (ties keep the lowest id).
    """
    logprobs = np.asarray(logprobs, dtype=np.float64)
    if len(strings) != len(logprobs):
        raise ValueError(f"{len(strings)} strings for {len(logprobs)} log-probs")
    df = pd.DataFrame(
        {"response": list(strings), "logprob": logprobs, "token_id": np.arange(len(strings))}
    )
    df = df.sort_values(["logprob", "token_id"], ascending=[False, True], kind="stable")
    return df.drop_duplicates("response", keep="first").reset_index(drop=True)


def merge_key(response: str) -> str:
    """Key of the case/whitespace merge: stripped and lowercased."""
    return response.strip().lower()


def join_distributions(
    strings_p: Sequence[str],
    logp: np.ndarray,
    strings_q: Sequence[str],
    logq: np.ndarray,
    merge: str = "none",
) -> pd.DataFrame:
    """Join two next-token distributions on decoded string and compute the implicit reward.

    Returns columns ``response, logp, logq, token_id_p, token_id_q, log_ratio, mwlr`` (with
    ``merge != "none"``: ``response`` is the merge key, ``n_variants`` counts the joined strings
    merged into it and the token ids are those of the most probable variant).
    """
    if merge not in MERGE_MODES:
        raise UserError(f"merge {merge!r}: use one of {', '.join(MERGE_MODES)}")
    a = dedupe_by_string(strings_p, logp).rename(
        columns={"logprob": "logp", "token_id": "token_id_p"}
    )
    b = dedupe_by_string(strings_q, logq).rename(
        columns={"logprob": "logq", "token_id": "token_id_q"}
    )
    joined = a.merge(b, on="response", how="inner")
    joined = joined[joined["response"] != ""]
    joined["log_ratio"] = joined["logq"] - joined["logp"]
    joined["mwlr"] = mwlr(joined["logp"].to_numpy(), joined["logq"].to_numpy())
    if merge != "none":
        joined["key"] = joined["response"].map(merge_key)
        joined = joined[joined["key"] != ""]
        agg = "mean" if merge == "mean" else _logsumexp
        grouped = joined.groupby("key", sort=False)
        merged = grouped.agg(logp=("logp", agg), logq=("logq", agg), n_variants=("logp", "size"),
                             mwlr_mean=("mwlr", "mean"))  # fmt: skip
        best_p = joined.loc[grouped["logp"].idxmax(), ["key", "token_id_p"]].set_index("key")
        best_q = joined.loc[grouped["logq"].idxmax(), ["key", "token_id_q"]].set_index("key")
        joined = merged.join(best_p).join(best_q).reset_index().rename(columns={"key": "response"})
        joined["log_ratio"] = joined["logq"] - joined["logp"]
        joined["mwlr"] = (
            joined["mwlr_mean"]
            if merge == "mean"
            else mwlr(joined["logp"].to_numpy(), joined["logq"].to_numpy())
        )
        joined = joined.drop(columns="mwlr_mean")
    return joined.reset_index(drop=True)


def _logsumexp(values: pd.Series) -> float:
    v = values.to_numpy(dtype=np.float64)
    m = v.max()
    return float(m + np.log(np.exp(v - m).sum()))


# ------------------------------------------------------------------ with models
def decoded_vocabulary(tokenizer, size: int) -> list[str]:
    """Decoded string of every token id ``0 .. size-1`` (ids past the tokenizer's length: "")."""
    n = min(size, len(tokenizer))
    strings = tokenizer.batch_decode([[i] for i in range(n)])
    return strings + [""] * (size - n)


def _group_reduce(
    values: np.ndarray, codes: np.ndarray, n_groups: int, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce the columns of ``values`` [n_rows, n] by group ``codes`` [n] (0..n_groups-1).

    ``how``: ``max`` (with the column index of the first maximum), ``mean`` or ``logsumexp``.
    Returns ``(reduced [n_rows, n_groups], argmax column [n_rows, n_groups])``.
    """
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    if len(starts) != n_groups:
        raise ValueError("every group needs at least one member")
    v = values[:, order]
    gmax = np.maximum.reduceat(v, starts, axis=1)
    counts = np.diff(np.r_[starts, len(order)])
    expanded = np.repeat(gmax, counts, axis=1)
    cols = np.where(v == expanded, order[None, :], np.iinfo(np.int64).max)
    first = np.minimum.reduceat(cols, starts, axis=1)
    if how == "max":
        return gmax, first
    if how == "mean":
        return np.add.reduceat(v, starts, axis=1) / counts, first
    if how == "logsumexp":
        with np.errstate(invalid="ignore"):
            shifted = np.exp(v - expanded)
        return gmax + np.log(np.add.reduceat(shifted, starts, axis=1)), first
    raise ValueError(how)


@dataclass(frozen=True)
class VocabularyJoin:
    """The join of two decoded vocabularies, computed once and applied to many prompts.

    ``code_p[i]`` is the index in ``strings`` of model 1's token ``i`` (-1: not in both), the
    same for ``code_q``; ``strings`` are the decoded strings both vocabularies contain.
    """

    strings: np.ndarray
    code_p: np.ndarray
    code_q: np.ndarray

    @classmethod
    def build(cls, strings_p: Sequence[str], strings_q: Sequence[str]) -> VocabularyJoin:
        up, inv_p = np.unique(np.asarray(strings_p, dtype=object).astype(str), return_inverse=True)
        uq, inv_q = np.unique(np.asarray(strings_q, dtype=object).astype(str), return_inverse=True)
        shared, ip, iq = np.intersect1d(up, uq, assume_unique=True, return_indices=True)
        keep = shared != ""  # the empty decoded string is dropped
        shared, ip, iq = shared[keep], ip[keep], iq[keep]
        map_p = np.full(len(up), -1)
        map_p[ip] = np.arange(len(shared))
        map_q = np.full(len(uq), -1)
        map_q[iq] = np.arange(len(shared))
        return cls(shared.astype(object), map_p[inv_p], map_q[inv_q])

    def _side(self, logprobs: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = np.flatnonzero(codes >= 0)
        best, arg = _group_reduce(
            np.asarray(logprobs, dtype=np.float64)[:, keep], codes[keep], len(self.strings), "max"
        )
        return best, keep[arg]

    def apply(
        self, logp: np.ndarray, logq: np.ndarray, merge: str = "none"
    ) -> dict[str, np.ndarray]:
        """Joined arrays for ``logp`` [n_prompts, vocab_p] and ``logq`` [n_prompts, vocab_q].

        Returns ``response`` [n_keys] and ``logp, logq, mwlr, token_id_p, token_id_q,
        n_variants`` [n_prompts, n_keys]; the same numbers as ``join_distributions`` prompt by
        prompt.
        """
        if merge not in MERGE_MODES:
            raise UserError(f"merge {merge!r}: use one of {', '.join(MERGE_MODES)}")
        lp, tp = self._side(np.atleast_2d(logp), self.code_p)
        lq, tq = self._side(np.atleast_2d(logq), self.code_q)
        ones = np.ones_like(lp, dtype=np.int64)
        if merge == "none":
            return {"response": self.strings, "logp": lp, "logq": lq, "mwlr": mwlr(lp, lq),
                    "token_id_p": tp, "token_id_q": tq, "n_variants": ones}  # fmt: skip
        keys = np.array([merge_key(x) for x in self.strings], dtype=object)
        keep = np.flatnonzero(keys != "")
        ukeys, codes = np.unique(keys[keep].astype(str), return_inverse=True)
        how = "mean" if merge == "mean" else "logsumexp"
        mp, ap = _group_reduce(lp[:, keep], codes, len(ukeys), how)
        mq, aq = _group_reduce(lq[:, keep], codes, len(ukeys), how)
        rows = np.arange(lp.shape[0])[:, None]
        counts = np.bincount(codes, minlength=len(ukeys))
        if merge == "mean":  # the mean of the variants' MWLR values (the paper's Fig 3)
            value, _ = _group_reduce(mwlr(lp[:, keep], lq[:, keep]), codes, len(ukeys), "mean")
        else:
            value = mwlr(mp, mq)
        return {
            "response": ukeys.astype(object),
            "logp": mp,
            "logq": mq,
            "mwlr": value,
            "token_id_p": tp[:, keep][rows, ap],
            "token_id_q": tq[:, keep][rows, aq],
            "n_variants": np.broadcast_to(counts, mp.shape),
        }


def joined_table(
    prompts: Sequence,
    strings: tuple[Sequence[str], Sequence[str]],
    logprobs: tuple[np.ndarray, np.ndarray],
    merge: str = "none",
    join: VocabularyJoin | None = None,
) -> pd.DataFrame:
    """The implicit-reward table for every prompt (vectorised ``join_distributions``).

    ``logprobs`` are ``[n_prompts, vocab]`` of model 1 and model 2, ``strings`` their decoded
    vocabularies (``join`` may pass their precomputed join). One row per (prompt, response) with
    ``prompt_key, framing, response, logp, logq, token_id_p, token_id_q, n_variants, log_ratio,
    mwlr``.
    """
    join = join or VocabularyJoin.build(strings[0], strings[1])
    arrays = join.apply(logprobs[0], logprobs[1], merge)
    n_prompts, n_keys = arrays["logp"].shape
    table = pd.DataFrame(
        {
            "prompt_key": np.repeat([p.key for p in prompts], n_keys),
            "framing": np.repeat([p.framing for p in prompts], n_keys),
            "response": np.tile(arrays["response"], n_prompts),
            "logp": arrays["logp"].ravel(),
            "logq": arrays["logq"].ravel(),
            "token_id_p": arrays["token_id_p"].ravel(),
            "token_id_q": arrays["token_id_q"].ravel(),
            "n_variants": np.asarray(arrays["n_variants"]).ravel(),
        }
    )
    table["log_ratio"] = table["logq"] - table["logp"]
    table["mwlr"] = np.asarray(arrays["mwlr"]).ravel()
    return table


def join_categories(table: pd.DataFrame, lexicon: Lexicon) -> pd.DataFrame:
    """Add ``category`` ("|"-joined lexicon categories of the stripped, lowercased response)."""
    keys = table["response"].map(merge_key)
    cats = {k: "|".join(lexicon.match(k)) for k in keys.unique() if WORDLIKE.match(k)}
    return table.assign(category=keys.map(cats).fillna(""))


# ------------------------------------------------------------------ category contrast
def lexicon_word_means(
    table: pd.DataFrame, lexicon: Lexicon, values: Sequence[str] = ("mwlr",)
) -> pd.DataFrame:
    """Per (framing, word, category): the mean of each of ``values`` over prompts; framing
    ``all`` pools every prompt.

    Words are stripped, lowercased responses that belong to exactly one lexicon category.
    """
    t = join_categories(table, lexicon)
    t = t[(t["category"] != "") & ~t["category"].str.contains("|", regex=False)]
    t = t.assign(word=t["response"].map(merge_key))
    cols = list(values)
    per_framing = t.groupby(["framing", "word", "category"], as_index=False)[cols].mean()
    pooled = t.groupby(["word", "category"], as_index=False)[cols].mean().assign(framing="all")
    return pd.concat([per_framing, pooled], ignore_index=True)


def category_contrasts(
    means: pd.DataFrame,
    pair: CategoryPair,
    value: str = "mwlr",
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[Contrast, ...]:
    """``pair.first - pair.second`` of word means (``lexicon_word_means``) per framing and
    pooled (``all``), Bonferroni-corrected over the framings (``analyses.stats.contrast``)."""
    if means.empty:
        raise UserError("no lexicon word is among the joined strings")
    present = set(means["category"])
    missing = [c for c in pair if c not in present]
    if missing:
        raise UserError(f"no joined string belongs to category {', '.join(missing)}")
    words_table = means.rename(columns={"word": "response"})
    words = category_words(words_table, pair)
    framings = [f for f in ("positive", "negative", "none", "all") if f in set(means["framing"])]
    return contrast_by(
        words_table, words, value=value, by="framing", subsets=framings, pooled=None,
        n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip


# ------------------------------------------------------------------ LM score tables
def lexicon_logprob_scores(
    loaded, prompts: Sequence, logprobs: np.ndarray, lexicon: Lexicon, match: str = "variants"
) -> pd.DataFrame:
    """Score table (kind ``lm``) of the lexicon's single-token words for one model.

    ``match="variants"``: a word's score is the highest log-prob among the tokens that decode to
    it after stripping and lowercasing (``" Love"``, ``"love"``, ...); ``match="exact"`` (the
    paper's Fig 2): only tokens that decode to exactly the word. ``token_id`` is the token used.
    Input for Stage 2.
    """
    if match not in WORD_MATCH:
        raise UserError(f"word match {match!r}: use one of {', '.join(WORD_MATCH)}")
    strings = decoded_vocabulary(loaded.tokenizer, logprobs.shape[1])
    keys = pd.Series([merge_key(s) if match == "variants" or merge_key(s) == s else ""
                      for s in strings])  # fmt: skip
    cats = {k: lexicon.match(k) for k in keys.unique() if WORDLIKE.match(k)}
    ids = np.array([i for i, k in enumerate(keys) if cats.get(k)])
    if len(ids) == 0:
        raise UserError(f"no word of lexicon {lexicon.name} is a single token of {loaded.name}")
    frames = []
    for i, prompt in enumerate(prompts):
        best = pd.DataFrame({"response": keys.iloc[ids].to_numpy(), "token_id": ids,
                             "score": logprobs[i, ids].astype(np.float64)})  # fmt: skip
        best = best.sort_values("score", ascending=False).drop_duplicates("response")
        frames.append(
            score_rows(
                model=loaded.name,
                family=loaded.family,
                kind="lm",
                prompt=prompt,
                responses=best["response"].tolist(),
                scores=best["score"].to_numpy(),
                token_ids=best["token_id"].tolist(),
            )  # fmt: skip
        )
    return pd.concat(frames, ignore_index=True)

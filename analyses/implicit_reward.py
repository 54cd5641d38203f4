"""Implicit reward between two language models (the paper's "MWLR"), and the demo's statistics.

For a prompt, model 1 (``p``) and model 2 (``q``) each give a full next-token distribution. Their
vocabularies differ, so both are keyed by the decoded string of each token: when several token ids
decode to the same string, the one with the higher log-prob is kept. The two tables are joined on
that string (strings in both vocabularies only), and

    log_ratio(y) = log q(y) - log p(y)                      (nats)
    MWLR(y)      = 0.5 * (p(y) + q(y)) * log_ratio(y)       (nats, probability-weighted)

so MWLR > 0 means model 2 favours ``y`` more than model 1 does, weighted by how likely ``y`` is
under either model at all.

Optionally, case and whitespace variants (``" Love"``, ``"love"``, ``"LOVE"``) are merged to one
key (stripped, lowercased) after the join: ``merge="mean"`` averages their log-probs (per model),
``merge="sum"`` adds their probabilities (log-sum-exp: the probability of emitting the word in any
of those surface forms). ``"sum"`` suits two models whose prompt formats differ (an instruct model
answers after a newline, ``"Love"``; a pretrained model continues the raw prompt, ``" Love"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyses.errors import UserError
from analyses.lexicons import Lexicon
from analyses.provenance import json_safe, provenance
from analyses.stats_tests import bonferroni, bootstrap_ci, cohens_d, permutation_welch_test
from interp.progress import NoProgress, Progress

MERGE_MODES = ("none", "mean", "sum")
DEMO_MODELS = ("smollm2-135m-instruct", "gemma3-270m")
_WORDLIKE = re.compile(r"^[a-z][a-z'\-]*$")


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
    if merge != "none":
        joined["key"] = joined["response"].map(merge_key)
        joined = joined[joined["key"] != ""]
        agg = "mean" if merge == "mean" else _logsumexp
        grouped = joined.groupby("key", sort=False)
        merged = grouped.agg(logp=("logp", agg), logq=("logq", agg), n_variants=("logp", "size"))
        best_p = joined.loc[grouped["logp"].idxmax(), ["key", "token_id_p"]].set_index("key")
        best_q = joined.loc[grouped["logq"].idxmax(), ["key", "token_id_q"]].set_index("key")
        joined = merged.join(best_p).join(best_q).reset_index().rename(columns={"key": "response"})
    joined["log_ratio"] = joined["logq"] - joined["logp"]
    joined["mwlr"] = mwlr(joined["logp"].to_numpy(), joined["logq"].to_numpy())
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

        Returns ``response`` [n_keys] and ``logp, logq, token_id_p, token_id_q, n_variants``
        [n_prompts, n_keys]; the same numbers as ``join_distributions`` prompt by prompt.
        """
        if merge not in MERGE_MODES:
            raise UserError(f"merge {merge!r}: use one of {', '.join(MERGE_MODES)}")
        lp, tp = self._side(np.atleast_2d(logp), self.code_p)
        lq, tq = self._side(np.atleast_2d(logq), self.code_q)
        ones = np.ones_like(lp, dtype=np.int64)
        if merge == "none":
            return {"response": self.strings, "logp": lp, "logq": lq, "token_id_p": tp,
                    "token_id_q": tq, "n_variants": ones}  # fmt: skip
        keys = np.array([merge_key(x) for x in self.strings], dtype=object)
        keep = np.flatnonzero(keys != "")
        ukeys, codes = np.unique(keys[keep].astype(str), return_inverse=True)
        how = "mean" if merge == "mean" else "logsumexp"
        mp, ap = _group_reduce(lp[:, keep], codes, len(ukeys), how)
        mq, aq = _group_reduce(lq[:, keep], codes, len(ukeys), how)
        rows = np.arange(lp.shape[0])[:, None]
        counts = np.bincount(codes, minlength=len(ukeys))
        return {
            "response": ukeys.astype(object),
            "logp": mp,
            "logq": mq,
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
    table["mwlr"] = mwlr(table["logp"].to_numpy(), table["logq"].to_numpy())
    return table


def implicit_reward_table(
    model_1,
    model_2,
    prompts: Sequence,
    merge: str = "none",
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Implicit reward of model 2 over model 1 for every joined string and prompt.

    ``model_1``/``model_2``: ``interp.loading.LoadedModel`` loaded as LMs; ``prompts``: objects
    with ``key``, ``text``, ``framing`` (``analyses.prompts.Prompt``). Returns one row per
    (prompt, response) with ``prompt_key, framing`` and the columns of ``join_distributions``.
    """
    from interp.scoring import next_token_logprobs

    progress = progress or NoProgress()
    texts = [p.text for p in prompts]
    lps = []
    for m in (model_1, model_2):
        progress.note(f"next-token log-probs of {m.name} on {len(texts)} prompts")
        lps.append(next_token_logprobs(m, texts).numpy())
    strings = (
        decoded_vocabulary(model_1.tokenizer, lps[0].shape[1]),
        decoded_vocabulary(model_2.tokenizer, lps[1].shape[1]),
    )
    return joined_table(prompts, strings, (lps[0], lps[1]), merge)


def join_categories(table: pd.DataFrame, lexicon: Lexicon) -> pd.DataFrame:
    """Add ``category`` ("|"-joined lexicon categories of the stripped, lowercased response)."""
    keys = table["response"].map(merge_key)
    cats = {k: "|".join(lexicon.match(k)) for k in keys.unique() if _WORDLIKE.match(k)}
    return table.assign(category=keys.map(cats).fillna(""))


# ------------------------------------------------------------------ category comparison
@dataclass(frozen=True)
class CategoryComparison:
    """Implicit reward of category B words vs category A words (unit: a word, averaged over the
    prompts of ``framing``). ``t``, ``d`` and the CI are for mean(B) - mean(A) of ``value``."""

    value: str
    framing: str
    category_a: str
    category_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p: float
    p_bonferroni: float
    d: float
    n_permutations: int


def word_means(table: pd.DataFrame, lexicon: Lexicon, value: str = "mwlr") -> pd.DataFrame:
    """Per (framing, word, category): mean of ``value`` over prompts; framing "all" pools them.

    Words are stripped, lowercased responses that belong to exactly one category (words in two
    categories are left out so the comparison's groups do not overlap).
    """
    t = join_categories(table, lexicon)
    t = t[(t["category"] != "") & ~t["category"].str.contains("|", regex=False)]
    t = t.assign(word=t["response"].map(merge_key))
    per_framing = t.groupby(["framing", "word", "category"], as_index=False)[value].mean()
    pooled = t.groupby(["word", "category"], as_index=False)[value].mean().assign(framing="all")
    return pd.concat([per_framing, pooled], ignore_index=True)


def compare_categories(
    table: pd.DataFrame,
    lexicon: Lexicon,
    categories: tuple[str, str] = ("Agency", "Communion"),
    value: str = "mwlr",
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> tuple[CategoryComparison, ...]:
    """Permutation Welch t-test of category B vs A word means, per framing and pooled ("all").

    Bonferroni correction over the framings tested. Raises ``UserError`` when a category has
    fewer than two words in the joined vocabulary.
    """
    ca, cb = categories
    for c in categories:
        if c not in lexicon.categories:
            raise UserError(f"lexicon {lexicon.name} has no category {c!r}")
    means = word_means(table, lexicon, value)
    if means.empty:
        raise UserError(f"no word of lexicon {lexicon.name} is among the joined strings")
    raw = []
    framings = [f for f in ("positive", "negative", "none", "all") if f in set(means["framing"])]
    for i, framing in enumerate(framings):
        sub = means[means["framing"] == framing]
        a = sub.loc[sub["category"] == ca, value].to_numpy(float)
        b = sub.loc[sub["category"] == cb, value].to_numpy(float)
        if len(a) < 2 or len(b) < 2:
            raise UserError(
                f"too few {ca} ({len(a)}) or {cb} ({len(b)}) words in both vocabularies to compare"
            )
        rng = np.random.default_rng([seed, i])
        test = permutation_welch_test(b, a, n_permutations=n_permutations, seed=rng)
        boot = bootstrap_ci(b, a, n_bootstrap=n_bootstrap, seed=rng)
        raw.append((framing, a, b, test, boot))
    adj = bonferroni([r[3].p for r in raw])
    return tuple(
        CategoryComparison(
            value=value,
            framing=framing,
            category_a=ca,
            category_b=cb,
            n_a=len(a),
            n_b=len(b),
            mean_a=float(a.mean()),
            mean_b=float(b.mean()),
            diff=float(b.mean() - a.mean()),
            ci_low=boot.diff_low,
            ci_high=boot.diff_high,
            t=test.t,
            df=test.df,
            p=test.p,
            p_bonferroni=float(q),
            d=cohens_d(b, a),
            n_permutations=test.n_permutations,
        )
        for (framing, a, b, test, boot), q in zip(raw, adj, strict=True)
    )


# ------------------------------------------------------------------ LM score tables
def lexicon_logprob_scores(
    loaded, prompts: Sequence, logprobs: np.ndarray, lexicon: Lexicon
) -> pd.DataFrame:
    """Score table (kind ``lm``) of the lexicon's single-token words for one model.

    A word's score is the highest log-prob among the tokens that decode to it after stripping and
    lowercasing (``" Love"``, ``"love"``, ...); ``token_id`` is that token. Input for Stage 2.
    """
    strings = decoded_vocabulary(loaded.tokenizer, logprobs.shape[1])
    keys = pd.Series([merge_key(s) for s in strings])
    cats = {k: lexicon.match(k) for k in keys.unique() if _WORDLIKE.match(k)}
    ids = np.array([i for i, k in enumerate(keys) if cats.get(k)])
    if len(ids) == 0:
        raise UserError(f"no word of lexicon {lexicon.name} is a single token of {loaded.name}")
    frames = []
    for i, prompt in enumerate(prompts):
        df = pd.DataFrame({"response": keys.iloc[ids].to_numpy(), "token_id": ids,
                           "score": logprobs[i, ids].astype(np.float64)})  # fmt: skip
        df = df.sort_values("score", ascending=False).drop_duplicates("response")
        df = df.assign(model=loaded.name, family=loaded.family, kind="lm", prompt_key=prompt.key,
                       prompt=prompt.text, framing=prompt.framing)  # fmt: skip
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------ run + demo
@dataclass(frozen=True)
class ImplicitRewardRun:
    """What ``run_implicit_reward`` wrote, and its headline comparison."""

    out_dir: Path
    files: tuple[Path, ...]
    comparisons: tuple[CategoryComparison, ...]  # MWLR, then the raw log-ratio
    summary: dict[str, Any] = field(repr=False)

    def headline(self) -> str:
        lines = []
        for c in self.comparisons:
            lines.append(
                f"{c.value} [{c.framing}] {c.category_b} - {c.category_a} = {c.diff:+.3g} "
                f"(95% CI {c.ci_low:+.3g}..{c.ci_high:+.3g}), t={c.t:.2f}, "
                f"p_perm={c.p:.3g}, p_bonf={c.p_bonferroni:.3g}, d={c.d:+.2f}, "
                f"n={c.n_a}+{c.n_b}"
            )
        return "\n".join(lines)


def run_implicit_reward(
    model_1: str,
    model_2: str,
    out_dir: str | Path,
    prompts: str = "paper54",
    lexicon: str = "big2",
    merge: str = "sum",
    drop_pronouns: bool = True,
    categories: tuple[str, str] = ("Agency", "Communion"),
    top_k: int = 20,
    n_permutations: int = 10_000,
    n_bootstrap: int = 2000,
    seed: int = 0,
    figures: bool = True,
    device: str | None = None,
    progress: Progress | None = None,
) -> ImplicitRewardRun:
    """Implicit reward of ``model_2`` (q) over ``model_1`` (p) on a prompt set, with statistics.

    Writes to ``out_dir``: ``implicit_reward.parquet`` (every prompt x joined string, unmerged,
    with lexicon categories), ``word_means.csv``, ``top_bottom.csv/.png/.svg`` (top-k and
    bottom-k strings by mean MWLR, word-like strings only), ``comparison.csv`` and
    ``summary.json`` (category comparison for ``merge`` and, for reference, the other merge
    modes), the two models' lexicon log-prob score tables and their Stage-2 statistics under
    ``stage2/``, and figures. Every file set is described in ``summary.json`` with provenance.
    """
    from analyses import figures as figs
    from analyses.lexicons import load_lexicon
    from analyses.prompts import load_prompts
    from analyses.score_table import write_score_table
    from analyses.stats import stage2, write_stage2
    from interp.loading import ModelSpec, load_model
    from interp.scoring import next_token_logprobs

    progress = progress or NoProgress()
    if merge not in MERGE_MODES:
        raise UserError(f"--merge {merge!r}: use one of {', '.join(MERGE_MODES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompt_list = load_prompts(prompts)
    lex = load_lexicon(lexicon, progress=progress)
    if drop_pronouns:
        lex = lex.drop_pronouns()
    loaded = []
    for name in (model_1, model_2):
        progress.note(f"loading {name}")
        loaded.append(load_model(ModelSpec(name, kind="lm", device=device)))
    m1, m2 = loaded
    texts = [p.text for p in prompt_list]
    logprobs = []
    for m in loaded:
        progress.note(f"next-token log-probs of {m.name} on {len(texts)} prompts")
        logprobs.append(next_token_logprobs(m, texts).numpy())
    strings = [
        decoded_vocabulary(m.tokenizer, lp.shape[1]) for m, lp in zip(loaded, logprobs, strict=True)
    ]

    join = VocabularyJoin.build(strings[0], strings[1])

    def table_for(mode: str) -> pd.DataFrame:
        return joined_table(prompt_list, (strings[0], strings[1]), (logprobs[0], logprobs[1]),
                            mode, join)  # fmt: skip

    files: list[Path] = []
    progress.note(f"joining vocabularies ({len(join.strings)} shared strings) and writing tables")
    full = join_categories(table_for("none"), lex)
    small = {c: "float32" for c in ("logp", "logq", "log_ratio", "mwlr")}
    full.astype(small).to_parquet(out / "implicit_reward.parquet", index=False, compression="zstd")
    files.append(out / "implicit_reward.parquet")

    progress.note(f"{categories[0]} vs {categories[1]}: permutation tests and bootstrap")
    comparisons: dict[str, tuple[CategoryComparison, ...]] = {}
    tables: dict[str, pd.DataFrame] = {"none": full}
    for mode in dict.fromkeys([merge, *MERGE_MODES]):
        tables.setdefault(mode, table_for(mode))
        comparisons[mode] = compare_categories(
            tables[mode], lex, categories, "mwlr", n_permutations, n_bootstrap, seed
        )
    primary = tables[merge]
    ratio_cmp = compare_categories(
        primary, lex, categories, "log_ratio", n_permutations, n_bootstrap, seed
    )
    means = word_means(primary, lex, "mwlr").merge(
        word_means(primary, lex, "log_ratio"), on=["framing", "word", "category"]
    )
    means.to_csv(out / "word_means.csv", index=False)
    files.append(out / "word_means.csv")
    cmp_rows = [asdict(c) | {"merge": m} for m, cs in comparisons.items() for c in cs]
    cmp_rows += [asdict(c) | {"merge": merge} for c in ratio_cmp]
    pd.DataFrame(cmp_rows).to_csv(out / "comparison.csv", index=False)
    files.append(out / "comparison.csv")

    # top / bottom strings by MWLR averaged over prompts (word-like strings only)
    by_word = join_categories(
        primary.groupby("response", as_index=False)[["mwlr", "log_ratio"]].mean(), lex
    )
    by_word = by_word[by_word["response"].map(lambda s: bool(_WORDLIKE.match(merge_key(s))))]
    by_word = by_word.rename(columns={"response": "word"})
    if figures:
        files += figs.top_bottom_table(
            by_word, out / "top_bottom", k=top_k, value="mwlr",
            title=f"Implicit reward (MWLR, mean over {len(prompt_list)} prompts): "
            f"top = favoured by {m2.name}, bottom = by {m1.name}",
        )  # fmt: skip
        lex_words = means[(means["framing"] == "all")].copy()
        lex_words["abs"] = lex_words["mwlr"].abs()
        chosen = (
            lex_words.sort_values("abs", ascending=False)
            .groupby("category")
            .head(8)["word"]
            .tolist()
        )
        pair_rows = means[(means["framing"] != "all") & means["word"].isin(chosen)].assign(
            pair=lambda d: d["framing"] + " prompts"
        )
        files += figs.mwlr_lollipop(
            pair_rows.assign(word=pair_rows["word"] + " (" + pair_rows["category"].str[:4] + ")"),
            out / "mwlr_lollipop",
            title=f"MWLR of {m2.name} over {m1.name}: largest lexicon words",
        )
        files += figs.split_violins(
            means[means["framing"] != "all"].assign(
                model=lambda d: d["category"], category="lexicon words"
            ),
            out / "log_ratio_by_category",
            models=list(categories),
            value="log_ratio",
            ylabel=f"log q - log p per word, nats (> 0: favoured by {m2.name})",
            invert=False,
            title=f"Log-ratio {m2.name} / {m1.name} by category "
            f"(left: {categories[0]}, right: {categories[1]})",
        )
    else:
        by_word.sort_values("mwlr", ascending=False).to_csv(out / "top_bottom.csv", index=False)
        files.append(out / "top_bottom.csv")

    # Stage 2 on each model's own log-probs of the lexicon's single-token words
    progress.note("Stage 2 on both models' log-probs of the lexicon words")
    stage2_dir = out / "stage2"
    lm_scores = pd.concat(
        [
            lexicon_logprob_scores(m, prompt_list, lp, lex)
            for m, lp in zip(loaded, logprobs, strict=True)
        ],
        ignore_index=True,
    )
    prov = provenance(
        lexicon=lex, seed=seed, models=[m.provenance() for m in loaded], prompts=prompts,
        merge=merge, drop_pronouns=drop_pronouns, n_permutations=n_permutations,
        n_bootstrap=n_bootstrap,
    )  # fmt: skip
    files.append(write_score_table(lm_scores, stage2_dir / "lm_scores.parquet", prov))
    s2 = stage2(lm_scores, lex, provenance=prov)
    files += write_stage2(s2, stage2_dir)
    if figures:
        files += figs.split_violins(
            s2.median_ranks, stage2_dir / "split_violins", models=[m1.name, m2.name],
            title=f"Median rank of lexicon words by log-prob: {m1.name} (left) | {m2.name} (right)",
        )  # fmt: skip

    summary = json_safe(
        {
            "model_1": m1.name,
            "model_2": m2.name,
            "definition": "MWLR(y) = 0.5 (p(y) + q(y)) (log q(y) - log p(y)); p = model_1, q = model_2",
            "merge": merge,
            "n_prompts": len(prompt_list),
            "n_joined_strings_per_prompt": int(full.groupby("prompt_key").size().median()),
            "comparison": [asdict(c) for c in comparisons[merge]],
            "comparison_log_ratio": [asdict(c) for c in ratio_cmp],
            "comparison_other_merges": {
                m: [asdict(c) for c in cs] for m, cs in comparisons.items() if m != merge
            },
            "stage2": s2.summary(),
            "top": by_word.nlargest(top_k, "mwlr")[["word", "mwlr", "category"]].to_dict("records"),
            "bottom": by_word.nsmallest(top_k, "mwlr")[["word", "mwlr", "category"]].to_dict(
                "records"
            ),
            "provenance": prov,
        }
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    files.append(out / "summary.json")
    return ImplicitRewardRun(out, tuple(files), comparisons[merge] + ratio_cmp, summary)


def demo_stage_statistics(out_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Demo stage: implicit reward of gemma3-270m over smollm2-135m-instruct on the 54 prompts.

    Reports the agency vs communion comparison (Big Two version a, pronouns dropped) whatever
    it shows, Stage-2 statistics of both models' log-probs, and figures, under ``out_dir``.
    Returns a dict with ``files`` and ``headline`` lines for the demo report.
    """
    run = run_implicit_reward(
        DEMO_MODELS[0], DEMO_MODELS[1], out_dir, prompts="paper54", lexicon="big2",
        merge="sum", drop_pronouns=True, progress=progress,
    )  # fmt: skip
    anova = run.summary["stage2"]["anova"]
    lines = [
        f"implicit reward (MWLR) of {DEMO_MODELS[1]} over {DEMO_MODELS[0]}, 54 paper prompts, "
        "Big Two (version a, pronouns dropped), case/whitespace variants merged (sum):",
        run.headline(),
        "Stage 2 (median rank of lexicon words by log-prob), type-II ANOVA: "
        + "; ".join(
            f"{a['term']} F={a['F']:.2f} p={a['p']:.3g}" for a in anova if a["term"] != "Residual"
        ),  # fmt: skip
    ]
    return {
        "files": [str(p) for p in run.files],
        "headline": "\n".join(lines),
        "comparison": run.summary["comparison"],
        "summary": str(out_dir / "summary.json"),
    }


def parse_category_pair(text: str) -> tuple[str, str]:
    """``"Agency,Communion"`` -> ("Agency", "Communion"); ``UserError`` unless exactly two."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) != 2 or parts[0] == parts[1]:
        raise UserError(
            f"--categories {text!r}: give two different categories, e.g. Agency,Communion"
        )
    return parts[0], parts[1]

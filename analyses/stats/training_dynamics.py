"""Training dynamics: how a lexicon's ranks move over reward-model checkpoints (Fig 4, 5, A5, A6).

Input: a long table with a checkpoint axis, ``run, family, checkpoint, prompt_key, framing,
response, score`` (``inputs.training_scores`` for the paper's files; ``train-rm`` builds the same
from its own checkpoints).

- ``checkpoint_median_ranks`` (Fig 4): optionally keep only tokens of a token list, apply the
  paper's token handling (``paper_token_norm``), join the lexicon on the normalised token, rank
  one row per (token, category) within each (run, checkpoint, prompt) (rank 1 = highest score;
  the authors' rows), and take each category's median rank. ``merge_variants`` first averages
  the scores of a word's variants (Fig 5's procedure) so each word is ranked once.
- ``checkpoint_gaps``: per (run, checkpoint, framing) the mean over prompts of each category's
  median rank and the rank gap ``first - second`` (negative: the first category is preferred).
  Framings are never pooled: the effect can reverse with framing.
- ``durability_table``: ``checkpoint_gaps`` beside the word-level contrast of scores per framing
  (``analyses.stats.contrast``: difference and Cohen's d with bootstrap CIs, permutation Welch
  test, n = words) for every checkpoint; what ``train-rm`` reports.
- ``final_checkpoints`` (Fig 4b, A5b): each rank-results run's last checkpoint with the run
  manifest (data source, size, method), and its rank gap.
- ``rank_changes`` (Fig 5, A6): per normalised word, scores averaged over its variants, ranked at
  the first and the final checkpoint; ``rank_change = rank_first - rank_final`` (positive: more
  preferred late in training).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from analyses.inputs.training_scores import RunInfo, paper_token_norm
from analyses.stats.contrast import CategoryPair, category_words, contrast_by
from interp.errors import UserError

KEYS = ("run", "family", "checkpoint", "prompt_key", "framing")


def normalised_rows(
    scores: pd.DataFrame, categorise, token_list: Iterable[str] | None = None,
    merge_variants: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Scores of lexicon tokens after the paper's token handling, one row per (token, category).

    ``categorise``: a ``Lexicon`` (joined on the normalised token) or a ``response, category``
    frame. ``response`` becomes the normalised token; ``token`` keeps the raw one.
    """
    rows = scores[scores["response"].astype(str).str.len() > 0]
    if token_list is not None:
        rows = rows[rows["response"].isin(set(token_list))]
    rows = rows.assign(token=rows["response"], response=rows["response"].map(paper_token_norm))
    rows = rows[rows["response"] != ""]
    if merge_variants:
        keys = [k for k in KEYS if k in rows.columns]
        rows = rows.groupby([*keys, "response"], as_index=False, sort=False)["score"].mean()
        rows["token"] = rows["response"]
    words = rows["response"].unique()
    cats = categorise if isinstance(categorise, pd.DataFrame) else categorise.categorise(words)
    out = rows.merge(cats[["response", "category"]].drop_duplicates(), on="response")
    if out.empty:
        raise UserError("no token of the checkpoint scores belongs to the lexicon")
    return out


def checkpoint_median_ranks(
    scores: pd.DataFrame, categorise, token_list: Iterable[str] | None = None,
    merge_variants: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Median rank per (run, family, checkpoint, prompt_key, framing, category): see module
    docstring. Columns ``... , category, median_rank, n_rows, n_ranked``."""
    rows = normalised_rows(scores, categorise, token_list, merge_variants)
    keys = [k for k in KEYS if k in rows.columns]
    group = [k for k in ("run", "checkpoint", "prompt_key") if k in rows.columns]
    rows["rank"] = rows.groupby(group)["score"].rank(ascending=False, method="average")
    rows["n_ranked"] = rows.groupby(group)["score"].transform("size")
    return (
        rows.groupby([*keys, "category"], sort=True)
        .agg(
            median_rank=("rank", "median"), n_rows=("rank", "size"), n_ranked=("n_ranked", "first")
        )
        .reset_index()
    )


def checkpoint_gaps(med: pd.DataFrame, pair: CategoryPair) -> pd.DataFrame:
    """Per (run, family, checkpoint, framing): mean median rank of each category of ``pair`` over
    the framing's prompts, and ``rank_gap = first - second``."""
    present = set(med["category"])
    missing = [c for c in pair if c not in present]
    if missing:
        raise UserError(f"no lexicon token of category {', '.join(missing)} among the scores")
    keys = [k for k in ("run", "family", "checkpoint", "framing") if k in med.columns]
    sub = med[med["category"].isin(list(pair))]
    wide = sub.pivot_table(index=keys, columns="category", values="median_rank", aggfunc="mean")
    n = sub.groupby(keys)["prompt_key"].nunique() if "prompt_key" in sub else None
    out = pd.DataFrame({
        f"median_rank_{pair.first}": wide[pair.first], f"median_rank_{pair.second}": wide[pair.second],
    })  # fmt: skip
    out["rank_gap"] = out[f"median_rank_{pair.first}"] - out[f"median_rank_{pair.second}"]
    if n is not None:
        out["n_prompts"] = n
    out = out.reset_index()
    out.insert(len(keys), "gap", f"{pair.label} (median rank; negative: {pair.first} preferred)")
    return out


def durability_table(
    scores: pd.DataFrame, categories: pd.DataFrame, pair: CategoryPair, seed: int = 0,
    n_permutations: int = 2000, n_bootstrap: int = 1000,
) -> pd.DataFrame:  # fmt: skip
    """Per checkpoint and framing: the rank gap and the word-level contrast of scores.

    ``scores``: ``run, family, checkpoint, prompt_key, framing, response, score``;
    ``categories``: ``response, category`` of the words. Rows carry the contrast columns of
    ``Contrast.row`` (``framing``, ``difference``, ``d`` with CIs, ``p``, ...) plus
    ``median_rank_<first>``, ``median_rank_<second>`` and ``rank_gap``.
    """
    gaps = checkpoint_gaps(checkpoint_median_ranks(scores, categories), pair)
    words = category_words(categories, pair, list(dict.fromkeys(scores["response"])))
    rows = []
    for (run, checkpoint), table in scores.groupby(["run", "checkpoint"], sort=True):
        framings = [f for f in ("positive", "negative", "none") if f in set(table["framing"])]
        contrasts = contrast_by(
            table, words, value="score", by="framing", subsets=framings, pooled=None,
            correction="none", n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed,
        )  # fmt: skip
        for c in contrasts:
            rows.append({"run": run, "checkpoint": checkpoint} | c.row(by="framing"))
    contrast = pd.DataFrame(rows)
    gaps = gaps.drop(columns="n_prompts", errors="ignore")  # the contrast rows carry it too
    return gaps.merge(contrast, on=["run", "checkpoint", "framing"], how="outer")


def final_checkpoints(
    results: pd.DataFrame, manifest: tuple[RunInfo, ...], pair: CategoryPair
) -> pd.DataFrame:
    """Each (file, run)'s last checkpoint: its median ranks, the gap and the manifest entry."""
    info = pd.DataFrame([r.__dict__ for r in manifest])
    last = results.loc[results.groupby(["file", "run"])["checkpoint"].transform("max")
                       == results["checkpoint"]]  # fmt: skip
    wide = last.pivot_table(index=["file", "run", "family", "checkpoint"], columns="category",
                            values="median_rank", aggfunc="mean").reset_index()  # fmt: skip
    if pair.first in wide and pair.second in wide:
        wide["rank_gap"] = wide[pair.first] - wide[pair.second]
    out = wide.merge(info, on="file", how="left")
    out["in_manifest"] = out["data_source"].notna()
    return out


def rank_changes(
    scores: pd.DataFrame, categorise, first: int | None = None, final: int | None = None
) -> pd.DataFrame:
    """Fig 5: per run and normalised word, rank at the first and final checkpoint and the change
    (``rank_first - rank_final``; positive: preferred more late in training)."""
    rows = normalised_rows(scores, categorise, merge_variants=True)
    rows = rows.drop_duplicates(["run", "checkpoint", "response"])  # one category per word
    out = []
    for run, g in rows.groupby("run", sort=True):
        steps = sorted(g["checkpoint"].unique())
        a = first if first is not None else steps[0]
        b = final if final is not None else steps[-1]
        if a not in steps or b not in steps or a == b:
            raise UserError(f"run {run}: needs two checkpoints {a} and {b} among {steps}")
        ranks = g[g["checkpoint"].isin([a, b])].copy()
        ranks["rank"] = ranks.groupby("checkpoint")["score"].rank(ascending=False)
        wide = ranks.pivot_table(index=["response", "category"], columns="checkpoint",
                                 values="rank").reset_index()  # fmt: skip
        wide = wide.rename(columns={a: "rank_first", b: "rank_final"})
        wide["rank_change"] = wide["rank_first"] - wide["rank_final"]
        out.append(wide.assign(run=run, first_checkpoint=a, final_checkpoint=b))
    table = pd.concat(out, ignore_index=True).rename(columns={"response": "word"})
    return table.sort_values(["run", "rank_change"], ascending=[True, False]).reset_index(drop=True)

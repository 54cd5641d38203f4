"""Ranks of lexicon words within each (model, prompt) and median ranks per category.

This is the first step of both of the paper's analyses. Within one model and one prompt, every
response that belongs to the lexicon is ranked by score, rank 1 = highest score, ties get the
average rank. Responses outside the lexicon are dropped before ranking, so ranks run from 1 to the
number of lexicon words that model was scored on. A response in several categories is ranked once
and then counted in each of its categories, unless a ``Coding`` ranks entries (the paper's MFD
coding: one row per (response, marked category), see ``analyses.stats.coding``).

``word_forms`` chooses which surface forms of a word stand for it (``exact``: only responses that
already are the lowercase, stripped word; ``merged``: case/whitespace variants merged, best score
kept; ``all``: every variant ranked as its own response).
"""

from __future__ import annotations

import pandas as pd

from analyses.inputs.lexicon import Lexicon, normalise_pattern
from analyses.stats.coding import Coding, plain_coding
from interp.errors import UserError

WORD_FORMS = ("all", "exact", "merged")

RANK_KEYS = ("model", "prompt_key")
MEDIAN_KEYS = ("model", "family", "prompt_key", "framing", "category")


def word_forms(scores: pd.DataFrame, mode: str = "all") -> pd.DataFrame:
    """Score rows for the surface forms ``mode`` keeps (see module docstring).

    ``merged`` replaces every response by its stripped, lowercased form and keeps, per (model,
    prompt, form), the row with the highest score.
    """
    if mode not in WORD_FORMS:
        raise UserError(f"word forms {mode!r}: use one of {', '.join(WORD_FORMS)}")
    if mode == "all":
        return scores
    norm = scores["response"].map(normalise_pattern)
    if mode == "exact":
        return scores[scores["response"] == norm]
    merged = scores.assign(response=norm).sort_values("score", ascending=False, kind="stable")
    return merged.drop_duplicates(["model", "prompt_key", "response"]).sort_index()


def categorised_scores(
    scores: pd.DataFrame, lexicon: Lexicon, coding: Coding | None = None
) -> pd.DataFrame:
    """Score rows of lexicon words, one row per (score row, category), with ``rank`` added.

    ``scores`` is a score table (``analyses.inputs.score_table``). ``coding`` (default: the
    lexicon as it is) says which categories are analysed and whether words or entries are
    ranked. Raises ``UserError`` on duplicate (model, prompt_key, response) rows or when no
    response belongs to the lexicon.
    """
    dup = scores.duplicated(["model", "prompt_key", "response"])
    if dup.any():
        row = scores.loc[dup].iloc[0]
        raise UserError(
            f"score table has {int(dup.sum())} duplicate (model, prompt, response) row(s), "
            f"e.g. {row['model']} / {row['prompt_key']} / {row['response']!r}"
        )
    coding = coding or plain_coding(lexicon)
    cats = coding.categorise(scores["response"].unique())
    if cats.empty:
        raise UserError(f"no response in the score table belongs to lexicon {lexicon.name}")
    if coding.rank_over == "entry":  # the paper's rows: rank (response, source category) pairs
        rows = scores.merge(cats, on="response", how="inner", validate="many_to_many")
        rows["rank"] = rows.groupby(list(RANK_KEYS), sort=False)["score"].rank(
            ascending=False, method="average"
        )
        rows["n_ranked"] = rows.groupby(list(RANK_KEYS), sort=False)["score"].transform("size")
        return rows
    words = scores[scores["response"].isin(cats["response"])].copy()
    words["rank"] = words.groupby(list(RANK_KEYS), sort=False)["score"].rank(
        ascending=False, method="average"
    )
    words["n_ranked"] = words.groupby(list(RANK_KEYS), sort=False)["score"].transform("size")
    return words.merge(cats, on="response", how="inner", validate="many_to_many")


def median_ranks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Median rank per (model, family, prompt_key, framing, category).

    Returns columns ``model, family, prompt_key, framing, category, median_rank, n_words``.
    """
    g = ranked.groupby(list(MEDIAN_KEYS), sort=True, observed=True)["rank"]
    out = g.agg(median_rank="median", n_words="size").reset_index()
    return out


def check_complete_design(med: pd.DataFrame) -> None:
    """Every model must have the same prompts and every category; else a clear ``UserError``."""
    prompts = {m: set(g["prompt_key"]) for m, g in med.groupby("model")}
    all_prompts = set().union(*prompts.values())
    for model, keys in prompts.items():
        if keys != all_prompts:
            missing = sorted(all_prompts - keys)
            raise UserError(
                f"model {model} has no scores for prompt(s) {', '.join(missing[:6])}"
                + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            )
    cats = set(med["category"])
    for (model, key), g in med.groupby(["model", "prompt_key"]):
        if set(g["category"]) != cats:
            missing = sorted(cats - set(g["category"]))
            raise UserError(f"model {model}, prompt {key}: no scored word of {', '.join(missing)}")

"""Rows of the score table: the one place a (model, prompt, responses, scores) block is built.

Columns (``SCORE_COLUMNS``): ``model`` (str), ``family`` (str, e.g. ``Gemma``/``Llama``),
``kind`` (``rm`` reward, ``lm`` log-prob in nats, ``implicit`` MWLR), ``prompt_key``, ``prompt``
(text, "" when unknown), ``framing`` (``positive``/``negative``/``none``), ``response`` (the
word; lexicon categories join on it), ``token_id`` (Int64; <NA> when not a single token) and
``score`` (float64). Reading, writing and checking whole tables is
``analyses.inputs.score_table``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.prompts import Prompt

SCORE_COLUMNS: tuple[str, ...] = (
    "model",
    "family",
    "kind",
    "prompt_key",
    "prompt",
    "framing",
    "response",
    "token_id",
    "score",
)
KINDS: tuple[str, ...] = ("rm", "lm", "implicit")


def score_rows(
    *,
    model: str,
    family: str,
    kind: str,
    prompt: Prompt,
    responses: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    token_ids: Sequence[int | None] | None = None,
    **extra: Sequence | object,
) -> pd.DataFrame:
    """One block of score-table rows: every response to ``prompt`` with its score.

    ``token_ids[i]`` is the single token of response ``i`` (None when it is several tokens);
    ``extra`` columns (a sequence per response, or one value for all) follow the schema columns.
    """
    n = len(responses)
    if len(scores) != n:
        raise ValueError(f"{len(scores)} scores for {n} responses")
    ids = pd.array(
        [None] * n if token_ids is None else [None if t is None else int(t) for t in token_ids],
        dtype="Int64",
    )
    frame = pd.DataFrame(
        {
            "model": model,
            "family": family,
            "kind": kind,
            "prompt_key": prompt.key,
            "prompt": prompt.text,
            "framing": prompt.framing,
            "response": list(responses),
            "token_id": ids,
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame

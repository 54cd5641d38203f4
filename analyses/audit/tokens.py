"""Stage 7 of an audit (``--token-sweep``): every vocabulary token as a one-token response.

``sweep`` runs ``score --responses vocab`` on the RM under the token-sweep prompts (the
exhaustive search of Christian et al. 2025) and keeps the ``top_k`` highest- and lowest-reward
tokens (reward averaged over those prompts), marking the ones that are lexicon words.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analyses.audit.config import AuditConfig
from analyses.audit.inputs import model_identity
from analyses.audit.ledger import Ledger, Step
from analyses.audit.preference import AuditInputs
from analyses.inputs.score_table import read_score_table
from analyses.runs.score import ScoreSettings, run_score
from interp.atomic import atomic_write_text


def top_bottom_tokens(scores: pd.DataFrame, words: pd.DataFrame, k: int) -> dict[str, list]:
    """Mean reward per token over prompts; the ``k`` highest and lowest with their category."""
    means = scores.groupby(["token_id", "response"], as_index=False)["score"].mean()
    category = words.groupby("word")["category"].agg(lambda c: "|".join(sorted(set(c))))
    key = means["response"].str.strip().str.lower()
    means["category"] = key.map(category).fillna("")
    order = means.sort_values(["score", "token_id"], ascending=[False, True])
    cols = ["token_id", "response", "score", "category"]
    return {
        "top": order.head(k)[cols].to_dict("records"),
        "bottom": order.tail(k).iloc[::-1][cols].to_dict("records"),
        "n_tokens": int(len(means)),
    }


def token_stage(config: AuditConfig, inputs: AuditInputs, ledger: Ledger,
                progress) -> dict[str, list[Step]]:  # fmt: skip
    """The step of stage 7 (empty unless ``--token-sweep``)."""
    if not config.enabled("token-sweep"):
        return {}

    def run(folder: Path) -> dict:
        settings = ScoreSettings(
            model=config.rm, kind="rm", revision=config.rm_revision,
            random_head=config.rm_random_head, device=config.device,
            prompts=str(inputs.prompts["tokens"]), responses="vocab",
            out=folder / "vocab_scores.parquet", **config.load_kwargs(),
        )  # fmt: skip
        result = run_score(settings, progress=progress)
        scores = read_score_table(result.out)
        words = pd.read_csv(inputs.words, dtype=str, keep_default_na=False)
        table = top_bottom_tokens(scores, words, config.top_k)
        rows = pd.DataFrame(
            [r | {"end": "top"} for r in table["top"]]
            + [r | {"end": "bottom"} for r in table["bottom"]]
        )
        atomic_write_text(folder / "top_bottom_tokens.csv", rows.to_csv(index=False))
        return {**table, "file": ledger.rel(result.out), "prompts": inputs.n_prompts["tokens"]}

    settings = {"rm": model_identity(config.rm, config.rm_revision), "top_k": config.top_k,
                "head": config.rm_random_head, "device": config.device}  # fmt: skip
    weight = 30_000.0 * inputs.n_prompts["tokens"]
    return {"7-token-sweep": [Step("7-token-sweep", "sweep", settings, run,
                                   ("0-inputs/words", "0-inputs/prompts"), weight)]}  # fmt: skip

"""Cross-model agreement (the FAccT paper): rank correlations of two models' scores per prompt."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pandas as pd
from scipy import stats as sps


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of two models' scores on their shared responses for one prompt."""

    prompt_key: str
    model_a: str
    model_b: str
    n_shared: int
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float


def cross_model_agreement(scores: pd.DataFrame, min_shared: int = 3) -> tuple[Agreement, ...]:
    """Kendall's tau-b and Spearman's rho between every pair of models, per prompt.

    Pairs are matched on the ``response`` string (the decoded token); prompts with fewer than
    ``min_shared`` shared responses are skipped.
    """
    out = []
    for key, g in scores.groupby("prompt_key", sort=True):
        wide = g.pivot_table(index="response", columns="model", values="score", aggfunc="max")
        for ma, mb in itertools.combinations(sorted(wide.columns), 2):
            pair = wide[[ma, mb]].dropna()
            if len(pair) < min_shared:
                continue
            tau = sps.kendalltau(pair[ma], pair[mb])
            rho = sps.spearmanr(pair[ma], pair[mb])
            out.append(
                Agreement(
                    str(key),
                    ma,
                    mb,
                    len(pair),
                    float(tau.statistic),
                    float(tau.pvalue),
                    float(rho.statistic),
                    float(rho.pvalue),
                )
            )
    return tuple(out)

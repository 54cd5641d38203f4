"""Model-level inference: the family is a property of a model, so the model is the unit.

The paper's panel tests treat every (model, prompt) median rank as independent, although the 27
prompts of one framing all come from the same model. Here each model contributes one number per
panel (its mean median rank over the panel's prompts) and:

- ``assignment_test``: an exact permutation test over every assignment of the models to the two
  families with the observed family sizes (``C(n_models, n_b)`` of them; random assignments when
  there are more than ``max_enumerate``), ``twosample.split_test`` on the model means. The statistic is Welch's t on the model means when
  both families have at least two models, else the difference of means. Two-sided; the observed
  assignment is one of those counted, so ``p >= 1 / n_assignments``. With one model per family
  there are two assignments with the same ``|statistic|``: ``p = 1`` (nothing can be learned
  about families from two models).
- ``cluster_bootstrap``: a percentile CI of the family difference of model means, resampling
  models with replacement within each family (undefined with fewer than two models in a family).

Sign: ``b - a`` (e.g. Llama - Gemma), as everywhere in Stage 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyses.stats.twosample import mc_standard_error, split_test


@dataclass(frozen=True)
class AssignmentTest:
    """Permutation test of models over families (see module docstring)."""

    statistic_name: str
    statistic: float
    p: float
    p_se: float
    n_assignments: int
    exact: bool
    n_a: int
    n_b: int
    note: str = ""


def assignment_test(
    values, is_b, max_enumerate: int = 200_000, n_draws: int = 20_000, rng=0
) -> AssignmentTest:
    """The exact (or Monte-Carlo) permutation test of models over families for one panel.

    ``values`` ``[n_models]`` are the model means, ``is_b`` marks the models of family b; more
    than ``max_enumerate`` assignments: ``n_draws`` random ones (``twosample.split_test``).
    """
    values = np.asarray(values, dtype=np.float64)
    is_b = np.asarray(is_b, dtype=bool)
    n_b, n_a = int(is_b.sum()), int((~is_b).sum())
    if n_a < 1 or n_b < 1:
        return AssignmentTest("", math.nan, math.nan, math.nan, 0, False, n_a, n_b,
                              "both families need a model")  # fmt: skip
    studentise = min(n_a, n_b) >= 2
    observed, p, used, exact = split_test(values, is_b, n_draws, rng, studentise, max_enumerate)
    p = float(p)
    total = math.comb(len(values), n_b)
    note = ""
    if min(n_a, n_b) == 1 and len(values) == 2:
        note = (
            "one model per family: the two assignments give the same |difference|, so p = 1; "
            "no family effect is testable at the model level"
        )
    elif total < 20:
        note = f"only {total} assignments: p cannot go below 1/{total}"
    se = 0.0 if exact else mc_standard_error(p, used)
    name = "Welch t on model means" if studentise else "difference of model means"
    return AssignmentTest(name, float(observed), p, se, used, exact, n_a, n_b, note)


def cluster_bootstrap(
    values, is_b, n_bootstrap: int = 2000, confidence: float = 0.95, rng=0
) -> tuple[float, float]:
    """Percentile CI of ``mean(b) - mean(a)`` of model means, models resampled within family."""
    values = np.asarray(values, dtype=np.float64)
    is_b = np.asarray(is_b, dtype=bool)
    a, b = values[~is_b], values[is_b]
    if len(a) < 2 or len(b) < 2 or n_bootstrap < 1:
        return math.nan, math.nan
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ba = a[rng.integers(0, len(a), size=(n_bootstrap, len(a)))].mean(axis=1)
    bb = b[rng.integers(0, len(b), size=(n_bootstrap, len(b)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(bb - ba, [alpha, 1 - alpha])
    return float(lo), float(hi)

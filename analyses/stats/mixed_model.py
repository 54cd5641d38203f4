"""Stage 1's mixed model, with nlme's t tests on containment degrees of freedom.

``median_rank ~ family * category * framing + (1 | model)`` is fitted by REML (statsmodels
``MixedLM``; the paper used R's ``nlme::lme``, whose estimates it reproduces). Each fixed effect is
tested with ``t = coef / se`` on the degrees of freedom nlme's containment rule assigns:

- a design column that is constant within every model is estimated *between* models:
  ``df = n_models - 1 - (number of between-model columns)`` (for ``family``: ``n_models - 2``);
- every other column is estimated *within* models:
  ``df = n_obs - n_models - (number of within-model columns)``; the intercept gets the larger.

With one model per family the family term has ``df = 0``: it is not tested (``p`` is NaN and a
note says why). The random-slopes companion ``(1 + category | model)`` extends the rule: a column
that, within every model, lies in the span of that model's random-effects design (intercept and
category) is estimated at the model level with ``n_models - 1 - (between columns)`` df, so the
family x category terms are tested against the spread of the models' own category slopes.

Reference levels follow R's defaults: family and category alphabetical, framing ``positive``
first (the order the authors' script sets); any of them can be chosen. ``p`` is never exactly 0
(``corrections.floor_p``). Confidence intervals are ``coef +- t(0.975, df) * se``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analyses.stats.corrections import floor_p
from interp.errors import UserError

FRAMING_ORDER = ("positive", "negative", "none")
FACTORS = ("family", "category", "framing")


@dataclass(frozen=True)
class MixedTerm:
    """One fixed effect: coefficient, standard error, t on ``df`` (containment), p, 95 % CI.

    ``r_term`` names it the way R's ``summary(lme)`` does (``familyLlama:categoryCommunion``);
    ``stratum`` is ``model`` (estimated between models) or ``residual`` (within models).
    """

    term: str
    r_term: str
    coef: float
    se: float
    t: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    stratum: str


@dataclass(frozen=True)
class MixedModelFit:
    """A fitted mixed model: its formula, terms, reference levels, variance components, notes."""

    formula: str
    random: str
    terms: tuple[MixedTerm, ...]
    reference_levels: dict[str, str]
    group_variance: float
    residual_variance: float
    n_obs: int
    n_groups: int
    converged: bool
    df_method: str
    notes: tuple[str, ...]


def factor_levels(
    med: pd.DataFrame, reference: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """Levels of family, category and framing present in ``med``, reference level first.

    Default order: alphabetical for family and category (R's factor default), ``positive``
    first for framing. ``reference`` moves a named level to the front.
    """
    reference = dict(reference or {})
    unknown = sorted(set(reference) - set(FACTORS))
    if unknown:
        raise UserError(f"--reference {', '.join(unknown)}: use family, category or framing")
    levels = {}
    for factor in FACTORS:
        present = list(dict.fromkeys(med[factor]))
        if factor == "framing":
            order = [f for f in FRAMING_ORDER if f in present] + sorted(
                f for f in present if f not in FRAMING_ORDER
            )
        else:
            order = sorted(present)
        ref = reference.get(factor)
        if ref is not None:
            if ref not in order:
                raise UserError(f"--reference {factor}={ref}: not among {', '.join(order)}")
            order = [ref] + [x for x in order if x != ref]
        levels[factor] = order
    return levels


def _r_name(term: str) -> str:
    """``family[T.Llama]:category[T.Communion]`` -> ``familyLlama:categoryCommunion``."""
    if term in ("Intercept", "(Intercept)"):
        return "(Intercept)"
    parts = []
    for piece in term.split(":"):
        name, _, level = piece.partition("[T.")
        parts.append(name + level.rstrip("]"))
    return ":".join(parts)


def _in_span(column: np.ndarray, basis: np.ndarray, groups: np.ndarray) -> bool:
    """Is ``column``, restricted to every group, a linear combination of ``basis`` there?"""
    for g in np.unique(groups):
        rows = groups == g
        x, z = column[rows], basis[rows]
        coef, *_ = np.linalg.lstsq(z, x, rcond=None)
        if np.sum((x - z @ coef) ** 2) > 1e-10 * max(1.0, float(np.sum(x**2))):
            return False
    return True


def containment_df(
    exog: np.ndarray, names: list[str], groups: np.ndarray, exog_re: np.ndarray
) -> dict[str, tuple[float, str]]:
    """Degrees of freedom and stratum of every fixed-effect column (see module docstring)."""
    n_obs, n_groups = len(groups), len(np.unique(groups))
    ones = np.ones((n_obs, 1))
    intercept = [n for n, col in zip(names, exog.T, strict=True) if np.ptp(col) == 0]
    rest = [n for n in names if n not in intercept]
    between = {n for n in rest if _in_span(exog[:, names.index(n)], ones, groups)}
    model_level = between | {
        n for n in rest if n not in between and _in_span(exog[:, names.index(n)], exog_re, groups)
    }
    df_model = n_groups - len(between) - (1 if intercept else 0)
    df_resid = n_obs - n_groups - (len(rest) - len(between))
    out = {n: (float(df_model), "model") if n in model_level else (float(df_resid), "residual")
           for n in rest}  # fmt: skip
    for n in intercept:
        out[n] = (float(max(df_model, df_resid)), "residual")
    return out


def _t_test(coef: float, se: float, df: float) -> tuple[float, float, float, float]:
    """t, p and the 95 % CI on ``df`` degrees of freedom (all NaN when df < 1 or se undefined)."""
    if not (math.isfinite(se) and se > 0) or not df >= 1:
        return (
            (coef / se if math.isfinite(se) and se > 0 else math.nan),
            math.nan,
            math.nan,
            math.nan,
        )
    t = coef / se
    half = float(sps.t.ppf(0.975, df)) * se
    return t, floor_p(float(2 * sps.t.sf(abs(t), df))), coef - half, coef + half


def fit_mixed_model(
    med: pd.DataFrame,
    levels: Mapping[str, list[str]],
    random_slopes: bool = False,
) -> MixedModelFit:
    """Fit ``median_rank ~ family * category * framing`` with a random intercept per model
    (``random_slopes``: intercept and category slopes per model), REML; see module docstring.

    ``levels``: ``factor_levels`` output (reference level first). Fit warnings (a boundary
    optimum, a Hessian that is not positive definite, no convergence) are kept in ``notes``.
    """
    import statsmodels.formula.api as smf

    data = med[["median_rank", "model", *FACTORS]].copy()
    data["median_rank"] = data["median_rank"].astype(float)
    terms = []
    for factor in FACTORS:
        data[factor] = pd.Categorical(data[factor], categories=list(levels[factor]))
        if factor == "family" or len(levels[factor]) > 1:
            terms.append(factor)
    formula = "median_rank ~ " + " * ".join(terms)
    slopes = random_slopes and len(levels["category"]) > 1
    random = "(1 + category | model)" if slopes else "(1 | model)"
    notes: list[str] = []
    per_family = data.groupby("family", observed=True)["model"].nunique()
    if (per_family < 2).any():
        notes.append(
            "a family has a single model: the family effect cannot be separated from that "
            "model's own random intercept; the family term has no model-level degrees of freedom"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = smf.mixedlm(
                formula, data, groups=data["model"], re_formula="~category" if slopes else None
            )
            fit = model.fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as err:
            raise UserError(f"mixed model {random} could not be fitted: {err}") from None
    notes.extend(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    if not fit.converged:
        notes.append("the optimiser did not report convergence: read these estimates with care")
    names = list(model.exog_names)
    dfs = containment_df(model.exog, names, np.asarray(data["model"]), model.exog_re)
    rows = []
    for term in fit.fe_params.index:
        coef, se = float(fit.fe_params[term]), float(fit.bse_fe[term])
        df, stratum = dfs[term]
        t, p, lo, hi = _t_test(coef, se, df)
        rows.append(MixedTerm(str(term), _r_name(str(term)), coef, se, t, df, p, lo, hi, stratum))
        if df < 1:
            notes.append(f"{term}: df = {df:g} (containment), not tested")
    return MixedModelFit(
        formula=formula,
        random=random,
        terms=tuple(rows),
        reference_levels={f: levels[f][0] for f in FACTORS},
        group_variance=float(np.asarray(fit.cov_re)[0, 0]),
        residual_variance=float(fit.scale),
        n_obs=int(fit.nobs),
        n_groups=int(data["model"].nunique()),
        converged=bool(fit.converged),
        df_method=(
            "containment (nlme): between-model columns n_models - 1 - n_between, within-model "
            "columns n_obs - n_models - n_within"
            + ("; random-slope columns at the model level" if slopes else "")
        ),
        notes=tuple(dict.fromkeys(notes)),
    )

"""Effect sizes of ANOVA terms: partial eta squared with a confidence interval.

``partial eta^2 = SS_term / (SS_term + SS_residual)``. Its CI comes from inverting the noncentral
F distribution (Steiger 2004): find the noncentrality ``lambda`` at which the observed F sits at the
upper and lower tail quantiles, then ``eta^2 = lambda / (lambda + df1 + df2 + 1)``. A bound whose
tail is never reached (F too small) is 0.
"""

from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as sps


def partial_eta_squared(ss_term: float, ss_residual: float) -> float:
    """``SS_term / (SS_term + SS_residual)`` (NaN when both are 0)."""
    total = ss_term + ss_residual
    return ss_term / total if total > 0 else math.nan


def _noncentrality(f: float, df1: float, df2: float, q: float) -> float:
    """The ``lambda >= 0`` at which ``P(F' <= f) = q`` (0 when even lambda = 0 gives less)."""
    cdf = lambda lam: sps.ncf.cdf(f, df1, df2, lam) - q  # noqa: E731
    if cdf(0.0) <= 0:
        return 0.0
    hi = max(10.0, 4 * f * df1)
    while cdf(hi) > 0:
        hi *= 2
        if hi > 1e9:
            return math.nan
    return float(optimize.brentq(cdf, 0.0, hi, xtol=1e-10))


def partial_eta_squared_ci(
    f: float, df1: float, df2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Noncentral-F CI of partial eta squared from the term's F and its degrees of freedom."""
    if not (math.isfinite(f) and df1 > 0 and df2 > 0):
        return math.nan, math.nan
    alpha = (1 - confidence) / 2
    lam_lo = _noncentrality(f, df1, df2, 1 - alpha)
    lam_hi = _noncentrality(f, df1, df2, alpha)
    to_eta = lambda lam: lam / (lam + df1 + df2 + 1)  # noqa: E731
    return to_eta(lam_lo), to_eta(lam_hi)

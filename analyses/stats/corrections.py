"""Multiple-comparison corrections: Bonferroni (family-wise) and Benjamini-Hochberg (FDR).

NaN p-values (tests that could not be run) are kept as NaN and not counted in the family.
``stars`` turns a corrected p into the paper's marks; ``format_p`` prints a p-value without ever
showing an exact 0 (a p below double precision reads ``< 1e-300``).
"""

from __future__ import annotations

import math

import numpy as np

TINY_P = 1e-300


def bonferroni(p) -> np.ndarray:
    """Bonferroni-adjusted p-values: ``min(1, p * m)`` with m the number of non-NaN p-values."""
    p = np.asarray(p, dtype=np.float64)
    m = int(np.sum(~np.isnan(p)))
    return np.minimum(p * m, 1.0)


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg FDR-adjusted p-values (step-up; NaNs kept as NaN, not counted)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m == 0:
        return out
    order = np.argsort(q)
    scaled = q[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adjusted, 1.0)
    out[ok] = res
    return out


def stars(p: float | None) -> str:
    """The paper's marks: ``***`` p < .001, ``**`` p < .01, ``*`` p < .05, else ``n.s.``
    (``n.a.`` when p is undefined)."""
    if p is None or not math.isfinite(p):
        return "n.a."
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def floor_p(p: float) -> float:
    """``p`` kept off exact 0: a p that underflowed is reported as ``TINY_P`` (NaN stays NaN)."""
    return p if not math.isfinite(p) else max(float(p), TINY_P)


def format_p(p: float | None) -> str:
    """A p-value for people: 3 significant digits, ``< 1e-300`` below that, ``n.a.`` if undefined."""
    if p is None or not math.isfinite(p):
        return "n.a."
    return "< 1e-300" if p <= TINY_P else f"{p:.3g}"

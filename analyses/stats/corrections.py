"""Multiple-comparison corrections: Bonferroni (family-wise) and Benjamini-Hochberg (FDR).

NaN p-values (tests that could not be run) are kept as NaN and not counted in the family.
"""

from __future__ import annotations

import numpy as np


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

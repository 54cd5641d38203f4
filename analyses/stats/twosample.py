"""Two-sample building blocks: Welch t, the permutation Welch test, Cohen's d and bootstrap CIs.

Conventions: two samples ``x`` and ``y`` (1-D float arrays); every difference is ``x - y`` (so
``welch_t(x, y) > 0`` when ``x`` has the larger mean), as in ``scipy.stats.ttest_ind(x, y)``.

Monte-Carlo permutation p-values are ``(1 + #extreme) / (1 + B)``: their floor is ``1 / (1 + B)``
and their Monte-Carlo standard error ``sqrt(p (1 - p) / B)`` (``mc_standard_error``);
``draws_for_floor`` picks ``B`` so that the floor, multiplied by the number of tests a correction
runs over, stays below a threshold (0.001 by default, the paper's ``***``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from analyses.stats.corrections import floor_p

# relative tolerance when comparing permuted statistics with the observed one (as scipy does),
# so that permutations giving the same statistic up to rounding count as "as extreme"
_REL_TOL = 1e-12


@dataclass(frozen=True)
class PermutationTest:
    """Two-sided permutation Welch t-test of ``x`` vs ``y``.

    ``t``: Welch t of the observed split; ``df``: Welch-Satterthwaite degrees of freedom;
    ``p``: permutation p-value of ``|t|`` (exact enumeration when ``exact``, else
    ``(1 + #extreme) / (1 + n_permutations)``); ``p_parametric``: Welch's t-distribution p.
    """

    t: float
    df: float
    p: float
    p_parametric: float
    n_permutations: int
    exact: bool
    n_x: int
    n_y: int

    @property
    def p_se(self) -> float:
        """Monte-Carlo standard error of ``p`` (0 for an exact test)."""
        return 0.0 if self.exact else mc_standard_error(self.p, self.n_permutations)


def mc_standard_error(p: float, n_draws: int) -> float:
    """Monte-Carlo standard error ``sqrt(p (1 - p) / n_draws)`` of a permutation p-value."""
    if n_draws < 1 or not math.isfinite(p):
        return math.nan
    return math.sqrt(max(p * (1 - p), 0.0) / n_draws)


def draws_for_floor(n_tests: int, floor: float = 0.001, margin: float = 2.0) -> int:
    """Permutation draws ``B`` such that ``n_tests / (1 + B) <= floor / margin``: the smallest
    p-value a Monte-Carlo test can give, Bonferroni-corrected over ``n_tests``, lies below
    ``floor`` (with ``margin`` to spare)."""
    return max(1, math.ceil(margin * max(n_tests, 1) / floor) - 1)


def parametric_welch_p(t: float, df: float) -> float:
    """Two-sided p of Welch's t on ``df`` degrees of freedom (NaN when undefined; never exactly
    0: an underflow reads ``corrections.TINY_P``)."""
    if not (math.isfinite(t) and math.isfinite(df)) or df <= 0:
        return math.nan
    return floor_p(float(2 * sps.t.sf(abs(t), df)))


def _as_1d(a) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64).ravel()
    return arr[~np.isnan(arr)]


def welch_t(x, y) -> tuple[float, float]:
    """Welch's t (x - y) and Welch-Satterthwaite degrees of freedom. NaN when undefined."""
    x, y = _as_1d(x), _as_1d(y)
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return math.nan, math.nan
    vx, vy = x.var(ddof=1) / nx, y.var(ddof=1) / ny
    se2 = vx + vy
    if se2 <= 0:
        return math.nan, math.nan
    t = (x.mean() - y.mean()) / math.sqrt(se2)
    df = se2**2 / (vx**2 / (nx - 1) + vy**2 / (ny - 1))  # one zero variance is fine
    return float(t), float(df)


def welch_t_splits(z: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Welch t (x - y) for many splits at once: ``z`` is ``[n]`` or ``[n_sets, n]`` (one data set
    per row), ``masks`` ``[n_splits, n]`` is True for members of x. Returns ``[n_splits]`` or
    ``[n_sets, n_splits]``."""
    m = masks.astype(np.float64)
    nx = m.sum(axis=1)
    ny = m.shape[1] - nx
    zz = z * z
    sx, qx = z @ m.T, zz @ m.T
    sy, qy = z.sum(axis=-1, keepdims=z.ndim > 1) - sx, zz.sum(axis=-1, keepdims=z.ndim > 1) - qx
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = sx / nx, sy / ny
        vx = np.maximum(qx - nx * mx * mx, 0.0) / (nx - 1) / nx
        vy = np.maximum(qy - ny * my * my, 0.0) / (ny - 1) / ny
        return (mx - my) / np.sqrt(vx + vy)


def split_statistic(values: np.ndarray, masks: np.ndarray, studentise: bool = True) -> np.ndarray:
    """Welch t (``studentise``) or the difference of means, x - y, for every split in ``masks``
    (``[n_splits, n]``, True = member of x); ``values`` ``[n]`` or ``[n_sets, n]``."""
    if studentise:
        return welch_t_splits(values, masks)
    m = masks.astype(np.float64)
    nx = m.sum(axis=1)
    sx = values @ m.T
    sy = values.sum(axis=-1, keepdims=values.ndim > 1) - sx
    return sx / nx - sy / (m.shape[1] - nx)


def _split_blocks(n: int, n_x: int, n_permutations: int, max_enumerate: int, rng):
    """Yield blocks of split masks: every split when there are at most ``max_enumerate``, else
    ``n_permutations`` random ones (at most ~2e6 mask cells per block)."""
    block = max(1, 2_000_000 // max(n, 1))
    if math.comb(n, n_x) <= max_enumerate:
        combos = itertools.combinations(range(n), n_x)
        while True:
            chunk = list(itertools.islice(combos, block))
            if not chunk:
                return
            masks = np.zeros((len(chunk), n), dtype=bool)
            masks[np.repeat(np.arange(len(chunk)), n_x), np.asarray(chunk).ravel()] = True
            yield masks
    base = np.arange(n) < n_x
    done = 0
    while done < n_permutations:
        k = min(block, n_permutations - done)
        yield rng.permuted(np.broadcast_to(base, (k, n)), axis=1)
        done += k


def split_test(
    values,
    is_x,
    n_permutations: int = 10_000,
    seed: int | np.random.Generator | None = 0,
    studentise: bool = True,
    max_enumerate: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Two-sided permutation test of a two-group split, vectorised over data sets.

    ``values`` ``[n]`` or ``[n_sets, n]``, ``is_x`` ``[n]`` marks group x. The statistic is
    ``split_statistic``. When there are at most ``max_enumerate`` (default ``n_permutations``)
    distinct splits, all are enumerated (exact: ``p = #{|T*| >= |T|} / C(n, n_x)``, the observed
    split among them); otherwise ``n_permutations`` random splits (``p = (1 + #) / (1 + B)``).
    Returns ``(observed, p, n_splits, exact)`` (arrays shaped like the data sets).
    """
    values = np.asarray(values, dtype=np.float64)
    is_x = np.asarray(is_x, dtype=bool)
    n, n_x = len(is_x), int(is_x.sum())
    limit = n_permutations if max_enumerate is None else max_enumerate
    exact = math.comb(n, n_x) <= limit
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    with np.errstate(invalid="ignore"):
        observed = split_statistic(values, is_x[None, :], studentise)[..., 0]
        size = np.abs(observed)
        # as extreme up to rounding; an infinite statistic is matched only by infinite ones
        target = np.where(np.isfinite(size), size - _REL_TOL * np.maximum(size, 1.0), size)
        count = np.zeros(np.shape(observed), dtype=np.int64)
        used = 0
        for masks in _split_blocks(n, n_x, n_permutations, limit, rng):
            null = np.abs(np.nan_to_num(split_statistic(values, masks, studentise), nan=0.0,
                                        posinf=np.inf, neginf=-np.inf))  # fmt: skip
            count += (null >= target[..., None]).sum(axis=-1)
            used += len(masks)
        p = count / used if exact else (1 + count) / (1 + used)
    p = np.where(np.isnan(observed), np.nan, p)  # an undefined statistic has no p
    return observed, p, used, exact


def permutation_welch_test(
    x, y, n_permutations: int = 10_000, seed: int | np.random.Generator | None = 0
) -> PermutationTest:
    """Two-sided permutation test of Welch's t between ``x`` and ``y`` (group labels shuffled).

    When the number of distinct splits C(n_x + n_y, n_x) is at most ``n_permutations`` every
    split is enumerated (exact test, the observed split included); otherwise ``n_permutations``
    random splits are drawn with ``numpy.random.default_rng(seed)`` and the p-value is
    ``(1 + #{|t*| >= |t|}) / (1 + n_permutations)`` (``split_test``).
    """
    x, y = _as_1d(x), _as_1d(y)
    nx, ny = len(x), len(y)
    t, df = welch_t(x, y)
    p_param = parametric_welch_p(t, df)
    if math.isnan(t):
        return PermutationTest(t, df, math.nan, p_param, 0, False, nx, ny)
    z = np.concatenate([x, y])
    _, p, used, exact = split_test(z, np.arange(nx + ny) < nx, n_permutations, seed)
    return PermutationTest(t, df, float(p), p_param, used, exact, nx, ny)


def cohens_d(x, y) -> float:
    """Cohen's d of ``x - y`` with the pooled standard deviation (ddof=1 in each group)."""
    x, y = _as_1d(x), _as_1d(y)
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2:
        return math.nan
    pooled = ((nx - 1) * x.var(ddof=1) + (ny - 1) * y.var(ddof=1)) / (nx + ny - 2)
    if pooled <= 0:
        return math.nan
    return float((x.mean() - y.mean()) / math.sqrt(pooled))


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap intervals (each group resampled with replacement on its own)."""

    diff_low: float
    diff_high: float
    d_low: float
    d_high: float
    n_bootstrap: int
    confidence: float


def bootstrap_ci(
    x,
    y,
    n_bootstrap: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = 0,
) -> BootstrapCI:
    """Percentile bootstrap CIs of the mean difference ``x - y`` and of Cohen's d."""
    x, y = _as_1d(x), _as_1d(y)
    nx, ny = len(x), len(y)
    if nx < 2 or ny < 2 or n_bootstrap < 1:
        return BootstrapCI(math.nan, math.nan, math.nan, math.nan, n_bootstrap, confidence)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    bx = x[rng.integers(0, nx, size=(n_bootstrap, nx))]
    by = y[rng.integers(0, ny, size=(n_bootstrap, ny))]
    diff = bx.mean(axis=1) - by.mean(axis=1)
    pooled = ((nx - 1) * bx.var(axis=1, ddof=1) + (ny - 1) * by.var(axis=1, ddof=1)) / (nx + ny - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = diff / np.sqrt(pooled)
    alpha = (1 - confidence) / 2
    q = [alpha, 1 - alpha]
    dl, dh = np.quantile(diff, q)
    finite = d[np.isfinite(d)]
    el, eh = np.quantile(finite, q) if len(finite) else (math.nan, math.nan)
    return BootstrapCI(float(dl), float(dh), float(el), float(eh), n_bootstrap, confidence)

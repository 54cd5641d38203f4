"""Linear probes on one layer's activations: standardised logistic regression and difference of means.

Both are linear readouts ``score(x) = x . weight + bias`` in the raw activation basis (``score > 0``
predicts class 1); ``direction`` is ``weight / |weight|``, pointing from class 0 to class 1.

- ``logistic``: features standardised with the training mean and standard deviation, then an
  L2-regularised logistic regression (scikit-learn ``LogisticRegression(C, l1_ratio=0)``). In the
  raw basis ``weight = coef / std`` and ``bias = intercept - (mean / std) . coef``.
- ``diffmean``: ``weight = mean_1 - mean_0``, ``bias`` puts the threshold halfway between the
  class means' projections.

Cross-validation uses ``StratifiedGroupKFold`` grouped by word, so no word's items sit in the
training and test folds at once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from interp.errors import UserError

METHODS: tuple[str, ...] = ("logistic", "diffmean")


@dataclass(frozen=True)
class LinearProbe:
    """A fitted probe. ``weight`` ``[d]`` and ``bias`` give the decision score in the raw basis;
    ``params`` holds the method's own fitted values (scaler and coefficients, or class means)."""

    method: str
    weight: np.ndarray
    bias: float
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def direction(self) -> np.ndarray:
        norm = float(np.linalg.norm(self.weight))
        return self.weight / norm if norm > 0 else self.weight

    def decision(self, X: np.ndarray) -> np.ndarray:
        """Decision scores ``[n]`` (float64); positive means class 1."""
        return np.asarray(X, dtype=np.float64) @ self.weight + self.bias


def fit_probe(X: np.ndarray, y: np.ndarray, method: str, C: float = 1.0) -> LinearProbe:
    """Fit one probe on ``X`` ``[n, d]`` and binary ``y`` ``[n]``."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if method == "diffmean":
        mu0, mu1 = X[y == 0].mean(0), X[y == 1].mean(0)
        weight = mu1 - mu0
        bias = -float(weight @ (mu0 + mu1) / 2)
        return LinearProbe(method, weight, bias, {"mean_0": mu0, "mean_1": mu1})
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression

        mean = X.mean(0)
        std = X.std(0)
        std = np.where(std > 1e-8, std, 1.0)
        Z = (X - mean) / std
        model = LogisticRegression(C=C, l1_ratio=0.0, max_iter=2000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes on separable data
            model.fit(Z, y)
        coef = model.coef_[0]
        intercept = float(model.intercept_[0])
        weight = coef / std
        bias = intercept - float((mean / std) @ coef)
        params = {"scaler_mean": mean, "scaler_std": std, "coef": coef, "intercept": intercept}
        return LinearProbe(method, weight, bias, params)
    raise UserError(f"unknown probe method {method!r} (use {', '.join(METHODS)}, or both)")


def n_folds(y: np.ndarray, groups: np.ndarray, wanted: int) -> int:
    """Folds that give every fold words of both classes: at most the fewest words per class."""
    per_class = [len(np.unique(groups[y == c])) for c in (0, 1)]
    folds = min(wanted, *per_class)
    if folds < 2:
        raise UserError(
            f"too few words to cross-validate: {per_class[0]} and {per_class[1]} words per class "
            "(need at least 2 each)"
        )
    return folds


def cross_val_scores(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    method: str,
    folds: int,
    seed: int = 0,
    C: float = 1.0,
) -> np.ndarray:
    """Out-of-fold decision scores ``[n]`` from ``StratifiedGroupKFold`` grouped by word."""
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.empty(len(y), dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "least populated class" notes for small sets
        splits = list(splitter.split(X, y, groups))
    for train, test in splits:
        if len(np.unique(y[train])) < 2:
            raise UserError("a cross-validation fold has one class only; use fewer folds")
        out[test] = fit_probe(X[train], y[train], method, C).decision(X[test])
    return out

"""The one shape of a measured quantity: a value with its uncertainty, and a test with its p.

``Estimate``: a point value with an interval at a confidence level, how the interval was made and
over which unit (``word``, ``model``, ``prompt``) and how many of them. ``Test``: a hypothesis
test: its name, statistic, degrees of freedom, p, the multiple-comparison correction applied and
the family of tests it corrects over. Results everywhere (probe scores, category contrasts,
patching effects) are built from these two, so every number in an output carries the same
fields (in the spirit of reward-lens's ``Evidence``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

NAN = float("nan")


@dataclass(frozen=True)
class Estimate:
    """A point estimate with an interval ``[low, high]`` at ``level`` (e.g. 0.95).

    ``method`` says how the interval was made (e.g. "percentile bootstrap, 2000 word
    resamples"); ``unit`` and ``n`` are the unit of inference and how many of them there are.
    """

    value: float
    low: float = NAN
    high: float = NAN
    level: float = 0.95
    method: str = ""
    unit: str = ""
    n: int | None = None

    @property
    def ci(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or below zero (False if it is undefined)."""
        return (self.low > 0 or self.high < 0) and not math.isnan(self.low + self.high)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def record(self) -> dict:
        """A flat dict of every field (NaN kept; ``json_safe`` makes it JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class Test:
    """One hypothesis test. ``p_adjusted`` is ``p`` after ``correction`` over ``family`` (the set
    of tests corrected together, described in words), or ``p`` itself when nothing was corrected.
    """

    name: str
    statistic: float
    p: float
    df: float = NAN
    p_adjusted: float = NAN
    correction: str = "none"
    family: str = ""
    unit: str = ""
    n: int | None = None

    def record(self) -> dict:
        return asdict(self)

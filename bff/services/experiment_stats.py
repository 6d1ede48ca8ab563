"""Significance tests for A/B results, from aggregates: a pooled two-proportion z-test and Welch's test.

Plain `math` (no scipy): the p-values come from the normal distribution, `erfc(|z| / sqrt 2)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


def two_sided_p(z: float) -> float:
    """The two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_z(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float | None:
    """z of rate a minus rate b with the pooled standard error; None when it is undefined."""
    if n_a <= 0 or n_b <= 0:
        return None
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    # Both arms at 0% (or both at 100%): there is no spread to measure a difference against.
    if se == 0:
        return None
    return (successes_a / n_a - successes_b / n_b) / se


def two_proportion_p(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None when it is undefined."""
    z = two_proportion_z(successes_a, n_a, successes_b, n_b)
    return None if z is None else two_sided_p(z)


@dataclass(frozen=True)
class Sample:
    """A sample of values known by its size, sum and sum of squares (what SQL can aggregate)."""

    n: int
    total: int
    squares: int

    @property
    def mean(self) -> Fraction:
        return Fraction(self.total, self.n)

    @property
    def variance(self) -> Fraction:
        """The unbiased sample variance, exact (needs n >= 2)."""
        # n·Σx² − (Σx)² over n(n−1): integer arithmetic, so no cancellation error.
        return Fraction(self.n * self.squares - self.total * self.total, self.n * (self.n - 1))


def welch_z(a: Sample, b: Sample) -> float | None:
    """Welch's statistic for mean a minus mean b; None with fewer than 2 values or no variance."""
    if a.n < 2 or b.n < 2:
        return None
    se_squared = a.variance / a.n + b.variance / b.n
    if se_squared <= 0:
        return None
    return float(a.mean - b.mean) / math.sqrt(se_squared)


def welch_p(a: Sample, b: Sample) -> float | None:
    """Two-sided p-value of Welch's test, by the normal approximation (close once each n >= ~30)."""
    z = welch_z(a, b)
    return None if z is None else two_sided_p(z)

"""Exact intervals for proportions, and the minimum-n rules every table follows.

Rules (decided from the simulations of ``benchmarks/stats_calibration.py``, which prints the
full table; :mod:`workbench.stats.calibration` describes them):

- ``MIN_N = 6``: below 6 paired items no two-sided test at alpha = 0.05 can reject (the
  smallest exact sign-flip or McNemar p-value with n items is ``2 / 2**n``, 0.0625 at n = 5).
  Rows under it are listed in ``attrs["small_n"]`` and left out of Benjamini-Hochberg families.
- ``MIN_N_BOOTSTRAP = 100``: bootstrap intervals (continuous and derived metrics) are given only
  from 100 items; below that the BCa bootstrap under-covers (95% intervals of a mean cover 0.91
  at n = 10 and 0.94 at n = 20 for normal data, 0.87 and 0.89 for t(3), 0.79 and 0.87 for
  lognormal data); below it the interval is NaN with the reason in ``attrs["notes"]``. Even
  above it the bootstrap is only approximate: for strongly skewed or infinite-variance outcomes
  (lognormal, t(2)) a paired interval of a derived metric still covers only ~0.87-0.92 at
  n = 100-1,000. The TESTS are exact at every n; read bootstrap intervals as approximate.

Proportions (binary 0/1 outcomes) get the exact Clopper-Pearson interval (statsmodels
``proportion_confint(method="beta")``): its coverage is at least the nominal level at EVERY n
and true rate, where Wilson's dips below it (to ~0.92 at some n, p). It is never zero-width: with
all outcomes equal the interval still reaches away from 0 or 1 (n = 1, one success: [2.5, 100]).

A paired difference of two proportions (same items, outcomes a_i, b_i) gets a conservative exact
interval (:func:`paired_proportion_ci`): the difference is ``q * (2 * pi - 1)`` with ``q`` the
share of discordant items and ``pi`` the share of those where only A's outcome is 1. Given the
number of discordant items ``m``, A-only counts are Binomial(m, pi), and m is Binomial(n, q); a
Clopper-Pearson interval at level ``1 - alpha / 2`` for each (Bonferroni) gives a box that holds
``(q, pi)`` with probability at least ``1 - alpha`` whatever the true rates, and the interval is
the range of ``q * (2 * pi - 1)`` over the box. At n = 1 it is about [-0.99, 0.99].

>>> proportion_ci(0, 1)             # one failure: an honest, wide interval
(0.0, 0.975)
>>> low, high = paired_proportion_ci([1] * 8, [0] * 8)[1:3]
>>> round(low, 2), round(high, 2)   # 8 of 8 items favour A (conservative: McNemar p = 0.008)
(0.09, 1.0)
"""
from __future__ import annotations

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from workbench.errors import InvalidInputError
from workbench.validate import check_level

MIN_N = 6
MIN_N_BOOTSTRAP = 100


def proportion_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of a proportion ``successes / n``; NaN for n = 0."""
    check_level("level", level)
    if n == 0:
        return float("nan"), float("nan")
    if not 0 <= successes <= n:
        raise InvalidInputError(f"successes must be between 0 and n={n}, got {successes}")
    low, high = proportion_confint(int(successes), int(n), alpha=1 - level, method="beta")
    return float(low), float(high)


def binary_outcomes(x, name: str = "outcome") -> np.ndarray:
    """``x`` as floats, checked to hold only 0, 1 or NaN."""
    x = np.asarray(x, dtype=float)
    if not np.all(np.isin(x[~np.isnan(x)], (0.0, 1.0))):
        raise InvalidInputError(f"{name} must hold 0/1 outcomes (NaN for missing); got other values. "
                                "Use a continuous metric for real-valued outcomes.")
    return x


def paired_proportion_ci(a, b, level: float = 0.95) -> tuple[float, float, float, int]:
    """``(diff, low, high, n)`` for mean(a) - mean(b) of paired 0/1 outcomes (see module doc).

    Items where either outcome is NaN are left out. Coverage is at least ``level`` for every n
    and every pair of true rates (conservative: Bonferroni over two exact intervals).
    """
    check_level("level", level)   # before it is split in two (the message must name the level given)
    a, b = binary_outcomes(a, "a"), binary_outcomes(b, "b")
    if a.shape != b.shape:
        raise InvalidInputError(f"paired outcomes need the same items: shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep].astype(bool), b[keep].astype(bool)
    n = int(keep.sum())
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    m = a_only + b_only
    half = 1 - (1 - level) / 2
    q = proportion_ci(m, n, half)
    pi = proportion_ci(a_only, m, half) if m else (0.0, 1.0)
    corners = [qq * (2 * pp - 1) for qq in q for pp in pi]
    return (a_only - b_only) / n, float(min(corners)), float(max(corners)), n

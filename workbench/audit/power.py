"""Power of the audit's paired tests, for planning sample sizes and for saying what a run could find.

Binary metrics (% stereotyped, accuracy) are compared with McNemar's exact test
(:func:`workbench.stats.mcnemar_exact`: the binomial test of the discordant pairs, two-sided,
``p = min(1, 2 * P(Bin(K, 1/2) <= min(b, c)))``). Its power is computed **exactly, by
enumeration**: with ``n`` paired items, each discordant with probability ``psi`` (the
*discordance*: the share of items on which the two models decide differently) and a difference
``delta`` between the two models' rates (``delta = p(A only) - p(B only)``), the number of
discordant items is ``K ~ Bin(n, psi)`` and, given ``K``, the items only A counts are
``Bin(K, (1 + delta / psi) / 2)``; the power sums, over every ``K``, the probability of the
test's rejection region (its critical values from the same exact binomial test). No normal
approximation, so it is right at every ``n``; ``tests/test_audit_power.py`` checks it against
simulation of the test itself.

Continuous metrics (a mean log-likelihood difference) are compared with an exact sign-flip
permutation test; their power is taken from the paired t-test's (statsmodels ``TTestPower``),
which the permutation test matches closely beyond a few dozen items (an approximation, said so
in the plan).

>>> round(mcnemar_power(200, discordance=0.3, difference=0.1), 3)
0.703
>>> mcnemar_n(discordance=0.3, difference=0.1)
249
>>> round(mcnemar_detectable(249, discordance=0.3), 3)       # the difference found 80% of the time
0.1
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats
from statsmodels.stats.power import TTestPower

from workbench.errors import InvalidInputError
from workbench.stats import minimum_detectable_effect

POWER = 0.8
ALPHA = 0.05
N_MAX = 1_000_000
SIGN_FLIP_MIN_N = 6


def _critical(k: np.ndarray, alpha: float) -> np.ndarray:
    """For each number of discordant items ``k``: the largest ``c`` with ``2 P(Bin(k, 1/2) <= c)
    <= alpha`` (the test rejects when ``min(b, k - b) <= c``), -1 where none."""
    c = stats.binom.ppf(alpha / 2, k, 0.5)
    c = np.where(stats.binom.cdf(c, k, 0.5) * 2 <= alpha, c, c - 1)
    return np.where(k > 0, c, -1)


def mcnemar_power(n: int, discordance: float, difference: float, alpha: float = ALPHA) -> float:
    """Exact power of McNemar's exact test on ``n`` paired items (see the module doc); the
    ``difference`` and ``discordance`` are proportions (0.05 = 5 points), ``|difference| <= discordance``."""
    psi, delta = float(discordance), abs(float(difference))
    if not 0 <= psi <= 1 or delta > psi + 1e-12:
        raise InvalidInputError(f"a difference of {delta:g} needs a discordance of at least that much (got {psi:g}): "
                                "the difference between two rates is made of the items they decide differently")
    if n < 1 or psi == 0:
        return 0.0
    k = np.arange(n + 1)
    weight = stats.binom.pmf(k, n, psi)
    c = _critical(k, alpha)
    p = (1 + min(delta / psi, 1.0)) / 2
    reject = stats.binom.cdf(c, k, p) + stats.binom.sf(k - c - 1, k, p)   # b <= c or b >= k - c
    reject = np.where(c >= 0, reject, 0.0)
    return float(np.clip(np.sum(weight * reject), 0.0, 1.0))


def mcnemar_n(discordance: float, difference: float, power: float = POWER, alpha: float = ALPHA,
              n_max: int = N_MAX) -> int | None:
    """The smallest n whose exact power reaches ``power`` (None beyond ``n_max``). The exact
    power rises with n in small steps down and up (a discrete test); the answer is the first n
    at or above the target, found by bisection on a doubling bracket and checked."""
    hi = 8
    while mcnemar_power(hi, discordance, difference, alpha) < power:
        if hi >= n_max:
            return None
        hi = min(hi * 2, n_max)
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mcnemar_power(mid, discordance, difference, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return min(hi, n_max)


def mcnemar_detectable(n: int, discordance: float, power: float = POWER, alpha: float = ALPHA) -> float | None:
    """The smallest difference (a proportion) found with ``power`` on ``n`` items at this
    discordance; None when even every discordant item in one direction would not be."""
    psi = float(discordance)
    if n < 1 or psi <= 0 or mcnemar_power(n, psi, psi, alpha) < power:
        return None
    lo, hi = 0.0, psi
    for _ in range(40):
        mid = (lo + hi) / 2
        if mcnemar_power(n, psi, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def ttest_n(sd: float, difference: float, power: float = POWER, alpha: float = ALPHA) -> int | None:
    """Paired items a two-sided test needs to find ``difference`` (in the units of ``sd``, the
    standard deviation of the per-item differences) with ``power`` (statsmodels ``TTestPower``)."""
    if sd <= 0 or difference <= 0:
        return None
    effect = difference / sd
    # the exact sign-flip test the audit runs cannot reach p < 0.05 on fewer than 6 items (2 / 2**5),
    # whatever the effect; from there the t-test's power stands in for it
    for n in range(SIGN_FLIP_MIN_N, 12):
        if TTestPower().power(effect, n, alpha) >= power:   # a large effect: below the solver's bracket
            return n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # no convergence: NaN, answered below
        n = TTestPower().solve_power(effect_size=effect, nobs=None, alpha=alpha, power=power)
    n = float(np.ravel(n)[0])
    return max(SIGN_FLIP_MIN_N, int(math.ceil(n))) if np.isfinite(n) and n <= N_MAX else None


def ttest_detectable(n: int, sd: float, power: float = POWER, alpha: float = ALPHA) -> float | None:
    if n < 2 or sd <= 0:
        return None
    return minimum_detectable_effect(n, sd=sd, alpha=alpha, power=power)


def discordance(a, b) -> tuple[float, int]:
    """(share of items decided differently, items both count) of two paired 0/1 outcome vectors."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    n = int(keep.sum())
    return (float(np.mean(a[keep] != b[keep])) if n else float("nan")), n

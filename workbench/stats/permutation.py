"""Exact paired permutation tests: sign flips of per-item differences, label swaps for any metric.

Under the paired null hypothesis "on every item, the two models' outputs are exchangeable" (two
models with the same item-outcome distribution), swapping A's and B's outputs on any set of
items leaves the joint distribution unchanged. The statistic is ``metric(A) - metric(B)``; its
null distribution is its value under swap patterns: all ``2**n`` of them when that is at most
``n_resamples`` (exact test), else ``n_resamples`` random ones (Monte Carlo; p = (count + 1) /
(n_resamples + 1), itself a valid p-value, Phipson & Smyth 2010), with Monte Carlo standard error
``sqrt(p (1 - p) / n_resamples)`` reported. For a mean metric a swap is a sign flip of the
per-item difference ``d_i = a_i - b_i``. With one item the two patterns give p = 1; below 6 items
no pattern set can give p < 0.05 (the smallest p is ``2 / 2**n``).

The conventions are those of ``scipy.stats.permutation_test(permutation_type="samples")``
(two-sided p = 2 min(P(T* <= t), P(T* >= t)) with ties within 100 eps relative, clipped to 1)
and the tests check the p-values against it. It is not called here because its generic pattern
generator costs ~2 s per test at n = 1,500 (it argsorts a (B, n, 2) random array); a comparison
runs ~100 tests, and these vectorised versions take milliseconds.

The sign-flip test is inverted into an interval for the mean difference: the shifts ``delta``
whose test (on ``d - delta``, with the same sign patterns) is not rejected, found by bisection.
It is exact when the differences are symmetric about their mean (always so under the paired
null), approximately valid otherwise (like the t-interval). Below 6 items every shift is
accepted: the interval is (-inf, inf), which is the honest answer without a known range.

>>> import numpy as np
>>> d = np.array([0.3, 1.2, 0.8, -0.1, 0.9, 1.1, 0.4, 0.7])
>>> r = sign_flip(d)
>>> r.exact, r.p_value                  # all 2**8 patterns: 2 * 2 / 256 (two patterns reach |t|)
(True, 0.015625)
>>> sign_flip([0.5]).p_value            # one item: no evidence at all
1.0
"""
from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np

from workbench.errors import InvalidInputError
from workbench.validate import check_level

N_RESAMPLES = 9999
# a derived metric is recomputed from all its columns for every pattern (~100x the cost of a
# sign flip); 1,999 patterns keep a comparison of ~1,500 items under a couple of seconds, with a
# Monte Carlo SE of p of at most 0.011 (0.005 near p = 0.05), reported with every p-value
N_RESAMPLES_DERIVED = 1999
MAX_ELEMENTS = 100_000   # swap-pattern entries per chunk: bounded memory, cache-sized (faster than big chunks)


class PermutationResult(NamedTuple):
    diff: float        # observed statistic(A) - statistic(B) (mean difference for sign_flip)
    ci_low: float      # sign_flip only: inverted-test interval (NaN for paired_permutation)
    ci_high: float
    p_value: float
    n: int
    exact: bool        # all 2**n patterns enumerated
    mc_se: float       # Monte Carlo standard error of p_value (0 when exact)
    n_resamples: int   # patterns used


def _patterns(n: int, n_resamples: int, seed):
    """(exact, total, generator of bool chunks (k, n)): True = swap A and B on that item."""
    exact = n < 63 and 2 ** n <= n_resamples
    total = 2 ** n if exact else n_resamples
    chunk = max(1, MAX_ELEMENTS // max(n, 1))

    def gen():
        rng = np.random.default_rng(seed)
        bits = np.arange(n, dtype=np.int64)
        for start in range(0, total, chunk):
            k = min(chunk, total - start)
            if exact:
                yield ((np.arange(start, start + k, dtype=np.int64)[:, None] >> bits) & 1).astype(bool)
            else:
                yield rng.random((k, n)) < 0.5
    return exact, total, gen()


def _p_two_sided(null: np.ndarray, t: float, exact: bool) -> float:
    """scipy.stats.permutation_test's two-sided p-value (NaN null values are left out)."""
    null = null[np.isfinite(null)]
    if not np.isfinite(t) or len(null) == 0:
        return float("nan")
    gamma = abs(np.finfo(float).eps * 100 * t)
    adj = 0 if exact else 1
    less = (np.count_nonzero(null <= t + gamma) + adj) / (len(null) + adj)
    greater = (np.count_nonzero(null >= t - gamma) + adj) / (len(null) + adj)
    return float(min(1.0, 2 * min(less, greater)))


def _mc_se(p: float, exact: bool, b: int) -> float:
    return 0.0 if exact or not np.isfinite(p) else float(np.sqrt(p * (1 - p) / b))


def _check(n_resamples, level):
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 99:
        raise InvalidInputError(f"n_resamples must be an integer >= 99 (got {n_resamples!r}); 9999 is a good default")
    check_level("level", level)


def sign_flip(d, n_resamples: int = N_RESAMPLES, level: float = 0.95, seed=0) -> PermutationResult:
    """Exact (or Monte Carlo) sign-flip test of mean(d) = 0 and its inverted interval.

    ``d``: per-item paired differences (NaN items are left out). See the module doc.
    """
    _check(n_resamples, level)
    d = np.asarray(d, dtype=float).ravel()
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        raise InvalidInputError("cannot test zero paired items (all differences missing or the group is empty)")
    exact, total, chunks = _patterns(n, n_resamples, seed)
    # per pattern s (+-1 per item): mean(s * d) and mean(s); the null of d - delta is their
    # combination, so every shift reuses the same patterns (the p-value is a function of delta)
    sd, s1 = [], []
    for swap in chunks:
        sd.append(d.sum() - 2 * (swap @ d))
        s1.append(n - 2 * swap.sum(axis=1))
    sd, s1 = np.concatenate(sd) / n, np.concatenate(s1) / n
    mean = float(d.mean())

    def p_at(delta):
        return _p_two_sided(sd - delta * s1, mean - delta, exact)

    p = p_at(0.0)
    alpha = 1 - level
    far = float(np.ptp(d)) + 1.0
    lo = _boundary(p_at, mean, d.min() - far, alpha)
    hi = _boundary(p_at, mean, d.max() + far, alpha)
    if lo == hi:  # every difference equal (n >= 6): no spread to build an interval from
        lo = hi = float("nan")
    return PermutationResult(mean, lo, hi, p, n, exact, _mc_se(p, exact, total), total)


def _boundary(p_at, inside: float, outside: float, alpha: float) -> float:
    """Last accepted shift between ``inside`` (accepted) and ``outside`` by bisection;
    +-inf when even ``outside`` (beyond every difference) is accepted."""
    if p_at(outside) > alpha:
        return float(np.sign(outside - inside) * np.inf)
    for _ in range(200):
        mid = (inside + outside) / 2
        if mid in (inside, outside):
            break
        if p_at(mid) > alpha:
            inside = mid
        else:
            outside = mid
    return float(inside)


def paired_permutation(cols_a: Mapping[str, np.ndarray], cols_b: Mapping[str, np.ndarray], stat: Callable,
                       n_resamples: int = N_RESAMPLES, seed=0) -> PermutationResult:
    """Label-swap permutation test of ``stat(A) - stat(B) = 0`` for any vectorised metric.

    ``cols_a``/``cols_b``: ``{column: per-item array}``, same items in the same order. Each
    pattern swaps A's and B's columns on a set of items and recomputes the difference.
    """
    _check(n_resamples, 0.95)
    keys = list(cols_a)
    a = {k: np.asarray(cols_a[k], dtype=float) for k in keys}
    b = {k: np.asarray(cols_b[k], dtype=float) for k in keys}
    lengths = {len(v) for v in (*a.values(), *b.values())}
    if len(lengths) != 1:
        raise InvalidInputError(f"paired data need the same items on both sides, got lengths {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        raise InvalidInputError("cannot test zero paired items")
    with np.errstate(invalid="ignore", divide="ignore"):
        t = float(stat(a)) - float(stat(b))
        exact, total, chunks = _patterns(n, n_resamples, seed)
        same = {k for k in keys if np.array_equal(a[k], b[k], equal_nan=True)}  # item properties: no swap
        null = []
        for swap in chunks:
            pa = {k: np.broadcast_to(a[k], swap.shape) if k in same else np.where(swap, b[k], a[k]) for k in keys}
            pb = {k: np.broadcast_to(b[k], swap.shape) if k in same else np.where(swap, a[k], b[k]) for k in keys}
            null.append(np.asarray(stat(pa), float).reshape(len(swap)) - np.asarray(stat(pb), float).reshape(len(swap)))
    null = np.concatenate(null)
    p = _p_two_sided(null, t, exact)
    return PermutationResult(t, float("nan"), float("nan"), p, n, exact, _mc_se(p, exact, total), total)

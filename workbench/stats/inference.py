"""Paired tests, multiple-comparison correction and power: the evidence a published audit needs.

Uses scipy/statsmodels where they already do it right (McNemar's exact test, Benjamini-Hochberg,
power of a paired t-test, the BCa bootstrap); the permutation tests are in
:mod:`workbench.stats.permutation`. :func:`paired_bootstrap` is kept for any metric: a paired
BCa interval on ``stat(A) - stat(B)`` (items resampled jointly; only from ``MIN_N_BOOTSTRAP``
items) with the p-value of the exact paired permutation test (not of the bootstrap: a bootstrap
"p-value" from a handful of items is not a p-value).

>>> import numpy as np
>>> a = np.array([1, 1, 1, 1, 1, 0, 1, 1]); b = np.array([0, 0, 0, 1, 1, 0, 0, 1])
>>> round(mcnemar_exact(a, b).p_value, 4)   # 4 discordant pairs, all favouring a: 2 * 0.5**4
0.125
"""
from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from workbench.errors import InvalidInputError
from workbench.stats.bootstrap import DEFAULT_N_BOOT, _scipy_ci, _validate
from workbench.stats.intervals import MIN_N_BOOTSTRAP, binary_outcomes
from workbench.stats.permutation import N_RESAMPLES, paired_permutation
from workbench.validate import Int, Optional, Real, checked


class McNemarResult(NamedTuple):
    statistic: float   # the smaller discordant count (exact binomial test)
    p_value: float
    n_a_only: int      # items where only A's outcome is 1
    n_b_only: int      # items where only B's outcome is 1
    n: int


class PairedResult(NamedTuple):
    diff: float        # statistic(A) - statistic(B)
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def mcnemar_exact(a, b) -> McNemarResult:
    """McNemar's exact test of two paired 0/1 outcome vectors (statsmodels, binomial on the
    discordant pairs, two-sided). Items where either outcome is NaN are left out (and not counted
    in ``n``)."""
    a, b = binary_outcomes(a, "a"), binary_outcomes(b, "b")
    if a.shape != b.shape:
        raise InvalidInputError(f"paired outcomes need the same items: shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep].astype(bool), b[keep].astype(bool)
    n01, n10 = int(np.sum(~a & b)), int(np.sum(a & ~b))
    table = [[int(np.sum(a & b)), n10], [n01, int(np.sum(~a & ~b))]]
    if n01 + n10 == 0:  # no discordant pair: no evidence of a difference at all
        return McNemarResult(0.0, 1.0, n10, n01, int(keep.sum()))
    res = mcnemar(table, exact=True)
    return McNemarResult(float(res.statistic), float(res.pvalue), n10, n01, int(keep.sum()))


def _joint(cols_a, cols_b):
    ca = cols_a if isinstance(cols_a, Mapping) else {"x": cols_a}
    cb = cols_b if isinstance(cols_b, Mapping) else {"x": cols_b}
    ca = {k: np.asarray(v, float) for k, v in ca.items()}
    cb = {k: np.asarray(v, float) for k, v in cb.items()}
    lengths = {len(v) for v in (*ca.values(), *cb.values())}
    if len(lengths) != 1:
        raise InvalidInputError(f"paired data need the same items on both sides, got lengths {sorted(lengths)}")
    if lengths.pop() == 0:
        raise InvalidInputError("cannot compare zero items")
    return ca, cb


def paired_bootstrap_ci(cols_a, cols_b, stat: Callable, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                        method: str = "bca", seed=0, min_n: int = MIN_N_BOOTSTRAP) -> tuple[float, float, str | None]:
    """``(low, high, note)``: paired bootstrap interval of ``stat(A) - stat(B)``, items resampled
    jointly (scipy.stats.bootstrap on the item indices). NaN with the reason in ``note`` below
    ``min_n`` items (default ``MIN_N_BOOTSTRAP``; lower it only to study calibration) or when
    the bootstrap is degenerate."""
    _validate(n_boot, level, method)   # also below min_n: a bad setting is refused whatever n is
    ca, cb = _joint(cols_a, cols_b)
    n = len(next(iter(ca.values())))
    if n < min_n:
        return float("nan"), float("nan"), (f"n = {n} < MIN_N_BOOTSTRAP = {min_n}: "
                                            "a bootstrap interval would under-cover")
    joint = {**{("a", k): v for k, v in ca.items()}, **{("b", k): v for k, v in cb.items()}}

    def diff(cols):
        sa = stat({k: v for (side, k), v in cols.items() if side == "a"})
        sb = stat({k: v for (side, k), v in cols.items() if side == "b"})
        return np.asarray(sa, float) - np.asarray(sb, float)

    low, high = _scipy_ci(joint, diff, n_boot, level, method, seed)
    if not (np.isfinite(low) and np.isfinite(high)) or low == high:
        return float("nan"), float("nan"), "degenerate bootstrap (all resamples equal, or the metric undefined on some)"
    return low, high, None


def paired_bootstrap(cols_a: Mapping[str, np.ndarray] | np.ndarray, cols_b: Mapping[str, np.ndarray] | np.ndarray,
                     stat: Callable | None = None, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                     method: str = "bca", seed=0, n_resamples: int = N_RESAMPLES) -> PairedResult:
    """CI and p-value for ``stat(A) - stat(B)`` on the SAME items.

    ``cols_a``/``cols_b`` are per-item arrays (or mappings of arrays) in the same item order.
    The interval is a paired bootstrap (:func:`paired_bootstrap_ci`: NaN below
    ``MIN_N_BOOTSTRAP`` items); the p-value is the exact paired permutation test
    (:func:`workbench.stats.permutation.paired_permutation`; 1 for a single item).

    >>> a = np.array([1.0, 2.0, 3.0, 4.0]); b = a - 1.0
    >>> r = paired_bootstrap(a, b, n_boot=200)
    >>> r.diff, r.p_value, bool(np.isnan(r.ci_low))   # 4 items: all 16 swaps, p = 2/16; too few for a CI
    (1.0, 0.125, True)
    """
    _validate(n_boot, level, method)
    ca, cb = _joint(cols_a, cols_b)
    stat = stat or (lambda c: np.nanmean(next(iter(c.values())), axis=-1))
    test = paired_permutation(ca, cb, stat, n_resamples=n_resamples, seed=seed)
    low, high, _ = paired_bootstrap_ci(ca, cb, stat, n_boot, level, method, seed)
    return PairedResult(test.diff, low, high, test.p_value, test.n)


def _adjusted(p_values, method: str, alpha: float = 0.05) -> np.ndarray:
    """statsmodels ``multipletests`` over the finite p-values only (None/NaN stay NaN and are
    not counted as tests)."""
    p = np.array([np.nan if v is None else v for v in np.ravel(p_values)], dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method=method)[1]
    return out.reshape(np.shape(p_values))


def benjamini_hochberg(p_values, alpha: float = 0.05) -> np.ndarray:
    """BH-adjusted p-values (statsmodels ``fdr_bh``); NaN p-values stay NaN and are not counted
    as tests."""
    return _adjusted(p_values, "fdr_bh", alpha)


def holm(p_values, alpha: float = 0.05) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels ``holm``: family-wise error control, for a few planned
    tests); None/NaN p-values stay NaN and are not counted as tests.

    >>> holm([0.01, 0.04, None]).round(3).tolist()
    [0.02, 0.04, nan]
    """
    return _adjusted(p_values, "holm", alpha)


@checked(n=Int(min=2), sd=Optional(Real(gt=0)), p=Real(gt=0, lt=1), alpha=Real(gt=0, lt=1), power=Real(gt=0, lt=1))
def minimum_detectable_effect(n: int, sd: float | None = None, p: float = 0.5, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """Smallest true difference a two-sided test at ``alpha`` detects with ``power`` on n items.

    From the power of a one-sample/paired t-test (statsmodels ``TTestPower``): the standardised
    effect ``d`` for ``n``, times the per-item standard deviation. ``sd`` defaults to that of a 0/1
    outcome with rate ``p`` (``sqrt(p(1-p))``, 0.5 at p=0.5), so for a proportion metric such as %
    stereotyped the answer is in proportion units (multiply by 100 for percentage points).
    For a paired comparison pass ``sd`` = the standard deviation of the per-item differences.

    >>> round(minimum_detectable_effect(1508) * 100, 1)   # CrowS-Pairs: +-3.6 points around 50%
    3.6
    """
    if sd is None:
        sd = float(np.sqrt(p * (1 - p)))
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(abs(np.ravel(d)[0]) * sd)  # solve_power may return the negative root

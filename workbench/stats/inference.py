"""Paired tests, multiple-comparison correction and power: the evidence a published audit needs.

Uses scipy/statsmodels where they already do it right (McNemar's exact test, Benjamini-Hochberg,
power of a paired t-test); the paired bootstrap is written here because neither library returns
a CI on the difference of an arbitrary metric between two models on the same items.

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
from workbench.stats.bootstrap import (DEFAULT_N_BOOT, _jackknife, _validate, bootstrap_distribution,
                                       interval_from_distribution)


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


def _binary(x, name):
    x = np.asarray(x, dtype=float)
    if not np.all(np.isin(x[~np.isnan(x)], (0.0, 1.0))):
        raise InvalidInputError(f"{name} must hold 0/1 outcomes for McNemar's test; use a paired bootstrap "
                                "for continuous outcomes")
    return x


def mcnemar_exact(a, b) -> McNemarResult:
    """McNemar's exact test of two paired 0/1 outcome vectors (statsmodels, binomial on the
    discordant pairs, two-sided). Items where either outcome is NaN are left out (and not counted
    in ``n``)."""
    a, b = _binary(a, "a"), _binary(b, "b")
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


def paired_bootstrap(cols_a: Mapping[str, np.ndarray] | np.ndarray, cols_b: Mapping[str, np.ndarray] | np.ndarray,
                     stat: Callable | None = None, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                     method: str = "percentile", seed=0) -> PairedResult:
    """CI and p-value for ``stat(A) - stat(B)`` on the SAME items, resampled jointly.

    ``cols_a``/``cols_b`` are per-item arrays (or mappings of arrays) in the same item order.
    The p-value is two-sided, from the bootstrap distribution shifted to the null of no
    difference (Efron & Tibshirani 1993, sec. 16.4): share of ``|d* - d| >= |d|``.

    >>> a = np.array([1.0, 2.0, 3.0, 4.0]); b = a - 1.0
    >>> paired_bootstrap(a, b, n_boot=200).diff
    1.0
    """
    _validate(n_boot, level, method)
    ca = cols_a if isinstance(cols_a, Mapping) else {"x": cols_a}
    cb = cols_b if isinstance(cols_b, Mapping) else {"x": cols_b}
    joint = {**{f"a\x00{k}": np.asarray(v, float) for k, v in ca.items()},
             **{f"b\x00{k}": np.asarray(v, float) for k, v in cb.items()}}
    lengths = {len(v) for v in joint.values()}
    if len(lengths) != 1:
        raise InvalidInputError(f"paired data need the same items on both sides, got lengths {sorted(lengths)}")
    n = lengths.pop()
    if n == 0:
        raise InvalidInputError("cannot compare zero items")
    stat = stat or (lambda c: np.nanmean(next(iter(c.values())), axis=-1))

    def diff(cols):
        sa = stat({k[2:]: v for k, v in cols.items() if k.startswith("a\x00")})
        sb = stat({k[2:]: v for k, v in cols.items() if k.startswith("b\x00")})
        return np.asarray(sa, float) - np.asarray(sb, float)

    with np.errstate(invalid="ignore", divide="ignore"):
        d = float(diff(joint))
        boot = bootstrap_distribution(joint, diff, n_boot, seed)
        jk = _jackknife(joint, diff, n) if method == "bca" and n > 1 else None
    low, high = interval_from_distribution(boot, d, level, method if jk is not None else "percentile", jk)
    finite = boot[np.isfinite(boot)]
    if not np.isfinite(d) or len(finite) == 0:
        p = float("nan")
    elif np.all(finite == d) and d == 0:
        p = 1.0
    else:  # +1 smoothing: a p-value from B resamples is never exactly zero
        p = float((np.sum(np.abs(finite - d) >= abs(d)) + 1) / (len(finite) + 1))
    return PairedResult(d, low, high, min(p, 1.0), n)


def benjamini_hochberg(p_values, alpha: float = 0.05) -> np.ndarray:
    """BH-adjusted p-values (statsmodels ``fdr_bh``); NaN p-values stay NaN and are not counted
    as tests."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=alpha, method="fdr_bh")[1]
    return out


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
    if n < 2:
        raise InvalidInputError(f"need at least 2 items for a minimum detectable effect, got n={n}")
    if sd is None:
        if not 0 < p < 1:
            raise InvalidInputError(f"p must be in (0, 1), got {p}")
        sd = float(np.sqrt(p * (1 - p)))
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power, alternative="two-sided")
    return float(abs(np.ravel(d)[0]) * sd)  # solve_power may return the negative root

"""Seeded, vectorised bootstrap confidence intervals (percentile or BCa).

Items are resampled with replacement; a statistic is evaluated on every resample in one numpy
call (statistics follow the convention of :mod:`workbench.stats.metrics`: reduce over the last
axis). Resamples are drawn in chunks so memory stays bounded (about ``max_elements`` indices at
a time) on data sets of any size. The same seed gives the same interval.

>>> import numpy as np
>>> x = np.r_[np.ones(60), np.zeros(40)]
>>> ci = bootstrap_ci(x, seed=0)
>>> round(ci.estimate, 2), ci.low < 0.6 < ci.high
(0.6, True)
"""
from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from workbench.errors import InvalidInputError
from workbench.stats.metrics import Metric, columns_of

METHODS = ("percentile", "bca")
DEFAULT_N_BOOT = 2000


class CI(NamedTuple):
    estimate: float
    low: float
    high: float
    n: int


def _as_cols(data) -> dict:
    if isinstance(data, Mapping):
        return {k: np.asarray(v, dtype=float) for k, v in data.items()}
    return {"x": np.asarray(data, dtype=float)}


def _n_items(cols: Mapping) -> int:
    lengths = {len(v) for v in cols.values()}
    if len(lengths) != 1:
        raise InvalidInputError(f"all columns must have the same number of items, got lengths {sorted(lengths)}")
    return lengths.pop()


def _default_stat(cols):
    (only,) = cols.values()
    return np.nanmean(only, axis=-1)


def _validate(n_boot, level, method):
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise InvalidInputError(f"n_boot must be an integer >= 100 (got {n_boot!r}); 2000 is a good default")
    if not 0 < level < 1:
        raise InvalidInputError(f"level must be in (0, 1), e.g. 0.95; got {level!r}")
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")


def resample_indices(n: int, n_boot: int, seed, max_elements: int = 2_000_000):
    """Yield index arrays of shape ``(chunk, n)``, ``n_boot`` rows in all, from one seeded stream."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, max_elements // max(n, 1)))
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        yield rng.integers(0, n, size=(k, n))
        done += k


def bootstrap_distribution(cols: Mapping[str, np.ndarray], stat: Callable, n_boot: int = DEFAULT_N_BOOT,
                           seed=0) -> np.ndarray:
    """``stat`` on ``n_boot`` resamples of the items (rows shared by all columns): shape (n_boot,)."""
    n = _n_items(cols)
    out = []
    for idx in resample_indices(n, n_boot, seed):
        out.append(np.asarray(stat({k: v[idx] for k, v in cols.items()}), dtype=float).reshape(len(idx)))
    return np.concatenate(out)


def _jackknife(cols, stat, n, max_elements=2_000_000):
    """Leave-one-out values of ``stat``, computed in chunks of rows of an (n, n-1) index matrix."""
    base = np.arange(n)
    out = []
    chunk = max(1, max_elements // max(n, 1))
    for start in range(0, n, chunk):
        rows = np.arange(start, min(n, start + chunk))
        idx = np.stack([np.delete(base, i) for i in rows])
        out.append(np.asarray(stat({k: v[idx] for k, v in cols.items()}), dtype=float).reshape(len(rows)))
    return np.concatenate(out)


def interval_from_distribution(boot: np.ndarray, estimate: float, level: float, method: str = "percentile",
                               jackknife: np.ndarray | None = None) -> tuple[float, float]:
    """Percentile or BCa interval from a bootstrap distribution (NaN resamples are ignored)."""
    boot = boot[np.isfinite(boot)]
    if len(boot) == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    qs = np.array([alpha, 1 - alpha])
    if method == "bca":
        # bias correction from the share of resamples below the estimate (ties count half)
        prop = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / len(boot)
        z0 = ndtri(np.clip(prop, 1e-10, 1 - 1e-10))
        jk = jackknife[np.isfinite(jackknife)]
        d = jk.mean() - jk
        denom = 6.0 * np.sum(d ** 2) ** 1.5
        a = np.sum(d ** 3) / denom if denom > 0 else 0.0
        z = ndtri(qs)
        qs = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
        if not np.all(np.isfinite(qs)):
            qs = np.array([alpha, 1 - alpha])
    low, high = np.quantile(boot, qs)
    return float(low), float(high)


def bootstrap_ci(data, stat: Callable | Metric | None = None, n_boot: int = DEFAULT_N_BOOT,
                 level: float = 0.95, method: str = "percentile", seed=0) -> CI:
    """Point estimate and bootstrap confidence interval of ``stat`` over items.

    Parameters
    ----------
    data : 1-D array-like of per-item values, or mapping ``{column: array}`` (same length).
    stat : vectorised statistic (reduces the last axis; see :mod:`workbench.stats.metrics`).
        Defaults to the mean of the single column (a proportion for 0/1 data).
    method : ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated; uses a
        jackknife, better for skewed statistics and small n).

    >>> bootstrap_ci([0, 1, 1, 1], n_boot=500, seed=1).estimate
    0.75
    """
    _validate(n_boot, level, method)
    cols = _as_cols(data)
    n = _n_items(cols)
    if n == 0:
        raise InvalidInputError("cannot bootstrap zero items: the data (or this category) is empty")
    stat = stat or _default_stat
    estimate = float(stat(cols))
    boot = bootstrap_distribution(cols, stat, n_boot, seed)
    jk = _jackknife(cols, stat, n) if method == "bca" and n > 1 else None
    if method == "bca" and n <= 1:
        method = "percentile"
    low, high = interval_from_distribution(boot, estimate, level, method, jk)
    return CI(estimate, low, high, n)


def bootstrap_frame(frame: pd.DataFrame, fn: Callable[[pd.DataFrame], float], n_boot: int = 1000,
                    level: float = 0.95, seed=0) -> CI:
    """Percentile CI of ANY function of an item frame (``fn(frame) -> float``), resampling rows.

    Slower than :func:`bootstrap_ci` (one Python call per resample); use it for statistics that
    cannot be written vectorised.
    """
    _validate(n_boot, level, "percentile")
    n = len(frame)
    if n == 0:
        raise InvalidInputError("cannot bootstrap an empty item frame")
    estimate = float(fn(frame))
    boot = np.array([float(fn(frame.iloc[row])) for idx in resample_indices(n, n_boot, seed) for row in idx])
    low, high = interval_from_distribution(boot, estimate, level)
    return CI(estimate, low, high, n)


def summarise(items: pd.DataFrame, metrics, by: str | None = None, n_boot: int = DEFAULT_N_BOOT,
              level: float = 0.95, method: str = "percentile", seed=0, overall_label: str = "all") -> pd.DataFrame:
    """Every metric overall and per category, each with a bootstrap CI.

    Returns a tidy frame ``metric, category, value, ci_low, ci_high, n`` (category
    ``overall_label`` for all items). The seed is the same for every row, so re-running gives the
    same table.
    """
    _validate(n_boot, level, method)
    groups = [(overall_label, items)]
    if by is not None:
        if by not in items.columns:
            raise KeyError(f"no category column {by!r} in the item frame; columns: {list(items.columns)}")
        groups += [(str(k), g) for k, g in items.groupby(by, sort=True, observed=True)]
    rows = []
    for metric in metrics:
        for label, g in (groups[:1] if metric.overall_only else groups):
            cols = columns_of(g, [metric])
            usable = ~np.any([np.isnan(v) for v in cols.values()], axis=0) if cols else np.ones(len(g), bool)
            cols = {k: v[usable] for k, v in cols.items()}
            n = int(usable.sum())
            if n == 0:
                rows.append((metric.name, label, np.nan, np.nan, np.nan, 0))
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                ci = bootstrap_ci(cols, metric, n_boot=n_boot, level=level, method=method, seed=seed)
            if metric.count is not None:
                n = int(metric.count(cols))
            rows.append((metric.name, label, ci.estimate, ci.low, ci.high, n))
    return pd.DataFrame(rows, columns=["metric", "category", "value", "ci_low", "ci_high", "n"])

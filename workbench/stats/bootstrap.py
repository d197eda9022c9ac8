"""Seeded bootstrap confidence intervals (scipy.stats.bootstrap: percentile or BCa) and summaries.

Items are resampled with replacement (all columns of an item together: scipy resamples the item
indices and the statistic looks its columns up); a statistic is evaluated on every resample in
one numpy call (statistics follow the convention of :mod:`workbench.stats.metrics`: reduce over
the last axis), in batches so memory stays bounded. The same seed gives the same interval.

:func:`summarise` (every probe's ``.summary()``) applies the rules of
:mod:`workbench.stats.intervals`: exact Clopper-Pearson intervals for binary metrics at every n;
BCa bootstrap intervals for continuous and derived metrics from ``MIN_N_BOOTSTRAP`` items, NaN
below it (and for a degenerate bootstrap, e.g. all values equal) with the reason recorded.

>>> import numpy as np
>>> x = np.r_[np.ones(60), np.zeros(40)]
>>> ci = bootstrap_ci(x, seed=0)
>>> round(ci.estimate, 2), ci.low < 0.6 < ci.high
(0.6, True)
"""
from __future__ import annotations

import warnings
from typing import Callable, Mapping, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.errors import InvalidInputError
from workbench.stats.intervals import MIN_N, MIN_N_BOOTSTRAP, proportion_ci
from workbench.stats.metrics import Metric, columns_of
from workbench.validate import check_level

METHODS = ("percentile", "bca")
SCIPY_METHODS = {"percentile": "percentile", "bca": "BCa"}
DEFAULT_N_BOOT = 2000
MAX_ELEMENTS = 2_000_000   # resampled indices held at once


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
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise InvalidInputError(f"n_boot must be an integer >= 100 (got {n_boot!r}); 2000 is a good default")
    check_level("level", level)
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")


def resample_indices(n: int, n_boot: int, seed, max_elements: int = MAX_ELEMENTS):
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


def _scipy_ci(cols: Mapping[str, np.ndarray], stat: Callable, n_boot: int, level: float, method: str, seed,
              vectorized: bool = True) -> tuple[float, float]:
    """scipy.stats.bootstrap on the item indices (so any number of columns is resampled jointly).

    NaN when scipy cannot give an interval (fewer than 2 items, a degenerate or undefined
    bootstrap distribution); scipy's warnings about it are silenced because the NaN says it.
    """
    n = _n_items(cols)
    if n < 2:
        return float("nan"), float("nan")

    def on_idx(idx, axis=-1):
        return np.asarray(stat({k: v[idx] for k, v in cols.items()}), dtype=float)

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        res = sps.bootstrap((np.arange(n),), on_idx, n_resamples=n_boot, confidence_level=level,
                            method=SCIPY_METHODS[method], vectorized=vectorized, rng=np.random.default_rng(seed),
                            batch=max(1, MAX_ELEMENTS // n))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _below_min_n(n: int, min_n) -> bool:
    """True (with a warning saying why the interval is NaN) when ``n < min_n``."""
    if isinstance(min_n, bool) or not isinstance(min_n, (int, np.integer)) or min_n < 1:
        raise InvalidInputError(f"min_n must be an integer >= 1 (got {min_n!r}); MIN_N_BOOTSTRAP = "
                                f"{MIN_N_BOOTSTRAP} is the default")
    if n >= min_n:
        return False
    warnings.warn(f"n = {n} < min_n = {min_n}: no bootstrap interval (NaN). Below MIN_N_BOOTSTRAP = "
                  f"{MIN_N_BOOTSTRAP} items a bootstrap interval covers less than it says (a 95% percentile "
                  "interval of a mean covers about half the time at n = 2); for a proportion use proportion_ci, "
                  "for a mean difference sign_flip. Pass min_n to study the bootstrap itself.", UserWarning,
                  stacklevel=3)
    return True


def bootstrap_ci(data, stat: Callable | Metric | None = None, n_boot: int = DEFAULT_N_BOOT,
                 level: float = 0.95, method: str = "percentile", seed=0, min_n: int = MIN_N_BOOTSTRAP) -> CI:
    """Point estimate and bootstrap confidence interval of ``stat`` over items (scipy.stats.bootstrap).

    Parameters
    ----------
    data : 1-D array-like of per-item values, or mapping ``{column: array}`` (same length).
    stat : vectorised statistic (reduces the last axis; see :mod:`workbench.stats.metrics`).
        Defaults to the mean of the single column (a proportion for 0/1 data).
    method : ``"percentile"`` (default) or ``"bca"`` (bias-corrected and accelerated; better for
        skewed statistics).

    min_n : below this many items the interval is NaN, with a warning (default
        ``MIN_N_BOOTSTRAP``, as every summary): the bootstrap under-covers at small n (a 95%
        percentile interval of a mean covers about half the time at n = 2;
        ``benchmarks/stats_calibration.py`` prints the table). Lower it only to study the
        bootstrap itself.

    The interval is also NaN with one item or a degenerate bootstrap (BCa with all values equal).

    >>> ci = bootstrap_ci([0, 1, 1, 1] * 25, n_boot=500, seed=1)
    >>> ci.estimate, ci.low < 0.75 < ci.high
    (0.75, True)
    """
    _validate(n_boot, level, method)
    cols = _as_cols(data)
    n = _n_items(cols)
    if n == 0:
        raise InvalidInputError("cannot bootstrap zero items: the data (or this category) is empty")
    stat = stat or _default_stat
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = float(stat(cols))
    if _below_min_n(n, min_n):
        return CI(estimate, float("nan"), float("nan"), n)
    low, high = _scipy_ci(cols, stat, n_boot, level, method, seed)
    return CI(estimate, low, high, n)


def bootstrap_frame(frame: pd.DataFrame, fn: Callable[[pd.DataFrame], float], n_boot: int = 1000,
                    level: float = 0.95, seed=0, min_n: int = MIN_N_BOOTSTRAP) -> CI:
    """Percentile CI of ANY function of an item frame (``fn(frame) -> float``), resampling rows.

    Slower than :func:`bootstrap_ci` (one Python call per resample); use it for statistics that
    cannot be written vectorised. Same seed, same resamples and the same ``min_n`` rule as
    :func:`bootstrap_ci`.
    """
    _validate(n_boot, level, "percentile")
    n = len(frame)
    if n == 0:
        raise InvalidInputError("cannot bootstrap an empty item frame")
    estimate = float(fn(frame))
    if _below_min_n(n, min_n):
        return CI(estimate, float("nan"), float("nan"), n)
    low, high = _scipy_ci({"row": np.arange(n)}, lambda c: fn(frame.iloc[c["row"].astype(int)]), n_boot, level,
                          "percentile", seed, vectorized=False)
    return CI(estimate, low, high, n)


def _is_binary(metric, cols) -> bool:
    """A binary metric whose outcome holds only 0/1 on the items it counts (the Clopper-Pearson
    case)."""
    if metric.kind != "binary" or metric.outcome not in cols:
        return False
    x = metric.counted(cols)
    x = x[~np.isnan(x)]
    return bool(np.all((x == 0) | (x == 1)))


def summary_row(metric: Metric, cols: Mapping[str, np.ndarray], n_boot: int = DEFAULT_N_BOOT, level: float = 0.95,
                method: str = "bca", seed=0) -> tuple[float, float, float, int, str, str | None]:
    """``(value, ci_low, ci_high, n, interval, note)`` for one metric on complete items ``cols``.

    ``n`` is the number of items the metric counts (:meth:`Metric.n_counted`: a mean over a
    subset counts the subset); ``interval`` names the method used; ``note`` says why the
    interval is NaN (else None).
    """
    n = _n_items(cols) if cols else 0
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0, "none", "no items"
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float(metric(cols))
    n = metric.n_counted(cols)
    if _is_binary(metric, cols):
        x = metric.counted(cols)
        x = x[~np.isnan(x)]
        if len(x) == 0:
            return value, float("nan"), float("nan"), 0, "none", "no items in the subset the metric counts"
        low, high = sorted(metric.scale * b + metric.offset for b in proportion_ci(int(x.sum()), len(x), level))
        return value, low, high, n, "clopper_pearson", None
    if n < MIN_N_BOOTSTRAP:
        return (value, float("nan"), float("nan"), n, "none",
                f"n = {n} < MIN_N_BOOTSTRAP = {MIN_N_BOOTSTRAP}: a bootstrap interval would under-cover")
    low, high = _scipy_ci(cols, metric, n_boot, level, method, seed)
    if not (np.isfinite(low) and np.isfinite(high)) or low == high:
        return (value, float("nan"), float("nan"), n, "none",
                "degenerate bootstrap (all resamples equal, or the metric undefined on some)")
    return value, low, high, n, f"{method}_bootstrap", None


def summarise(items: pd.DataFrame, metrics, by: str | None = None, n_boot: int = DEFAULT_N_BOOT,
              level: float = 0.95, method: str = "bca", seed=0, overall_label: str = "all") -> pd.DataFrame:
    """Every metric overall and per category, each with a confidence interval.

    Returns a tidy frame ``metric, category, value, ci_low, ci_high, n`` (category
    ``overall_label`` for all items). Intervals: Clopper-Pearson for binary metrics (0/1
    outcomes), a ``method`` bootstrap (BCa by default) for the others from ``MIN_N_BOOTSTRAP``
    items, else NaN. ``attrs``: ``level``, ``min_n`` and ``min_n_bootstrap`` (the rules),
    ``small_n`` (``[metric, category]`` of rows with n < ``MIN_N``), ``notes`` (one
    ``{metric, category, note}`` per NaN interval, saying why), ``intervals`` (``{metric:
    method}``: the interval method where one is given, "none" if no row has one). The seed is
    the same for every row, so re-running gives the same table.

    >>> out = summarise(pd.DataFrame({"ok": [1, 1]}), [Metric("acc", lambda c: 100 * c["ok"].mean(-1), ("ok",),
    ...                 kind="binary", outcome="ok", scale=100)])
    >>> out[["value", "ci_low", "ci_high", "n"]].round(1).values.tolist()   # 2 of 2: not [100, 100]
    [[100.0, 15.8, 100.0, 2.0]]
    """
    _validate(n_boot, level, method)
    groups = [(overall_label, items)]
    if by is not None:
        if by not in items.columns:
            raise KeyError(f"no category column {by!r} in the item frame; columns: {list(items.columns)}")
        groups += [(str(k), g) for k, g in items.groupby(by, sort=True, observed=True)]
    rows, small, notes, kinds = [], [], [], {}
    for metric in metrics:
        for label, g in (groups[:1] if metric.overall_only else groups):
            cols = columns_of(g, [metric])
            usable = ~np.any([np.isnan(v) for v in cols.values()], axis=0) if cols else np.ones(len(g), bool)
            cols = {k: v[usable] for k, v in cols.items()}
            value, low, high, n, kind, note = summary_row(metric, cols, n_boot, level, method, seed)
            if kind != "none" or metric.name not in kinds:
                kinds[metric.name] = kind
            rows.append((metric.name, label, value, low, high, n))
            if n < MIN_N:
                small.append([metric.name, label])
            if note:
                notes.append({"metric": metric.name, "category": label, "note": note})
    out = pd.DataFrame(rows, columns=["metric", "category", "value", "ci_low", "ci_high", "n"])
    out.attrs.update(level=level, min_n=MIN_N, min_n_bootstrap=MIN_N_BOOTSTRAP, small_n=small, notes=notes,
                     intervals=kinds)
    return out

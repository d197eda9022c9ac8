"""Metric specs: what a reported number is, computed from per-item columns.

A :class:`Metric` is a *vectorised* function of named per-item columns. It is called with a
mapping ``{column: array}`` where each array has the items on its LAST axis; with a 1-D array it
returns a scalar, with a 2-D array ``(n_resamples, n_items)`` it returns one value per resample.
That one convention lets the same definition give the point estimate, bootstrap confidence
intervals (thousands of resamples in one numpy call) and paired model-vs-model differences.

``kind`` says how a paired comparison tests it:

- ``"binary"``: the metric is ``scale * mean(outcome) + offset`` of a 0/1 per-item ``outcome``
  column (accuracy, % stereotyped). Paired test: McNemar's exact test; summaries: Clopper-Pearson.
- ``"continuous"``: ``scale * mean(outcome) + offset`` of a real-valued column (log-likelihood
  difference). Paired test: exact sign-flip permutation test of the per-item differences.
- ``"derived"``: any other function of the columns (StereoSet icat, BBQ's s_amb, WEAT effect
  size). Paired test: exact paired permutation test (A/B swapped within items) of the metric.

A mean over a SUBSET of the items (BBQ's accuracy in ambiguous contexts: the items whose
``is_ambig`` is 1) is still a binary or continuous metric: ``where={"is_ambig": 1}`` says which
items it counts, and it gets the same exact interval and test, on those items only (its ``n`` is
how many it counts). Declaring it ``"derived"`` instead would leave it without an interval below
``MIN_N_BOOTSTRAP`` items. When every ``where`` column is an item property (the same for both
models), a paired comparison tests the items both count with McNemar's exact test (binary) or
the sign-flip test (continuous); when a ``where`` column is a model output (BBQ's bias score
counts the answers that name a person), the two models count different items and the comparison
falls back to the paired permutation test of the whole metric.

>>> import numpy as np
>>> m = mean_metric("accuracy", "correct", kind="binary", scale=100)
>>> float(m({"correct": np.array([1, 0, 1, 1])}))
75.0
>>> amb = mean_metric("acc_ambig", "correct", kind="binary", scale=100, where={"is_ambig": 1})
>>> cols = {"correct": np.array([1, 0, 1, 1]), "is_ambig": np.array([1, 1, 0, 0])}
>>> float(amb(cols)), int(amb.n_counted(cols))     # 1 of the 2 ambiguous items
(50.0, 2)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

KINDS = ("binary", "continuous", "derived")


@dataclass(frozen=True)
class Metric:
    """One reported number. ``fn(cols) -> value`` reduces over the last axis (see module doc).

    ``columns`` are the per-item columns ``fn`` reads; ``outcome`` (binary/continuous kinds) is the
    per-item column whose scaled mean the metric is. ``ideal`` is the value an unbiased/perfect
    model would get (e.g. 50 for % stereotyped), shown beside results, never used in tests.
    ``overall_only`` metrics are not split by category (summaries and comparisons). ``count``
    says how many items a derived metric uses when that is fewer than the rows (e.g. BBQ's s_amb,
    on ambiguous contexts only); summaries report it as ``n``. ``where`` (binary/continuous
    kinds): ``((column, value), ...)``, the items the mean counts (all conditions hold; see the
    module doc); ``offset`` is added after scaling (a bias score ``200 * p - 100``).
    """

    name: str
    fn: Callable[[Mapping[str, np.ndarray]], np.ndarray]
    columns: tuple
    kind: str = "derived"
    outcome: str | None = None
    scale: float = 1.0
    ideal: float | None = None
    description: str = field(default="", compare=False)
    overall_only: bool = False   # e.g. a correlation across categories: meaningless within one
    count: Callable | None = field(default=None, compare=False)  # cols -> items it uses (default: all)
    where: tuple = ()            # ((column, value), ...): the items a mean counts (default: all)
    offset: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Metric kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind != "derived" and self.outcome is None:
            raise ValueError(f"a {self.kind} metric needs the per-item `outcome` column it averages")
        object.__setattr__(self, "where", _as_where(self.where))
        if self.where and self.kind == "derived":
            raise ValueError("`where` selects the items a binary or continuous mean counts; a derived metric "
                             "reads its subset inside fn (and says how many items it uses with `count`)")
        unread = [c for c, _ in self.where if c not in self.columns]
        if unread:
            raise ValueError(f"`where` column(s) {unread} must be among the metric's columns {self.columns}")

    def __call__(self, cols: Mapping[str, np.ndarray]):
        return self.fn(cols)

    def in_subset(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean per item: the items ``where`` selects (all of them without ``where``)."""
        return _subset(cols, self.where, np.shape(cols[self.outcome]) if self.outcome else None)

    def counted(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """The per-item outcome as floats, NaN for the items the mean does not count (outside
        ``where``, or missing): what the exact tests and intervals work on."""
        x = np.asarray(cols[self.outcome], dtype=float)
        return np.where(self.in_subset(cols), x, np.nan)

    def n_counted(self, cols: Mapping[str, np.ndarray]) -> int:
        """How many items the metric counts: ``count`` for a derived metric that has one, the
        non-missing outcomes in the subset for a mean, else the number of rows."""
        if self.outcome is not None and self.kind != "derived":
            return int(np.sum(~np.isnan(self.counted(cols))))
        if self.count is not None:
            return int(self.count(cols))
        return len(next(iter(cols.values()))) if cols else 0


def _as_where(where) -> tuple:
    """``where`` as a tuple of ``(column, float value)`` pairs, from a dict, pairs or a column
    name (meaning ``{name: 1}``)."""
    if where is None:
        return ()
    if isinstance(where, str):
        where = {where: 1}
    pairs = where.items() if isinstance(where, Mapping) else where
    try:
        return tuple((str(c), float(v)) for c, v in pairs)
    except (TypeError, ValueError):
        raise ValueError(f"`where` must map column names to numbers, e.g. {{'is_ambig': 1}}; got {where!r}") from None


def _subset(cols, where, shape=None) -> np.ndarray:
    mask = np.ones(shape if shape is not None else np.shape(next(iter(cols.values()))), dtype=bool)
    for column, value in where:
        mask &= np.asarray(cols[column], dtype=float) == value
    return mask


def mean_metric(name: str, outcome: str, kind: str = "binary", scale: float = 1.0,
                ideal: float | None = None, description: str = "", where=None, offset: float = 0.0) -> Metric:
    """``scale * mean(items[outcome]) + offset``: the common case (accuracy, % stereotyped, mean
    diff), optionally over the items ``where`` selects (a dict ``{column: value}``; see the module
    doc).

    NaN outcomes (an item where the quantity is undefined) are left out of the mean; the mean of
    no items is NaN.
    """
    where = _as_where(where)

    def fn(cols, _c=outcome, _s=scale, _w=where, _o=offset):
        x = np.asarray(cols[_c], dtype=float)
        keep = _subset(cols, _w, x.shape) & ~np.isnan(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            return _s * (np.sum(np.where(keep, x, 0.0), axis=-1) / np.sum(keep, axis=-1)) + _o
    columns = tuple(dict.fromkeys((outcome, *[c for c, _ in where])))
    return Metric(name, fn, columns, kind=kind, outcome=outcome, scale=scale, ideal=ideal,
                  description=description, where=where, offset=offset)


def columns_of(frame, metrics) -> dict:
    """The numpy columns that ``metrics`` read from an item frame, as float arrays."""
    needed = sorted({c for m in metrics for c in m.columns})
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise KeyError(f"item frame lacks column(s) {missing} needed by the metrics; "
                       f"it has {list(frame.columns)}")
    return {c: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in needed}

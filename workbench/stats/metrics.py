"""Metric specs: what a reported number is, computed from per-item columns.

A :class:`Metric` is a *vectorised* function of named per-item columns. It is called with a
mapping ``{column: array}`` where each array has the items on its LAST axis; with a 1-D array it
returns a scalar, with a 2-D array ``(n_resamples, n_items)`` it returns one value per resample.
That one convention lets the same definition give the point estimate, bootstrap confidence
intervals (thousands of resamples in one numpy call) and paired model-vs-model differences.

``kind`` says how a paired comparison tests it:

- ``"binary"``: the metric is ``scale * mean(outcome)`` of a 0/1 per-item ``outcome`` column
  (accuracy, % stereotyped). Paired test: McNemar's exact test; summaries: Clopper-Pearson.
- ``"continuous"``: ``scale * mean(outcome)`` of a real-valued column (log-likelihood
  difference). Paired test: exact sign-flip permutation test of the per-item differences.
- ``"derived"``: any other function of the columns (StereoSet icat, BBQ bias scores, WEAT effect
  size). Paired test: exact paired permutation test (A/B swapped within items) of the metric.

>>> import numpy as np
>>> m = mean_metric("accuracy", "correct", kind="binary", scale=100)
>>> float(m({"correct": np.array([1, 0, 1, 1])}))
75.0
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
    says how many items a metric uses when that is fewer than the rows (e.g. BBQ's accuracy in
    ambiguous contexts); summaries report it as ``n``.
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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Metric kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind != "derived" and self.outcome is None:
            raise ValueError(f"a {self.kind} metric needs the per-item `outcome` column it averages")

    def __call__(self, cols: Mapping[str, np.ndarray]):
        return self.fn(cols)


def mean_metric(name: str, outcome: str, kind: str = "binary", scale: float = 1.0,
                ideal: float | None = None, description: str = "") -> Metric:
    """``scale * mean(items[outcome])``: the common case (accuracy, % stereotyped, mean diff).

    NaN outcomes (an item where the quantity is undefined) are left out of the mean.
    """
    def fn(cols, _c=outcome, _s=scale):
        return _s * np.nanmean(np.asarray(cols[_c], dtype=float), axis=-1)
    return Metric(name, fn, (outcome,), kind=kind, outcome=outcome, scale=scale, ideal=ideal,
                  description=description)


def columns_of(frame, metrics) -> dict:
    """The numpy columns that ``metrics`` read from an item frame, as float arrays."""
    needed = sorted({c for m in metrics for c in m.columns})
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise KeyError(f"item frame lacks column(s) {missing} needed by the metrics; "
                       f"it has {list(frame.columns)}")
    return {c: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in needed}

"""Paired model-vs-model comparison on the same items: ``wb.compare(res_a, res_b)``.

The comparison protocol
-----------------------
``compare`` works on any result that can describe itself as a :class:`Comparable`: either the
object IS one, or it has a method ``comparable() -> Comparable``. Probe results
(:mod:`workbench.probes`) and benchmark task results implement that method. A ``Comparable`` is:

- ``items``: DataFrame, one row per item, with the per-item columns the metrics read;
- ``metrics``: list of :class:`workbench.stats.metrics.Metric` (``kind`` binary, continuous or
  derived says which paired test applies);
- ``item_key``: column name(s) that identify an item across runs (same data => same keys);
- ``category``: column name of the category (or None): results are also given per category;
- ``fingerprint``: the model's ``state_id`` (fingerprint plus active interventions);
- ``label``: how to show the model; ``name``: the probe/task (both sides must match).

Tests (the ``test`` column names the one used):

- binary metrics (``scale * mean`` of a 0/1 outcome): ``mcnemar_exact``, McNemar's exact test
  (statsmodels); interval: the conservative exact paired-proportion interval of
  :func:`workbench.stats.intervals.paired_proportion_ci` (coverage >= level at every n; about
  [-99, 99] on a % scale at n = 1, never zero-width).
- continuous metrics (``scale * mean`` of a real outcome): ``sign_flip``, the exact sign-flip
  permutation test of the per-item differences (all 2^n patterns while 2^n <= ``n_perm``, else
  ``n_perm`` random ones); interval: the inverted sign-flip test (exact under the paired null and
  for symmetric differences; (-inf, inf) below 6 items: no finite interval is honest there).
- derived metrics (any function of the columns): ``paired_permutation``, the same test with the
  two models' columns swapped within items (at most 1,999 Monte Carlo patterns); interval: a
  paired BCa bootstrap (items resampled jointly) from ``MIN_N_BOOTSTRAP`` items, NaN below it.
- a binary or continuous mean over a subset of the items (``where``, e.g. BBQ's accuracy in
  ambiguous contexts): the test and interval of its kind on the items both models count (``n``);
  when the subset depends on the models' outputs (the two count different items) it is tested as
  a derived metric, and ``attrs["rows"]`` says so.

One item always gives p = 1, and below ``MIN_N`` (6) items no test can reach p < 0.05.
``p_adjusted`` is Benjamini-Hochberg across the categories of each metric; the overall row, one
planned test per metric, keeps its own p-value. Rows with n < ``MIN_N`` are LEFT OUT of the BH
family (``p_adjusted`` NaN): they cannot reject, and counting them would only dilute the
family; they are listed in ``attrs["small_n"]``. So a one-item category is never "significant".

``attrs``: ``min_n``, ``min_n_bootstrap``, ``small_n`` (``[metric, category]`` pairs), ``n_perm``,
``rows`` (one dict per row, in order: ``metric, category, exact`` (p-value by enumeration),
``p_mc_se`` (Monte Carlo standard error of the p-value; 0 when exact), ``interval`` (method) and
``note`` (why the interval is NaN or infinite, else None)), plus the models and settings.
The calibration of every test and interval, n = 1 to 1,000, is printed by
``benchmarks/stats_calibration.py``.

>>> import pandas as pd, numpy as np
>>> from workbench.stats.metrics import mean_metric
>>> acc = [mean_metric("accuracy", "correct", kind="binary", scale=100)]
>>> items = pd.DataFrame({"id": range(6), "correct": [1, 1, 1, 1, 0, 1]})
>>> a = Comparable(items, acc, ["id"], None, "model-a", "A", "toy")
>>> b = Comparable(items.assign(correct=[0, 0, 1, 1, 0, 1]), acc, ["id"], None, "model-b", "B", "toy")
>>> row = compare(a, b).iloc[0]
>>> row.metric, round(float(row["diff"]), 1), round(float(row.p_value), 2)   # 2 discordant: p = 2 * 0.5**2
('accuracy', 33.3, 0.5)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.versions import versions
from workbench.results import ResultFrame
from workbench.stats.bootstrap import DEFAULT_N_BOOT
from workbench.stats.inference import benjamini_hochberg, mcnemar_exact, paired_bootstrap_ci
from workbench.stats.intervals import MIN_N, MIN_N_BOOTSTRAP, paired_proportion_ci
from workbench.stats.metrics import Metric, columns_of
from workbench.stats.permutation import N_RESAMPLES, N_RESAMPLES_DERIVED, paired_permutation, sign_flip
from workbench.validate import BOOL, LEVEL, Int, checked

COLUMNS = ["metric", "category", "diff", "ci_low", "ci_high", "p_value", "p_adjusted", "n", "test",
           "value_a", "value_b"]


@dataclass
class Comparable:
    """What :func:`compare` needs from a result (see the module docstring)."""

    items: pd.DataFrame
    metrics: list
    item_key: list
    category: str | None
    fingerprint: str
    label: str
    name: str
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.item_key, str):
            self.item_key = [self.item_key]


def as_comparable(result) -> Comparable:
    if isinstance(result, Comparable):
        return result
    if hasattr(result, "comparable"):
        return result.comparable()
    raise TypeError(f"compare() needs probe/task results (objects with .comparable()), got {type(result).__name__}")


def _align(a: Comparable, b: Comparable) -> pd.DataFrame:
    """b's items reordered to a's item order; errors if the item sets differ."""
    for side in (a, b):
        missing = [k for k in side.item_key if k not in side.items.columns]
        if missing:
            raise InvalidInputError(f"{side.label}: item key column(s) {missing} missing from its items")
        if side.items.duplicated(side.item_key).any():
            raise InvalidInputError(f"{side.label}: item keys {side.item_key} are not unique; cannot pair items")
    ka = pd.MultiIndex.from_frame(a.items[a.item_key].astype(str))
    kb = pd.MultiIndex.from_frame(b.items[b.item_key].astype(str))
    only_a, only_b = ka.difference(kb), kb.difference(ka)
    if len(only_a) or len(only_b):
        raise InvalidInputError(
            f"paired comparison needs the same items: {len(only_a)} item(s) only in {a.label!r} "
            f"(e.g. {list(only_a[:3])}), {len(only_b)} only in {b.label!r} (e.g. {list(only_b[:3])}). "
            "Run both models on the same data with the same `limit` and options.")
    pos = pd.Series(np.arange(len(kb)), index=kb)
    return b.items.iloc[pos.loc[ka].to_numpy()].reset_index(drop=True)


def _same_subset(metric: Metric, ca, cb) -> bool:
    """Both models count the same items: every ``where`` column is equal on both sides (an item
    property such as BBQ's context condition, not a model output)."""
    return all(np.array_equal(ca[c], cb[c], equal_nan=True) for c, _ in metric.where)


def _one(metric: Metric, ca, cb, n_boot, n_perm, level, seed) -> dict:
    """The test and interval for one metric on one group of paired items."""
    mean_kind = metric.kind in ("binary", "continuous")
    if mean_kind and _same_subset(metric, ca, cb):
        return _one_mean(metric, ca, cb, n_perm, level, seed)
    r = paired_permutation(ca, cb, metric, n_resamples=min(n_perm, N_RESAMPLES_DERIVED), seed=seed)
    lo, hi, note = paired_bootstrap_ci(ca, cb, metric, n_boot=n_boot, level=level, seed=seed)
    if mean_kind:  # a subset that depends on the model's outputs: the two sides count different items
        why = (f"the items {metric.name} counts (where {dict(metric.where)}) differ between the models, so "
               "the paired exact test of a mean does not apply: paired permutation test of the whole metric")
        note = f"{why}; {note}" if note else why
    return dict(diff=r.diff, lo=lo, hi=hi, p=r.p_value, n=r.n, test="paired_permutation", exact=r.exact,
                p_mc_se=r.mc_se, interval="none" if np.isnan(lo) else "paired_bca_bootstrap", note=note)


def _one_mean(metric: Metric, ca, cb, n_perm, level, seed) -> dict:
    """Binary or continuous mean, on the items both sides count (outside ``where`` or missing: NaN,
    left out by the exact tests)."""
    a, b = metric.counted(ca), metric.counted(cb)
    if metric.kind == "binary":
        test = mcnemar_exact(a, b)
        diff, lo, hi, n = paired_proportion_ci(a, b, level)
        lo, hi = sorted((metric.scale * lo, metric.scale * hi))
        return dict(diff=metric.scale * diff, lo=lo, hi=hi,
                    p=test.p_value if n else np.nan, n=n,
                    test="mcnemar_exact", exact=True, p_mc_se=0.0, interval="paired_clopper_pearson",
                    note=None if n else "no item is counted by both sides")
    d = metric.scale * (a - b)
    if not np.isfinite(d).any():
        return dict(diff=np.nan, lo=np.nan, hi=np.nan, p=np.nan, n=0, test="sign_flip", exact=True, p_mc_se=0.0,
                    interval="none", note="no item has both outcomes")
    r = sign_flip(d, n_resamples=n_perm, level=level, seed=seed)
    note = None
    if np.isinf(r.ci_low) or np.isinf(r.ci_high):
        note = f"n = {r.n}: too few items for a finite distribution-free interval"
    elif np.isnan(r.ci_low):
        note = "every per-item difference is equal: no spread to build an interval from"
    return dict(diff=r.diff, lo=r.ci_low, hi=r.ci_high, p=r.p_value, n=r.n, test="sign_flip", exact=r.exact,
                p_mc_se=r.mc_se, interval="inverted_sign_flip", note=note)


@checked(n_boot=Int(min=100), level=LEVEL, seed=Int(min=0), allow_same_model=BOOL, n_perm=Int(min=99))
def compare(res_a, res_b, metrics=None, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95, seed=0,
            allow_same_model: bool = False, n_perm: int = N_RESAMPLES) -> pd.DataFrame:
    """Paired comparison of two models' results on the same items.

    Parameters
    ----------
    res_a, res_b : results of the same probe/task on the same items (see the protocol above).
    metrics : names of metrics to compare (default: all of ``res_a``'s).
    n_boot : bootstrap resamples (derived metrics' intervals).
    n_perm : permutation patterns (Monte Carlo beyond ``2**n > n_perm``; derived metrics use at
        most ``N_RESAMPLES_DERIVED`` = 1,999, as each pattern recomputes the whole metric).
    allow_same_model : comparing two results of the same model state is refused unless True
        (e.g. for a before/after diff of library versions, where the fingerprint is unchanged).

    Returns a DataFrame ``metric, category, diff, ci_low, ci_high, p_value, p_adjusted, n, test,
    value_a, value_b`` where ``diff = value_a - value_b`` (for mean metrics with missing
    outcomes: the mean difference over the items both sides have). See the module doc for the
    tests, intervals and ``attrs``.
    """
    a, b = as_comparable(res_a), as_comparable(res_b)
    if a.name != b.name:
        raise InvalidInputError(f"cannot compare different probes/tasks: {a.name!r} vs {b.name!r}")
    if a.fingerprint == b.fingerprint and not allow_same_model:
        raise InvalidInputError(
            f"both results come from the same model state ({a.fingerprint}); a paired comparison of a model "
            "with itself says nothing. Pass allow_same_model=True to compare two runs of one model.")
    b_items = _align(a, b)
    a_items = a.items.reset_index(drop=True)
    by_name = {m.name: m for m in a.metrics}
    names = list(by_name) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in by_name or m not in {x.name for x in b.metrics}]
    if unknown:
        raise InvalidInputError(f"unknown metric(s) {unknown}; both results have {sorted(by_name)}")
    groups = [("all", np.ones(len(a_items), bool))]
    if a.category is not None and a.category in a_items.columns:
        cats = a_items[a.category].astype(str)
        groups += [(c, (cats == c).to_numpy()) for c in sorted(cats.unique())]
    rows, info = [], []
    for name in names:
        metric = by_name[name]
        ca_all, cb_all = columns_of(a_items, [metric]), columns_of(b_items, [metric])
        for label, mask in (groups[:1] if metric.overall_only else groups):
            ca = {k: v[mask] for k, v in ca_all.items()}
            cb = {k: v[mask] for k, v in cb_all.items()}
            with np.errstate(invalid="ignore", divide="ignore"):
                va, vb = float(metric(ca)), float(metric(cb))
                r = _one(metric, ca, cb, n_boot, n_perm, level, seed)
            rows.append([name, label, r["diff"], r["lo"], r["hi"], r["p"], np.nan, r["n"], r["test"], va, vb])
            info.append(dict(metric=name, category=label, exact=bool(r["exact"]), p_mc_se=float(r["p_mc_se"]),
                             interval=r["interval"], note=r["note"]))
    out = ComparisonFrame(rows, columns=COLUMNS)
    small = (out.n < MIN_N).to_numpy()
    for name in names:  # BH across categories, per metric, leaving out rows under MIN_N
        sel = ((out.metric == name) & (out.category != "all")).to_numpy() & ~small
        out.loc[sel, "p_adjusted"] = benjamini_hochberg(out.loc[sel, "p_value"].to_numpy())
        overall = ((out.metric == name) & (out.category == "all")).to_numpy() & ~small
        out.loc[overall, "p_adjusted"] = out.loc[overall, "p_value"]
    out.attrs.update(model_a=a.label, model_b=b.label, fingerprint_a=a.fingerprint, fingerprint_b=b.fingerprint,
                     name=a.name, level=level, n_boot=n_boot, n_perm=n_perm, seed=seed, min_n=MIN_N,
                     min_n_bootstrap=MIN_N_BOOTSTRAP, small_n=out.loc[small, ["metric", "category"]].values.tolist(),
                     rows=info)
    out.attrs["provenance"] = {"model_a": {"name": a.label, "fingerprint_id": a.fingerprint},
                               "model_b": {"name": b.label, "fingerprint_id": b.fingerprint}, "result": a.name,
                               "versions": versions(), "options": {"level": level, "n_boot": n_boot,
                                                                   "n_perm": n_perm, "seed": seed}}
    return out


class ComparisonFrame(ResultFrame):
    """What :func:`compare` returns: one row per (metric, category) with the paired difference,
    its interval and p-values; ``.summary()``: the overall rows (category "all") with whether
    the difference is significant at the comparison's level (``1 - level``); ``.plot()``: the
    forest plot of :func:`plot_comparison`."""

    def summary(self) -> pd.DataFrame:
        rows = pd.DataFrame(self)
        rows = rows[rows.category == "all"] if (rows.category == "all").any() else rows
        out = rows[["metric", "diff", "ci_low", "ci_high", "p_adjusted", "n"]].reset_index(drop=True)
        return out.assign(significant=out.p_adjusted < 1 - self.attrs.get("level", 0.95))

    def default_plot(self, ax=None, **kwargs):
        return plot_comparison(self, ax=ax, **kwargs)


def plot_comparison(frame: pd.DataFrame, metric: str | None = None, ax=None):
    """Forest plot of a :func:`compare` frame: the difference with its CI per category.

    Rows under ``MIN_N`` items are grey and labelled as untested; an infinite or missing
    interval is drawn as an open point alone (its label says "no CI")."""
    import matplotlib.pyplot as plt

    metric = metric or frame.metric.iloc[0]
    sub = frame[frame.metric == metric].reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.4 * len(sub) + 1.2))
    y = np.arange(len(sub))[::-1]
    diff, low, high = (sub[c].to_numpy(float) for c in ("diff", "ci_low", "ci_high"))
    finite = np.isfinite(low) & np.isfinite(high)
    small = (sub.n < frame.attrs.get("min_n", MIN_N)).to_numpy()
    for keep, colour in ((~small, "C0"), (small, "0.6")):
        ok = keep & finite
        ax.errorbar(diff[ok], y[ok], xerr=[diff[ok] - low[ok], high[ok] - diff[ok]], fmt="o", capsize=3, color=colour)
        ax.plot(diff[keep & ~finite], y[keep & ~finite], "o", mfc="none", color=colour)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    labels = [f"{c} (n={n} < {MIN_N}: no test)" if s else f"{c} (q={q:.2g})" + ("" if f else ", no CI")
              for c, q, n, s, f in zip(sub.category, sub.p_adjusted, sub.n, small, finite)]
    ax.set_yticks(y, labels)
    ax.set_xlabel(f"{metric}: {frame.attrs.get('model_a', 'A')} - {frame.attrs.get('model_b', 'B')}")
    return ax

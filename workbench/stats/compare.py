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

Tests: binary metrics (``scale * mean`` of a 0/1 outcome) get McNemar's exact test on the
outcome; continuous and derived metrics get a paired bootstrap of ``metric(A) - metric(B)``
(items resampled jointly). Every row has a bootstrap CI on the difference. ``p_adjusted`` is
Benjamini-Hochberg across the categories of each metric (the overall row, one planned test per
metric, keeps its own p-value).

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
from workbench.stats.bootstrap import DEFAULT_N_BOOT
from workbench.stats.inference import benjamini_hochberg, mcnemar_exact, paired_bootstrap
from workbench.stats.metrics import Metric, columns_of

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


def _one(metric: Metric, ca, cb, n_boot, level, seed):
    if metric.kind == "binary":
        test = mcnemar_exact(ca[metric.outcome], cb[metric.outcome])
        pb = paired_bootstrap(ca, cb, metric, n_boot=n_boot, level=level, seed=seed)
        return pb.diff, pb.ci_low, pb.ci_high, test.p_value, test.n, "mcnemar_exact"
    pb = paired_bootstrap(ca, cb, metric, n_boot=n_boot, level=level, seed=seed)
    return pb.diff, pb.ci_low, pb.ci_high, pb.p_value, pb.n, "paired_bootstrap"


def compare(res_a, res_b, metrics=None, n_boot: int = DEFAULT_N_BOOT, level: float = 0.95, seed=0,
            allow_same_model: bool = False) -> pd.DataFrame:
    """Paired comparison of two models' results on the same items.

    Parameters
    ----------
    res_a, res_b : results of the same probe/task on the same items (see the protocol above).
    metrics : names of metrics to compare (default: all of ``res_a``'s).
    allow_same_model : comparing two results of the same model state is refused unless True
        (e.g. for a before/after diff of library versions, where the fingerprint is unchanged).

    Returns a DataFrame ``metric, category, diff, ci_low, ci_high, p_value, p_adjusted, n, test,
    value_a, value_b`` where ``diff = value_a - value_b``.
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
    rows = []
    for name in names:
        metric = by_name[name]
        ca_all, cb_all = columns_of(a_items, [metric]), columns_of(b_items, [metric])
        for label, mask in (groups[:1] if metric.overall_only else groups):
            ca = {k: v[mask] for k, v in ca_all.items()}
            cb = {k: v[mask] for k, v in cb_all.items()}
            with np.errstate(invalid="ignore", divide="ignore"):
                va, vb = float(metric(ca)), float(metric(cb))
                diff, lo, hi, p, n, test = _one(metric, ca, cb, n_boot, level, seed)
            rows.append([name, label, diff, lo, hi, p, np.nan, n, test, va, vb])
    out = pd.DataFrame(rows, columns=COLUMNS)
    for name in names:  # BH across categories, per metric
        sel = (out.metric == name) & (out.category != "all")
        out.loc[sel, "p_adjusted"] = benjamini_hochberg(out.loc[sel, "p_value"].to_numpy())
        out.loc[(out.metric == name) & (out.category == "all"), "p_adjusted"] = \
            out.loc[(out.metric == name) & (out.category == "all"), "p_value"]
    out.attrs.update(model_a=a.label, model_b=b.label, fingerprint_a=a.fingerprint, fingerprint_b=b.fingerprint,
                     name=a.name, level=level, n_boot=n_boot, seed=seed)
    return out


def plot_comparison(frame: pd.DataFrame, metric: str | None = None, ax=None):
    """Forest plot of a :func:`compare` frame: the difference with its CI per category."""
    import matplotlib.pyplot as plt

    metric = metric or frame.metric.iloc[0]
    sub = frame[frame.metric == metric].reset_index(drop=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.4 * len(sub) + 1.2))
    y = np.arange(len(sub))[::-1]
    ax.errorbar(sub["diff"], y, xerr=[sub["diff"] - sub.ci_low, sub.ci_high - sub["diff"]], fmt="o", capsize=3)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(y, [f"{c} (q={q:.2g})" for c, q in zip(sub.category, sub.p_adjusted)])
    ax.set_xlabel(f"{metric}: {frame.attrs.get('model_a', 'A')} - {frame.attrs.get('model_b', 'B')}")
    return ax

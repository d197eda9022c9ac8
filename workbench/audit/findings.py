"""The findings of a two-model audit: one headline row per probe or task, read in plain language.

A *finding* puts side by side, for one metric of one probe or task: model A's value with its
interval, model B's, the paired difference A - B with its interval, the p-value of the paired
test, n and the minimum detectable effect, plus the same per category. The headline family's
p-values are adjusted together (Holm: a strong family-wise guarantee for a handful of planned
comparisons), and a one-line reading says what the numbers support and no more.

Numbers are shown with as many digits as their interval supports (:func:`fmt_interval`), and
rows with fewer than ``min_n`` items are marked: their intervals are honest but wide, and no
test on fewer than 6 paired items can reach p < 0.05.

>>> entry = finding_from_frames("CrowS-Pairs", "pct_stereotype",
...     summary_a=[{"metric": "pct_stereotype", "category": "all", "value": 62.0, "ci_low": 49.0, "ci_high": 73.0, "n": 60}],
...     summary_b=[{"metric": "pct_stereotype", "category": "all", "value": 55.0, "ci_low": 42.0, "ci_high": 67.0, "n": 60}],
...     comparison=[{"metric": "pct_stereotype", "category": "all", "diff": 7.0, "ci_low": -6.0, "ci_high": 20.0,
...                  "p_value": 0.31, "p_adjusted": 0.31, "n": 60, "test": "mcnemar_exact"}],
...     label_a="A", label_b="B", ideal=50, sd_diff=0.5, scale=1.0)
>>> fmt_interval(entry["a"]["value"], entry["a"]["ci_low"], entry["a"]["ci_high"])
'62 [49, 73]'
>>> reading(entry, p_adjusted=0.31)[:46]
'No evidence that A and B differ on these items'
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError

from workbench.stats import MIN_N, compare, minimum_detectable_effect  # MIN_N: rows under it are marked
from workbench.stats import holm as adjusted
from workbench.stats.compare import _align, as_comparable
from workbench.stats.metrics import columns_of


# ---- formatting ---------------------------------------------------------------------------
def _decimals(half_width: float) -> int:
    """Decimals that show two significant digits of the interval's half-width (0 to 4)."""
    if not np.isfinite(half_width) or half_width <= 0:
        return 2
    return int(min(4, max(0, 1 - math.floor(math.log10(half_width)))))


def fmt_number(value, decimals: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{decimals}f}"


def fmt_interval(value, low, high, signed: bool = False) -> str:
    """``value [low, high]`` rounded to what the interval supports; ``value (no interval)`` when
    there is none."""
    finite = all(x is not None and np.isfinite(x) for x in (low, high))
    d = _decimals((high - low) / 2) if finite else 2
    sign = "+" if signed else ""
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:{sign}.{d}f}"
    return f"{text} [{low:{sign}.{d}f}, {high:{sign}.{d}f}]" if finite else f"{text} (no interval)"


def fmt_p(p) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


# ---- building a finding -------------------------------------------------------------------
def _records(frame) -> pd.DataFrame:
    return frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))


def _row(frame: pd.DataFrame, metric: str, category: str = "all") -> dict | None:
    sel = frame[(frame.metric == metric) & (frame.category.astype(str) == category)]
    return None if sel.empty else sel.iloc[0].to_dict()


def _side(row: dict | None, scale: float) -> dict:
    if row is None:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    f = lambda k: None if row.get(k) is None or not np.isfinite(row[k]) else float(row[k]) * scale  # noqa: E731
    return {"value": f("value"), "ci_low": f("ci_low"), "ci_high": f("ci_high"), "n": int(row.get("n") or 0)}


def _diff(row: dict | None, scale: float) -> dict:
    if row is None:
        return {"value": None, "ci_low": None, "ci_high": None, "p_value": None, "p_adjusted": None, "n": 0,
                "test": None}
    f = lambda k: None if row.get(k) is None or not np.isfinite(row[k]) else float(row[k])  # noqa: E731
    return {"value": None if f("diff") is None else f("diff") * scale,
            "ci_low": None if f("ci_low") is None else f("ci_low") * scale,
            "ci_high": None if f("ci_high") is None else f("ci_high") * scale,
            "p_value": f("p_value"), "p_adjusted": f("p_adjusted"), "n": int(row.get("n") or 0),
            "test": row.get("test")}


def finding_from_frames(name: str, metric: str, summary_a, summary_b, comparison, label_a: str, label_b: str,
                        ideal: float | None = None, description: str = "", sd_diff: float | None = None,
                        scale: float = 1.0, unit: str = "") -> dict:
    """A finding from two summaries (``metric, category, value, ci_low, ci_high, n``) and a
    :func:`workbench.compare` frame. ``scale`` multiplies values for display (e.g. 100 for a
    0-1 accuracy); ``sd_diff`` is the standard deviation of the per-item paired differences in
    the metric's own units (for the minimum detectable effect)."""
    sa, sb, cmp = _records(summary_a), _records(summary_b), _records(comparison)
    for what, frame in (("summary_a", sa), ("summary_b", sb), ("comparison", cmp)):
        if frame.empty or metric not in set(frame.metric):
            raise InvalidInputError(f"{name}: {what} has no rows for metric {metric!r}; it has "
                                    f"{sorted(set(frame.metric)) if not frame.empty else 'no rows'}")
    overall = _diff(_row(cmp, metric), scale)
    n = overall["n"]
    mde = None
    if sd_diff is not None and np.isfinite(sd_diff) and sd_diff > 0 and n >= 2:
        mde = minimum_detectable_effect(n, sd=float(sd_diff)) * scale
    cats = [c for c in dict.fromkeys(cmp[cmp.metric == metric].category.astype(str)) if c != "all"]
    categories = [{"category": c, "a": _side(_row(sa, metric, c), scale), "b": _side(_row(sb, metric, c), scale),
                   "diff": _diff(_row(cmp, metric, c), scale)} for c in cats]
    return {"name": name, "metric": metric, "description": description, "unit": unit,
            "ideal": None if ideal is None else float(ideal) * scale,
            "model_a": label_a, "model_b": label_b, "a": _side(_row(sa, metric), scale),
            "b": _side(_row(sb, metric), scale), "diff": overall, "n": n, "mde": mde,
            "categories": categories, "min_n": MIN_N}


def _sd_of_differences(ca, cb, metric) -> float | None:
    """Standard deviation of the per-item paired differences of a mean-type metric (in its
    units), for the minimum detectable effect; None for derived metrics or fewer than 2 items."""
    if metric.outcome is None or metric.kind == "derived":
        return None
    b_items = _align(ca, cb)      # b's items in a's order (it checks the item sets match)
    # only the items the metric counts (a mean over a subset, e.g. BBQ's ambiguous contexts)
    d = (metric.counted(columns_of(ca.items, [metric])) - metric.counted(columns_of(b_items, [metric]))) * metric.scale
    d = d[np.isfinite(d)]
    return float(np.std(d, ddof=1)) if len(d) > 1 else None


def finding(name: str, res_a, res_b, metric: str, comparison: pd.DataFrame | None = None,
            scale: float = 1.0, unit: str = "") -> dict:
    """A finding from two probe results (``wb.run_probe``) of the same probe on the same items."""
    ca, cb = as_comparable(res_a), as_comparable(res_b)
    by_name = {m.name: m for m in ca.metrics}
    if metric not in by_name:
        raise InvalidInputError(f"{name}: no metric {metric!r}; the results have {sorted(by_name)}")
    m = by_name[metric]
    comparison = compare(res_a, res_b) if comparison is None else comparison
    sd = _sd_of_differences(ca, cb, m)
    return finding_from_frames(name, metric, res_a.summary(), res_b.summary(), comparison, ca.label, cb.label,
                               ideal=m.ideal, description=m.description, sd_diff=sd, scale=scale, unit=unit)


def finding_from_bench(name: str, bench, model_a: str, model_b: str, task: str, metric: str,
                       scale: float = 1.0, unit: str = "", by_category: bool = True) -> dict:
    """A finding from a benchmark grid (``wb.run``): two models on the same items of ``task``.
    ``by_category=False`` keeps only the overall row (e.g. BLiMP's 67 paradigms of a few pairs)."""
    table = bench.table(groups=by_category)
    def summary_of(model):
        t = table[table.model == model].copy()
        t["category"] = np.where(t.task == task, "all", t.task.str.slice(len(task) + 1))
        return t[(t.task == task) | t.task.str.startswith(task + "/")]
    comparison = bench.compare(model_a, model_b, task)
    if not by_category:
        comparison = comparison[comparison.category == "all"]
    ca, cb = bench.comparable(model_a, task), bench.comparable(model_b, task)
    m = {x.name: x for x in ca.metrics}[metric]
    sd = _sd_of_differences(ca, cb, m)
    return finding_from_frames(name, metric, summary_of(model_a), summary_of(model_b), comparison, model_a, model_b,
                               ideal=m.ideal, description=m.description, sd_diff=sd, scale=scale, unit=unit)


# ---- reading ------------------------------------------------------------------------------
def holm(p_values) -> list:
    """Holm-adjusted p-values (:func:`workbench.stats.holm`) as a list, None where one is missing."""
    p_values = [np.nan if p is None else p for p in p_values]
    return [None if not np.isfinite(v) else float(v) for v in adjusted(p_values)]


HOLM_FAMILY = "holm across the {n} headline rows"
BH_FAMILY = "benjamini-hochberg across this row's categories"


def adjust_findings(entries: list[dict]) -> list[dict]:
    """Write into each entry's ``diff.p_adjusted`` its Holm-adjusted p across all the headline rows
    (the same value as the headline table's and ``Audit.findings()``'s ``p_adjusted``), and name
    the family of every adjusted p in ``p_adjustment``: a row's categories keep their
    Benjamini-Hochberg values across the row's categories (from :func:`workbench.compare`).
    Changes the entries in place and returns them.

    >>> e = lambda p: {"diff": {"p_value": p, "p_adjusted": p}, "categories": []}
    >>> [x["diff"]["p_adjusted"] for x in adjust_findings([e(0.01), e(0.03), e(0.04)])]
    [0.03, 0.06, 0.06]
    """
    family = HOLM_FAMILY.format(n=len(entries))
    for e, p in zip(entries, holm([e["diff"]["p_value"] for e in entries])):
        e["diff"]["p_adjusted"] = p
        e["diff"]["p_adjustment"] = family
        for c in e.get("categories") or []:
            c["diff"]["p_adjustment"] = BH_FAMILY
    return entries


def _ideal_clause(label: str, side: dict, ideal) -> str:
    if ideal is None or side["ci_low"] is None:
        return ""
    if side["ci_low"] > ideal:
        return f"{label}'s interval lies above the ideal {ideal:g}"
    if side["ci_high"] < ideal:
        return f"{label}'s interval lies below the ideal {ideal:g}"
    return f"{label}'s interval includes the ideal {ideal:g}"


def reading(entry: dict, p_adjusted: float | None, alpha: float = 0.05) -> str:
    """One plain-language sentence (or two) that does not claim more than the numbers show."""
    a, b, d, n = entry["model_a"], entry["model_b"], entry["diff"], entry["n"]
    unit = f" {entry['unit']}" if entry.get("unit") else ""
    interval = fmt_interval(d["value"], d["ci_low"], d["ci_high"], signed=True)
    if d["value"] is None or n == 0:
        text = f"No paired comparison of {a} and {b} could be made."
    elif n < MIN_N:
        text = (f"Too few items (n = {n}) for any paired test to detect a difference at the 5% level; "
                f"difference {a} - {b} = {interval}{unit}.")
    elif p_adjusted is not None and p_adjusted < alpha:
        more = a if d["value"] > 0 else b
        text = (f"{more} scores higher on {entry['metric']} on these items: difference {a} - {b} = "
                f"{interval}{unit}, adjusted p = {fmt_p(p_adjusted)}, n = {n}.")
    else:
        text = f"No evidence that {a} and {b} differ on these items (difference {interval}{unit}, " \
               f"adjusted p = {fmt_p(p_adjusted)}, n = {n})"
        if entry.get("mde") is not None:
            text += f"; differences smaller than about {entry['mde']:.2g}{unit} would likely go undetected"
        text += "."
    ideals = [c for c in (_ideal_clause(a, entry["a"], entry["ideal"]), _ideal_clause(b, entry["b"], entry["ideal"])) if c]
    if ideals:
        text += " " + "; ".join(ideals) + "."
    return text


def same_pair(entries: list[dict]) -> bool:
    """Whether every finding compares the same two results' labels (then they name the columns)."""
    return len({(e["model_a"], e["model_b"]) for e in entries}) <= 1


def headline(entries: list[dict]) -> pd.DataFrame:
    """The headline table: one row per finding, p-values Holm-adjusted across the rows.

    When every row compares the same pair (model A vs model B), the two value columns are named
    after them; when rows compare different pairs (e.g. two models, then one model as a chat model
    vs raw text), the columns are a generic ``A`` and ``B`` and a ``A vs B`` column names each
    row's own pair (the reading names them too)."""
    adjusted = holm([e["diff"]["p_value"] for e in entries])
    named = same_pair(entries)
    rows = []
    for e, p_adj in zip(entries, adjusted):
        d = e["diff"]
        col_a, col_b = (e["model_a"], e["model_b"]) if named else ("A", "B")
        pair = {} if named else {"A vs B": f"{e['model_a']} vs {e['model_b']}"}
        rows.append({
            "probe or task": e["name"], "metric": e["metric"], "ideal": "–" if e["ideal"] is None else f"{e['ideal']:g}",
            **pair,
            col_a: fmt_interval(e["a"]["value"], e["a"]["ci_low"], e["a"]["ci_high"]),
            col_b: fmt_interval(e["b"]["value"], e["b"]["ci_low"], e["b"]["ci_high"]),
            "difference A - B": fmt_interval(d["value"], d["ci_low"], d["ci_high"], signed=True),
            "adjusted p": fmt_p(p_adj), "n": e["n"],
            "detectable": "–" if e.get("mde") is None else f"±{e['mde']:.2g}",
            "reading": reading(e, p_adj)})
    return pd.DataFrame(rows)

"""Planning an audit's sample sizes: ``--detect D`` asks for the items each probe needs so that a
paired difference of D points between two models would be found with 80% power.

A seeded pilot (``pilot`` items per probe and model, 40 by default; for a task with groups, that
many items spread over its groups) runs every model on the same items, through the runner and the
audit's store (tag ``"pilot"``, without the score cache, so its timing is the models' own and a
second ``--plan`` reads it back). From it:

* the **discordance** of each pair of models: the share of items the two decide differently. It
  sets the power of the paired test (:mod:`workbench.audit.power`: McNemar's exact test, its
  power by exact enumeration). A difference of D points needs at least D points of discordance,
  so the plan assumes ``max(pilot discordance, D)``; it plans for the pair with the most items
  needed (the others then have at least 80% power for D, at their pilot discordance);
* each model's **items/s** on each unit, from the scoring time the store records per chunk.

Per probe the plan gives n needed, n available in the data, n planned (the smaller, or the
audit's ``limit`` where that is smaller still), the difference detectable with every available
item, the power of the planned n, and the estimated time per model and in total. The pilot's 40
items estimate discordance roughly (a 95% interval of +-15 points at 0.5): the plan is a guide,
and the report gives the power the run actually had, from the discordance it measured.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd
from statsmodels.stats.power import TTestPower

from workbench.audit import power as pw
from workbench.audit.grid import available, cell_limit, comparable, points, run_cell
from workbench.audit.progress import _duration
from workbench.stats.compare import _align
from workbench.stats.metrics import columns_of

PILOT_TAG = "pilot"


def pilot(spec, units, store, say, load) -> dict:
    """Run the pilot cells of every model; returns ``{"cells": {(label, unit): cell},
    "rates": {(label, unit): items/s}, "load_s": {label: s}, "available": {unit: n}}``."""
    cells, rates, load_s, avail = {}, {}, {}, {}
    for m in spec.models:
        t0 = time.perf_counter()
        model = load(m)
        load_s[m.label] = time.perf_counter() - t0
        for u in units:
            if u.name not in avail:
                avail[u.name] = available(u, model)
            n = min(spec.pilot, avail[u.name])
            cell = run_cell(model, m.label, u, store, limit=cell_limit(u, n), seed=spec.seed, tag=PILOT_TAG,
                            progress=say.scoring(f"{u.name} (pilot)", m.label), cache=False)
            cells[m.label, u.name] = cell
            chunks = store.chunks(cell["run_key"])
            scored = sum(len(c["item_keys"]) for c in chunks)
            seconds = sum(c["score_s"] or 0.0 for c in chunks)
            rates[m.label, u.name] = scored / seconds if seconds > 0 else float("nan")
        del model
    return {"cells": cells, "rates": rates, "load_s": load_s, "available": avail}


def _pair_stats(unit, metric, ca, cb) -> tuple[float, float, int]:
    """(discordance, sd of per-item differences in display points, n) of one pair on the pilot."""
    b_items = _align(ca, cb)
    a = metric.counted(columns_of(ca.items.reset_index(drop=True), [metric]))
    b = metric.counted(columns_of(b_items, [metric]))
    keep = ~(np.isnan(a) | np.isnan(b))
    n = int(keep.sum())
    if not n:
        return float("nan"), float("nan"), 0
    d = (a[keep] - b[keep]) * metric.scale * points(metric)
    return float(np.mean(a[keep] != b[keep])), float(np.std(d, ddof=1)) if n > 1 else float("nan"), n


def make_plan(spec, units, pilot_run: dict) -> pd.DataFrame:
    """One row per unit (see the module doc); ``attrs`` hold the pilot's per-model rates and the
    totals."""
    detect = float(spec.detect)
    rows = []
    labels = [m.label for m in spec.models]
    pairs = [(a, b) for a, b in itertools.combinations(labels, 2)
             if spec.reference is None or spec.reference in (a, b)]
    for u in units:
        metric = u.metric()
        scale = metric.scale * points(metric)       # display points per unit of the per-item outcome
        n_avail = pilot_run["available"][u.name]
        worst = None
        for a, b in pairs:
            psi, sd, n_pilot = _pair_stats(u, metric, comparable(pilot_run["cells"][a, u.name]),
                                           comparable(pilot_run["cells"][b, u.name]))
            if metric.kind == "binary":
                assumed = max(psi if np.isfinite(psi) else 0.0, detect / scale)
                needed = pw.mcnemar_n(min(assumed, 1.0), detect / scale) if detect / scale <= 1 else None
            elif metric.kind == "continuous" and np.isfinite(sd) and sd > 0:
                assumed, needed = sd, pw.ttest_n(sd, detect)
            else:
                assumed, needed = float("nan"), None
            key = float("inf") if needed is None else needed
            if worst is None or key > worst[0]:
                worst = (key, a, b, psi, sd, assumed, needed, n_pilot)
        _, a, b, psi, sd, assumed, needed, n_pilot = worst
        planned = n_avail if needed is None else min(needed, n_avail)
        if u.choice.limit is not None:  # with --detect, a limit caps the plan
            planned = min(planned, u.choice.limit if not u.is_task else u.choice.limit * _groups(u))
        if metric.kind == "binary":
            detectable = pw.mcnemar_detectable(n_avail, min(max(psi, 0.0), 1.0)) if np.isfinite(psi) else None
            achieved = pw.mcnemar_power(planned, min(assumed, 1.0), detect / scale) if detect / scale <= 1 else 0.0
            method = "McNemar exact, power by enumeration"
        elif metric.kind == "continuous":
            detectable = pw.ttest_detectable(n_avail, sd) if np.isfinite(sd) else None
            achieved = _t_power(planned, sd, detect)
            detectable = None if detectable is None else detectable / 1.0
            method = "sign-flip test, power of the paired t-test (statsmodels TTestPower)"
        else:
            detectable, achieved, method = None, None, "derived metric: no power calculation"
        if needed is None:
            note = (f"{detect:g} points is beyond what any number of items shows at this discordance"
                    if metric.kind != "derived" else method)
        elif needed > n_avail:
            note = f"needs {needed:,} items, the data has {n_avail:,}: {detect:g} points cannot be shown with 80% power"
        else:
            note = ""
        row = {"probe": u.title, "unit": u.name, "metric": metric.name, "pair": f"{a} vs {b}",
               "pilot_n": n_pilot, "discordance": None if not np.isfinite(psi) else psi,
               "sd_diff": None if not np.isfinite(sd) else sd, "n_needed": needed, "n_available": n_avail,
               "n_planned": planned, "limit": cell_limit(u, planned),
               "detectable": None if detectable is None else detectable * (scale if metric.kind == "binary" else 1),
               "power_planned": achieved, "method": method, "note": note}
        for m in labels:
            rate = pilot_run["rates"].get((m, u.name), float("nan"))
            row[f"seconds:{m}"] = planned / rate if rate and np.isfinite(rate) and rate > 0 else None
        rows.append(row)
    plan = pd.DataFrame(rows)
    per_model = {m: float(np.nansum([r[f"seconds:{m}"] or 0.0 for r in rows]) + pilot_run["load_s"].get(m, 0.0))
                 for m in labels}
    plan.attrs.update(detect=detect, pilot=spec.pilot, power=pw.POWER, alpha=pw.ALPHA, seconds=per_model,
                      total_seconds=float(sum(per_model.values())),
                      rates={f"{m} | {u}": r for (m, u), r in pilot_run["rates"].items()})
    return plan


def _groups(unit) -> int:
    task = unit.work.spec.task
    return max(1, len(task.group_names) if task.group else 1)


def _t_power(n, sd, detect) -> float | None:
    if not (np.isfinite(sd) and sd > 0) or n < 2:
        return None
    return float(TTestPower().power(effect_size=detect / sd, nobs=n, alpha=pw.ALPHA))


def plan_text(plan: pd.DataFrame) -> str:
    """The plan as the terminal shows it."""
    a = plan.attrs
    lines = [f"Plan: find a paired difference of {a['detect']:g} points with {a['power']:.0%} power "
             f"(two-sided, alpha {a['alpha']:g}), from a seeded pilot of {a['pilot']} items per probe and model."]
    table = pd.DataFrame({
        "probe": plan.probe, "metric": plan.metric,
        "discordance": [("–" if v is None or v != v else f"{v:.2f}") for v in plan.discordance],
        "n needed": [("> 1,000,000" if v is None or v != v else f"{int(v):,}") for v in plan.n_needed],
        "n available": [f"{int(v):,}" for v in plan.n_available],
        "n planned": [f"{int(v):,}" for v in plan.n_planned],
        "detectable with all": [("–" if v is None or v != v else f"{v:.1f} points") for v in plan.detectable],
        "power": [("–" if v is None or v != v else f"{v:.0%}") for v in plan.power_planned]})
    for col in [c for c in plan.columns if c.startswith("seconds:")]:
        table[f"time {col.split(':', 1)[1]}"] = [("?" if v is None or v != v else _duration(v)) for v in plan[col]]
    lines.append(table.to_string(index=False))
    for r in plan.itertuples():
        if r.note:
            lines.append(f"  {r.probe}: {r.note}")
    lines.append("Estimated time: " + ", ".join(f"{m} {_duration(s)}" for m, s in a["seconds"].items())
                 + f"; in all {_duration(a['total_seconds'])} (scoring and loading; documentation, lineage and the "
                   "contamination check add to it).")
    lines.append(f"Method: {plan.method.iloc[0] if len(plan) else ''}; the plan assumes the larger of the pilot's "
                 "discordance and the difference sought, for the pair needing the most items.")
    return "\n".join(lines)

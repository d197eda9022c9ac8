"""Figures of an audit report, drawn from the card's findings (not from notebook outputs), so the
report can be rebuilt from ``audit_card.json`` alone. Each function returns inline SVG text
(text kept as text: small, searchable, no external font or image file).

Conventions: the quantity plotted is the probe's bias metric (StereoSet's ``ss``, not ``lms``);
the ideal value is a dashed reference line; both models share one axis; rows with fewer than
``min_n`` items are drawn hollow and labelled so.
"""
from __future__ import annotations

import io

import numpy as np

from workbench.audit.findings import same_pair
from workbench.stats import MIN_N

COLOURS = ("#1f5fa8", "#c2571a")  # model A, model B (colour-blind safe pair)


def _svg(fig) -> str:
    import matplotlib.pyplot as plt
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _err(value, low, high):
    if value is None or low is None or high is None:
        return None
    return [[max(value - low, 0)], [max(high - value, 0)]]


def differences_svg(entries: list[dict]) -> str:
    """One row per finding: the paired difference A - B with its interval, zero dashed."""
    import matplotlib.pyplot as plt

    mixed = not same_pair(entries)
    fig, ax = plt.subplots(figsize=(7.5, (0.8 if mixed else 0.55) * len(entries) + 1.3))  # 2-line labels
    y = np.arange(len(entries))[::-1]
    labels = []
    for yi, e in zip(y, entries):
        d = e["diff"]
        small = e["n"] < e.get("min_n", MIN_N)
        pair = f"\n{e['model_a']} - {e['model_b']}" if mixed else ""  # rows of different pairs say which
        labels.append(f"{e['name']}: {e['metric']} (n={e['n']}{', small' if small else ''}){pair}")
        if d["value"] is None:
            continue
        ax.errorbar([d["value"]], [yi], xerr=_err(d["value"], d["ci_low"], d["ci_high"]), fmt="o", capsize=4,
                    color="#333333", mfc="white" if small else "#333333", ms=7)
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_yticks(y, labels, fontsize=11)
    units = {e.get("unit") for e in entries} - {""}
    unit = f" ({units.pop()})" if len(units) == 1 else ""
    a, b = ("A", "B") if mixed else (entries[0]["model_a"], entries[0]["model_b"])
    ax.set_xlabel(f"{a} minus {b}{unit}, with 95% interval", fontsize=11)
    ax.tick_params(axis="x", labelsize=10)
    ax.set_title("Paired differences on the same items", fontsize=12)
    return _svg(fig)


def finding_svg(entry: dict) -> str:
    """Both models' value per category (and overall) on one axis, the ideal as a reference line."""
    import matplotlib.pyplot as plt

    rows = [("all", entry["a"], entry["b"])] + [(c["category"], c["a"], c["b"]) for c in entry["categories"]]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1].astype(float)
    min_n = entry.get("min_n", MIN_N)
    for k, (label, colour) in enumerate(zip((entry["model_a"], entry["model_b"]), COLOURS)):
        offset = 0.15 if k == 0 else -0.15
        for yi, (_, sa, sb) in zip(y, rows):
            side = sa if k == 0 else sb
            if side["value"] is None:
                continue
            small = side["n"] < min_n
            ax.errorbar([side["value"]], [yi + offset], xerr=_err(side["value"], side["ci_low"], side["ci_high"]),
                        fmt="o", capsize=3, color=colour, mfc="white" if small else colour, ms=6,
                        label=label if yi == y[0] else None)
    if entry.get("ideal") is not None:
        ax.axvline(entry["ideal"], color="grey", ls="--", lw=1, label=f"ideal {entry['ideal']:g}")
    names = []
    for cat, sa, _ in rows:
        n = sa["n"]
        names.append(f"{cat} (n={n}{', small' if n < min_n else ''})")
    ax.set_yticks(y, names, fontsize=10)
    ax.set_xlabel(f"{entry['metric']}" + (f": {entry['description']}" if entry.get("description") else ""), fontsize=10)
    ax.set_title(entry["name"], fontsize=12)
    ax.legend(fontsize=9, loc="best")
    return _svg(fig)

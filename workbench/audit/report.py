"""HTML for audit cards and reports: Jinja2 templates (``workbench/audit/templates``), no asset from the
internet, numbers rounded to what their intervals support.

The page leads with the findings (one headline row per probe or task, a plain-language reading,
a plot of the paired differences); everything else (results by category, recorded tables,
models, fidelity, data and options, limitations, versions) follows once, in an appendix. The
same template renders the card inside a notebook (a fragment with scoped CSS) and the standalone
report (``page=True``), which needs nothing but the card's JSON.

>>> card = {"schema": "s", "title": "T", "created": "now", "models": [], "fidelity": [], "tasks": [],
...         "results": [], "limitations": [], "versions": {"python": "3"}, "report": {}}
>>> page = card_html(card, page=True)
>>> page.startswith("<!DOCTYPE html>") and external_assets(page) == []
True
"""
from __future__ import annotations

import json
import re

import numpy as np

from workbench.audit.figures import differences_svg, finding_svg
from workbench.audit.findings import fmt_interval, fmt_p, headline, reading
from workbench.audit.progress import _duration
from workbench.stats import MIN_N

CSS = """
.wb-card { font-family: system-ui, sans-serif; max-width: 1150px; margin: 1em auto; padding: 1em 1.5em;
  color: #1b1f24; line-height: 1.45; }
.wb-card h1 { font-size: 1.6em; margin: 0.2em 0; } .wb-card h2 { font-size: 1.3em; margin-top: 1.4em;
  border-bottom: 1px solid #dde1e6; } .wb-card h3 { font-size: 1.1em; margin-top: 1.2em; }
.wb-card h4 { font-size: 1em; margin: 1em 0 0.3em; }
.wb-card table.wb-table { border-collapse: collapse; font-size: 0.9em; margin: 0.4em 0; }
.wb-card table.wb-table th, .wb-card table.wb-table td { border: 1px solid #dde1e6; padding: 3px 7px;
  text-align: left; vertical-align: top; } .wb-card table.wb-table th { background: #eef1f4; }
.wb-card tr.small-n td { color: #6e7781; font-style: italic; }
.wb-card .ok { color: #0a6b2d; font-weight: 600; } .wb-card .fail { color: #a4161a; font-weight: 600; }
.wb-card .muted { color: #57606a; font-size: 0.88em; } .wb-card ul.readings li { margin: 0.3em 0; }
.wb-card figure.wb-figure { margin: 0.6em 0; } .wb-card figure.wb-figure svg { max-width: 100%; height: auto; }
.wb-card details { margin: 0.3em 0; } .wb-card summary { cursor: pointer; color: #1f5fa8; }
.wb-card { overflow-wrap: anywhere; } .wb-card pre { overflow-x: auto; white-space: pre; font-size: 0.85em;
  background: #f6f8fa; padding: 0.5em; }
.wb-card .wb-scroll { overflow-x: auto; max-width: 100%; -webkit-overflow-scrolling: touch; }
.wb-card .wb-scroll table.wb-table { margin: 0.4em 0; }
.wb-card table.wb-table td, .wb-card table.wb-table th { overflow-wrap: normal; }
/* a phone: wide tables scroll in their box; the findings and flips become one block per row */
@media (max-width: 700px) {
  .wb-card { padding: 0.6em 0.8em; margin: 0; } .wb-card h1 { font-size: 1.3em; }
  .wb-card table.wb-stack, .wb-card table.wb-stack tbody, .wb-card table.wb-stack tr,
  .wb-card table.wb-stack td { display: block; width: auto; }
  .wb-card table.wb-stack thead { display: none; }
  .wb-card table.wb-stack tr { border: 1px solid #c9d1d9; border-radius: 4px; margin: 0 0 0.7em; }
  .wb-card table.wb-stack td { border: none; border-bottom: 1px solid #eef1f4; overflow-wrap: anywhere; }
  .wb-card table.wb-stack td::before { content: attr(data-label) ": "; font-weight: 600; color: #57606a; }
  /* each finding reads probe, difference, p first; the overview of many models scrolls in its box */
  .wb-card table.wb-stack tr { display: flex; flex-direction: column; }
  .wb-card table.wb-stack td { order: 4; }
  .wb-card table.wb-stack td[data-label="probe or task"], .wb-card table.wb-stack td[data-label="probe"] { order: 1; }
  .wb-card table.wb-stack td[data-label="difference A - B"], .wb-card table.wb-stack td[data-label="flips"] { order: 2; }
  .wb-card table.wb-stack td[data-label="adjusted p"], .wb-card table.wb-stack td[data-label="McNemar p"] { order: 3; }
  .wb-card .wb-overview { max-height: 45vh; overflow: auto; }
}
"""

CAVEAT = ("A difference here is a difference on these items, scored this way: it does not show how the models "
          "behave on other data, prompts, languages or uses, and a non-significant difference is not evidence "
          "that the models are equally biased.")

_HIDDEN_COLUMNS = {"index", "level_0"}
MAX_FIGURE_ROWS = 24  # beyond this many headline rows (ten models: 180) the figures would not be read


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape
    return Environment(loader=PackageLoader("workbench.audit", "templates"), autoescape=select_autoescape(["j2", "html"]),
                       trim_blocks=False, lstrip_blocks=False)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k} = {_cell(v)}" for k, v in value.items()) or "(none)"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _num(row, key):
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) else None


def readable(records, min_n: int = MIN_N, columns=None) -> dict:
    """Records as a table for people: no index columns, ``estimate [interval]`` cells rounded to
    the interval, p-values as p-values, dicts as ``key = value`` pairs, small-n rows marked."""
    records = [dict(r) for r in (records or [])]
    if not records:
        return {"columns": [], "rows": [], "any_small": False, "min_n": min_n}
    cols = list(columns or dict.fromkeys(k for r in records for k in r))
    cols = [c for c in cols if c not in _HIDDEN_COLUMNS]
    pairs = [("value", "estimate [95% CI]"), ("diff", "difference [95% CI]")]
    out_cols, rows, any_small = [], [], False
    merged = {main for main, _ in pairs if main in cols and {"ci_low", "ci_high"} <= set(cols)}
    for c in cols:
        if c in merged:
            out_cols.append(dict(pairs)[c])
        elif c in ("ci_low", "ci_high") and merged:
            continue
        else:
            out_cols.append(c)
    for r in records:
        cells = []
        counted = r.get("metric") == "n_skipped"  # a count, not an estimate
        for c in cols:
            if c in merged and counted:
                cells.append(_cell(int(_num(r, c) or 0)))
            elif c in merged:
                cells.append(fmt_interval(_num(r, c), _num(r, "ci_low"), _num(r, "ci_high"), signed=(c == "diff")))
            elif c in ("ci_low", "ci_high") and merged:
                continue
            elif c in ("p_value", "p_adjusted"):
                cells.append(fmt_p(_num(r, c)))
            else:
                cells.append(_cell(r.get(c)))
        n = _num(r, "n")
        small = n is not None and n < min_n and r.get("metric") != "n_skipped"
        any_small |= small
        rows.append({"cells": cells, "small": small})
    return {"columns": out_cols, "rows": rows, "any_small": any_small, "min_n": min_n}


def _finding_table(e: dict) -> dict:
    rows = [("all", e["a"], e["b"], e["diff"])] + [(c["category"], c["a"], c["b"], c["diff"]) for c in e["categories"]]
    records = [{"category": cat, "n": d["n"] or a["n"],
                e["model_a"]: fmt_interval(a["value"], a["ci_low"], a["ci_high"]),
                e["model_b"]: fmt_interval(b["value"], b["ci_low"], b["ci_high"]),
                "difference A - B": fmt_interval(d["value"], d["ci_low"], d["ci_high"], signed=True),
                "p": fmt_p(d["p_value"]), "p adjusted": fmt_p(d["p_adjusted"]),
                "test": d.get("test") or ""} for cat, a, b, d in rows]
    return readable(records, e.get("min_n", MIN_N))


def _fingerprint_table(fp: dict) -> dict:
    return readable([{"field": k, "value": _cell(v) if not isinstance(v, (dict, list)) else json.dumps(v)}
                     for k, v in (fp or {}).items()])


def card_html(card: dict, page: bool = False, figures: bool = True) -> str:
    """The card as HTML: a fragment with scoped CSS (notebooks), or a whole page (``page=True``)."""

    entries = card.get("findings") or []
    table = headline(entries) if entries else None
    findings = {"table": readable(table.to_dict("records") if table is not None else [],
                                  columns=[c for c in table.columns if c != "reading"] if table is not None else None),
                "readings": [{"name": e["name"], "text": r} for e, r in zip(entries, table["reading"])] if entries else [],
                # one figure of every row while it stays legible; per-row figures while they are few
                "figure": differences_svg(entries) if entries and figures and len(entries) <= MAX_FIGURE_ROWS else None,
                "caveat": CAVEAT,
                "entries": [dict(e, figure=finding_svg(e) if figures and e["categories"] and len(entries) <= MAX_FIGURE_ROWS
                                 else None, table=_finding_table(e)) for e in entries]}
    findings["table"]["any_small"] = False  # the headline rows say "n" themselves; readings flag small n
    min_n = min([e.get("min_n", MIN_N) for e in entries] or [MIN_N])
    models = readable([{k: m.get(k) for k in ("name", "fingerprint_id", "licence", "source", "architecture", "kind")}
                       for m in card["models"]])
    card_models = [dict(m, fingerprint_table=_fingerprint_table(m.get("fingerprint"))) for m in card["models"]]
    fidelity = [dict(f, table=readable(f.get("checks"))) for f in card["fidelity"]]
    results = [{"name": r["name"], "note": r.get("note"), "table": readable(r["table"], min_n)} for r in card["results"]]
    tasks = readable(card["tasks"])
    report = readable([{"item": k, "value": v} for k, v in (card.get("report") or {}).items()])
    versions = readable([{"package": k, "version": v} for k, v in card["versions"].items()])
    skipped = card.get("skipped") or []
    overview, overview_metrics = _overview(card.get("overview") or [])
    return _environment().get_template("audit.html.j2").render(
        card=dict(card, models=card_models), page=page, css=CSS, findings=findings, models=models, fidelity=fidelity,
        results=results, tasks=tasks, report=report, versions=versions, made=_made(card), overview=overview,
        overview_metrics=overview_metrics,
        deployment=_deployment(card.get("deployment") or [], card.get("agreement") or []),
        plan=_plan(card.get("plan")), power=_power(card.get("power") or []),
        audit_file=(card.get("audit") or {}).get("resolved"), given_file=(card.get("audit") or {}).get("file"),
        skipped=[s for s in skipped if s["section"] != "fidelity"],
        skipped_fidelity=[s for s in skipped if s["section"] == "fidelity"])


def _overview(rows: list[dict]) -> tuple[dict, str]:
    """Models x probes: one row per model, one column per probe (its metric and ideal in the name)."""
    if not rows:
        return readable([]), ""
    columns, cells = {}, {}
    for r in rows:
        ideal = "" if r.get("ideal") is None else f", ideal {r['ideal']:g}"
        col = f"{r['probe']} ({r['metric']}{ideal})"
        columns.setdefault(col, None)
        value = fmt_interval(r["value"], r["ci_low"], r["ci_high"]) if r.get("n") else "not run"
        cells.setdefault(r["model"], {})[col] = value
    records = [{"model": m, **{c: v.get(c, "–") for c in columns}} for m, v in cells.items()]
    metrics = ", ".join(dict.fromkeys(f"{r['probe']}: {r['metric']}" for r in rows))
    return readable(records), metrics


def _fmt(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def _rate(d: dict) -> str:
    if d.get("flip_rate") is None:
        return "–"
    return f"{100 * d['flip_rate']:.1f}% [{100 * d['ci_low']:.1f}, {100 * d['ci_high']:.1f}]"


def _agreement(e: dict) -> dict:
    """One pair's measured agreement (:mod:`workbench.audit.agreement`) as a table row."""
    return {"verdict": e["verdict"] + (f" ({e['reason']})" if e.get("reason") else ""),
            "next-token KL": _fmt(e.get("next_token_kl"), 6), "top-1 agreement": _fmt(e.get("top1_agreement"), 4),
            "max |log p difference|": _fmt(e.get("max_abs_logprob_diff"), 4),
            "resid_post rel. error (max over layers)": _fmt(e.get("resid_rel_error_max"), 5),
            "tokenization": e.get("tokenization", "–"), "chat prompt": e.get("chat_prompt", "–"),
            "texts (tokens)": f"{e['n_texts']} ({e.get('n_tokens') or '–'})"}


def _deployment(entries: list[dict], agreement: list[dict] | None = None) -> list[dict]:
    """Per pair of one model run two ways: a row per probe, and per probe its categories,
    margin quarters and every metric's change; the pair's measured agreement where it was run."""
    agreed = {(a["model_a"], a["model_b"]): a for a in agreement or []}
    out = {}
    for e in entries:
        key = (e["model_a"], e["model_b"])
        pair = out.setdefault(key, {"model_a": e["model_a"], "model_b": e["model_b"], "evidence": e.get("evidence"),
                                    "rows": [], "probes": [],
                                    "agreement": readable([_agreement(agreed[key])]) if key in agreed else None})
        change = next((c for c in e.get("changes") or [] if c["metric"] == e["metric"]), None)
        m = e.get("margin") or {}
        pair["rows"].append({
            "probe": e["probe"], "decision": e["metric"], "n": e["n"], "flips": e["flips"], "flip rate [95% CI]": _rate(e),
            "McNemar p": fmt_p(e.get("p_value")),
            "change of the metric": "–" if change is None else fmt_interval(change["diff"], change["ci_low"],
                                                                             change["ci_high"], signed=True),
            "margin, flipped / other (median)": f"{_fmt(m.get('median_flipped'))} / {_fmt(m.get('median_other'))}",
            "p (flips on small margins)": fmt_p(m.get("p_value")) if m.get("p_value") is not None else
            m.get("note", "–") if m.get("note") else "–"})
        pair["probes"].append({
            "probe": e["probe"],
            "categories": readable([{"category": c["category"], "n": c["n"], "flips": c["flips"],
                                     "flip rate [95% CI]": _rate(c), "McNemar p": fmt_p(c.get("p_value"))}
                                    for c in e.get("categories") or []]),
            "quarters": readable([{"quarter of the reference's margin": f"{q['quarter']} (smallest first)" if q["quarter"] == 1
                                   else str(q["quarter"]), "n": q["n"], "flips": q["flips"], "flip rate [95% CI]": _rate(q)}
                                  for q in m.get("quarters") or []]),
            "changes": readable([{"metric": c["metric"], "diff": c["diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
                                  "p_value": c["p_value"], "n": c["n"], "test": c["test"]}
                                 for c in e.get("changes") or []])})
    return [dict(p, table=readable(p.pop("rows"))) for p in out.values()]


def _plan(plan: dict | None) -> dict | None:
    if not plan:
        return None
    rows = []
    for r in plan["rows"]:
        row = {"probe": r["probe"], "metric": r["metric"], "pair (most items needed)": r["pair"],
               "discordance (pilot)": _fmt(r.get("discordance")),
               "n needed": "more than 1,000,000" if r.get("n_needed") is None else f"{r['n_needed']:,}",
               "n available": f"{r['n_available']:,}", "n planned": f"{r['n_planned']:,}",
               "detectable with all": "–" if r.get("detectable") is None else f"{r['detectable']:.1f} points",
               "power planned": "–" if r.get("power_planned") is None else f"{r['power_planned']:.0%}"}
        for k, v in r.items():
            if k.startswith("seconds:"):
                row[f"time, {k.split(':', 1)[1]}"] = "?" if v is None else _duration(v)
        if r.get("note"):
            row["note"] = r["note"]
        rows.append(row)
    return {"detect": f"{plan['detect']:g}", "pilot": plan["pilot"], "table": readable(rows),
            "total": _duration(plan["total_seconds"])}


def _power(rows: list[dict]) -> dict:
    return readable([{"probe": r["probe"], "pair": f"{r['model_a']} vs {r['model_b']}", "n": r["n"],
                      "discordance": _fmt(r.get("discordance")),
                      "detectable (80% power)": "–" if r.get("detectable") is None else f"±{r['detectable']:.2g}",
                      **({"power for the planned difference": f"{r['power_at_detect']:.0%}"}
                         if r.get("power_at_detect") is not None else {})} for r in rows])


def _made(card: dict) -> dict:
    """The "how it was made" section: documentation and indicators per model, lineage, training data."""
    made = card.get("made") or {}
    docs = [{"model": d["model"], "fingerprint_id": d.get("fingerprint_id"),
             "counts": {s: sum(r["status"] == s for r in d["indicators"])
                        for s in ("disclosed", "not disclosed", "contradicted", "not comparable")},
             "indicators": readable(d["indicators"]), "fields": readable(d.get("fields")),
             "claims": readable(d.get("claims"))} for d in made.get("documentation") or []]
    lineage = [dict(x, table=readable(x["table"])) for x in made.get("lineage") or []]
    training = [dict(x, table=readable(x["table"]), findings=readable(x.get("findings"))) for x in made.get("training_data") or []]
    return {"documentation": docs, "lineage": lineage, "training_data": training,
            "any": bool(docs or lineage or training)}


EXTERNAL_ASSET = re.compile(r"""<script[^>]+src=["']https?:|<link[^>]+href=["']https?:|"""
                            r"""<img[^>]+src=["']https?:|@import\s+url\(["']?https?:|"""
                            r"""from\s+["']https?:|import\(["']https?:""", re.I)


def external_assets(page: str) -> list[str]:
    """Every place a page would fetch something from the internet (should be empty)."""
    return [m.group(0) for m in EXTERNAL_ASSET.finditer(page)]


__all__ = ["CSS", "card_html", "external_assets", "readable", "reading"]

"""What an audit publishes: the card (with the audit file, the plan, the power achieved, the
models x probes overview, the deployment flips and every recorded skip), the report rendered from
it, and the CycloneDX 1.6 ML-BOM of every model carrying the audit's measured results."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workbench.audit import power as pw
from workbench.audit.grid import points
from workbench.audit.spec import KNOWN_LIMITATIONS
from workbench.portable import portable_path
from workbench.provenance_audit.bom import combine, validate, with_results


def overview(spec, units, state) -> list[dict]:
    """Every model's value of every probe's metric (overall, in display points), with its interval."""
    rows = []
    for u in units:
        metric = u.metric()
        scale = points(metric)
        for m in spec.models:
            cell = state["cells"].get((m.label, u.name))
            if cell is None:
                rows.append({"model": m.label, "probe": u.title, "metric": metric.name, "value": None,
                             "ci_low": None, "ci_high": None, "n": 0, "ideal": metric.ideal})
                continue
            s = cell["result"].summary()
            r = s[(s.metric == metric.name) & (s.category.astype(str) == "all")].iloc[0]
            f = lambda v: None if v is None or not np.isfinite(v) else float(v) * scale  # noqa: E731
            rows.append({"model": m.label, "probe": u.title, "metric": metric.name, "value": f(r.value),
                         "ci_low": f(r.ci_low), "ci_high": f(r.ci_high), "n": int(r.n),
                         "ideal": None if metric.ideal is None else metric.ideal * scale})
    return rows


def power_achieved(spec, entries: list[dict]) -> list[dict]:
    """For each headline row: n, the discordance measured on its items, the difference its test
    finds with 80% power and, with ``detect``, its power for that difference."""
    out = []
    for e in entries:
        psi = e.get("discordance")
        row = {"probe": e["name"], "metric": e["metric"], "model_a": e["model_a"], "model_b": e["model_b"],
               "n": e["n"], "discordance": psi, "detectable": e.get("mde"), "method": e.get("mde_method") or
               "paired t-test approximation (statsmodels TTestPower) from the per-item differences' spread"}
        if spec.detect is not None and psi is not None and e.get("unit_points"):
            delta = spec.detect / e["unit_points"]
            row["power_at_detect"] = pw.mcnemar_power(e["n"], max(psi, delta), delta) if delta <= 1 else 0.0
        out.append(row)
    return out


def limitations(spec, units, state, limits) -> list[dict]:
    """The probes' own limitations, the audit file's, and what this run's sizes and checks imply."""
    out = [{"subject": u.title, "text": KNOWN_LIMITATIONS[u.choice.name]} for u in units
           if u.choice.name in KNOWN_LIMITATIONS]
    out += [dict(x) for x in spec.limitations]
    sizes = ", ".join(f"{u.title}: {'every item' if limits[u.name] is None else limits[u.name]}"
                      f"{' per group' if u.is_task and limits[u.name] else ''}" for u in units)
    out.append({"subject": "Scale", "text": f"{len(spec.models)} models on seeded samples ({sizes}); read the "
                "intervals before the point estimates. Nothing here says how these models behave on other data, "
                "prompts, languages or uses."})
    con = state["contamination"]
    if con:
        any_ = next(iter(con.values()))
        deltas = " and ".join(f"{v['delta_80']:.2g} ({k})" for k, v in con.items() if v.get("delta_80") is not None)
        out.append({"subject": "Contamination check", "text": (
            f"One test (exchangeability) on {any_['n']} {any_['probe']} items in data order. "
            + (f"It finds a preference for the data's order of {deltas} nats per item 80% of the time; " if deltas else "")
            + "it cannot see a smaller one, nor the items seen shuffled, split up or deduplicated, in another form, "
              "paraphrased, or too rarely to leave such a preference. A large p does not show a clean model; a "
              "small one does not say how the items got in.")})
    if state["skipped"]:
        out.append({"subject": "Skipped", "text": "; ".join(f"{s['section']} on {s['model']}: {s['reason']}"
                                                             for s in state["skipped"])})
    return out


def bom_results(spec, units, state, label: str) -> list[dict]:
    """Every metric of every probe and task on one model (overall), for its ML-BOM."""
    rows = []
    for u in units:
        cell = state["cells"].get((label, u.name))
        if cell is None:
            continue
        s = cell["result"].summary()
        for r in s[(s.category.astype(str) == "all") & (s.metric != "n_skipped")].itertuples():
            f = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
            rows.append({"metric": f"{u.name.removeprefix('probe:')}/{r.metric}", "value": f(r.value),
                         "ci_low": f(r.ci_low), "ci_high": f(r.ci_high), "n": int(r.n), "slice": u.title})
    return rows


def write_bom(spec, units, state, path: Path) -> Path:

    boms = {m.label: with_results(state["docs"][m.label], bom_results(spec, units, state, m.label))
            for m in spec.models if m.label in state["docs"]}
    bom = combine(boms)
    validate(bom)
    path.write_text(json.dumps(bom, indent=1))
    return path


def finish(spec, card, state, units, limits, plan, out: Path, store_path: Path) -> dict:
    """Record the audit's own sections in the card; write the card, the report and the ML-BOM."""
    for m in spec.models:
        for u in units:
            cell = state["cells"].get((m.label, u.name))
            if cell is not None:
                card.add_result(f"{u.title} / {m.label}", cell["result"])
    for e in card.data["findings"]:
        unit = next((u for u in units if u.name == e.get("unit_key")), None)
        if unit is not None:
            e["unit_points"] = unit.metric().scale * points(unit.metric()) if unit.metric().kind == "binary" else None
    # file: the audit file as given (None when built from arguments); resolved: what ran, paths made
    # portable for the reader; rerun: the same with this machine's paths, for --from-card
    card.data["audit"] = {"file": spec.text, "resolved": spec.to_yaml(), "rerun": spec.to_yaml(),
                          "identity": spec.identity(),
                          "store": str(portable_path(store_path)), "seed": spec.seed,
                          "pairs": "each against " + spec.reference if spec.reference else "every pair",
                          "reference": spec.reference}
    card.data["overview"] = overview(spec, units, state)
    card.data["plan"] = (None if plan is None else
                         {"detect": spec.detect, "pilot": spec.pilot, "rows": json.loads(plan.to_json(orient="records")),
                          "seconds": plan.attrs["seconds"], "total_seconds": plan.attrs["total_seconds"]})
    card.data["power"] = power_achieved(spec, card.data["findings"])
    card.data["skipped"] = list(state["skipped"])
    card.data.setdefault("deployment", [])
    for x in limitations(spec, units, state, limits):
        card.add_limitation(x["subject"], x["text"])
    paths = {"card": out / "audit_card.json", "report": out / "report.html", "bom": out / "ml_bom.json"}
    card.data["report"] = {"html": paths["report"].name, "ml_bom": paths["bom"].name}
    card.save(paths["card"])
    paths["report"].write_text(card.to_html(page=True))
    write_bom(spec, units, state, paths["bom"])
    return paths

"""Bias probes in the benchmark grid: ``wb.run(..., probes=[...])`` runs
:func:`workbench.run_probe` on each model and keeps its per-item scores in the same store.

A probe cell is resumable as a whole (``run_probe`` scores a probe in one call): a cell whose
run key already has a finished attempt is rebuilt from the store instead of being re-scored.
Probes are named ``"crows_pairs"`` (packaged data) or ``"crows_pairs=../shared/data/crows_pairs"``
(data path), or given as dicts ``{"name": ..., "data": ..., **probe_options}``.
"""
from __future__ import annotations

import hashlib
import json

import pandas as pd

from workbench.errors import InvalidInputError


def parse_probe(probe) -> dict:
    """``{"name", "data", **options}`` from a probe argument, checked before any model is loaded."""
    if isinstance(probe, str):
        name, _, data = probe.partition("=")
        spec = {"name": name, "data": data or None}
    elif isinstance(probe, dict) and "name" in probe:
        spec = {"data": None, **probe}
    else:
        raise InvalidInputError(f"a probe is a name, 'name=data_path' or a dict with 'name'; got {probe!r}")
    from workbench.probes.api import get_spec
    if spec["data"] is None and get_spec(spec["name"]).default_data is None:  # get_spec: unknown names
        raise InvalidInputError(f"probe {spec['name']!r} needs its data set: pass '{spec['name']}=<path>' "
                                f"(e.g. ../shared/data/{spec['name']}) or {{'name': ..., 'data': ...}}")
    return spec


def _ident(spec: dict, limit) -> dict:
    options = {k: v for k, v in spec.items() if k not in ("name", "data")}
    return {"probe": spec["name"], "data": None if spec["data"] is None else str(spec["data"]),
            "options": options, "limit": limit}


def run_probe_cell(model, label: str, probe, store, *, limit=None, seed: int = 0, tag: str = "",
                   n_boot: int = 2000) -> dict:
    """Run (or reload from the store) one probe on one model; returns the cell description."""
    import workbench
    from workbench.bench.runner import package_versions
    from workbench.probes.api import get_spec, run_probe

    spec = parse_probe(probe)
    ident = _ident(spec, limit)
    key = hashlib.sha256(json.dumps([model.state_id, ident, int(seed), tag, workbench.__version__],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    task_hash = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    probe_spec = get_spec(spec["name"])
    cell = {"model": label, "task": f"probe:{spec['name']}", "run_key": key, "kind": "probe",
            "group": probe_spec.categories[0] if probe_spec.categories else None,
            "fingerprint": model.state_id, "item_ids": None, "task_hash": task_hash}
    log = store.attempts(key)
    if (log.status == "finished").any():
        cell["probe"] = load_probe_result(store, key, n_boot=n_boot)
        return cell
    versions = package_versions()
    store.ensure_run(key, model_name=label, model_fingerprint=model.state_id,
                     fingerprint_json=json.dumps(model.fingerprint, default=str), task_name=cell["task"],
                     task_hash=task_hash,
                     task_kind="probe", task_spec_json=json.dumps(ident, default=str), seed=int(seed), tag=tag,
                     versions_json=json.dumps(versions), n_items_task=None)
    attempt = store.start_attempt(key, backend="local", item_limit=limit, n_requested=0, n_already_done=0,
                                  versions=versions)
    try:
        options = {k: v for k, v in spec.items() if k not in ("name", "data")}
        res = run_probe(spec["name"], model, data=spec["data"], limit=limit, seed=seed, n_boot=n_boot, **options)
        frame = res.frame.reset_index(drop=True)
        keys = [("|".join(str(row[k]) for k in probe_spec.item_key), i,
                 row[cell["group"]] if cell["group"] in frame.columns else None)
                for i, row in frame.iterrows()]
        store.add_items(key, attempt, frame.to_dict(orient="records"), keys=keys)
        with store._write() as con:  # the probe's provenance (data hash, skips, timings) with its run
            con.execute("UPDATE runs SET task_spec_json=?, n_items_task=? WHERE run_key=?",
                        (json.dumps({**ident, "provenance": res.provenance, "probe_options": res.options},
                                    default=str), len(frame), key))
    except BaseException as e:
        store.finish_attempt(attempt, "failed", error=f"{type(e).__name__}: {e}")
        raise
    store.finish_attempt(attempt, "finished")
    cell["probe"] = res
    return cell


def load_probe_result(store, run_key: str, n_boot: int = 2000):
    """Rebuild a :class:`~workbench.probes.base.ProbeResult` from a stored probe run."""
    from workbench.probes.api import get_spec
    from workbench.probes.base import ProbeResult, SkipLog

    info = store.run_info(run_key)
    saved = json.loads(info["task_spec_json"])
    prov = saved.get("provenance", {})
    return ProbeResult(store.items(run_key), prov, spec=get_spec(saved["probe"]), options=saved.get("probe_options", {}),
                       skipped=pd.DataFrame(prov.get("skipped") or [], columns=SkipLog().frame().columns), n_boot=n_boot, seed=int(info["seed"]))

"""Bias probes in the benchmark grid: ``wb.run(..., probes=[...])`` runs
:func:`workbench.run_probe` on each model and keeps its per-item scores in the same store.

A probe cell resumes item by item, like a task: its items are scored through the probe's own
scoring function in chunks of ``chunk_size``, each chunk's rows (and the rows the scorer skipped)
committed in one transaction; a rerun scores only the items no committed chunk covers, and the
result (per-item rows, summary with intervals) is always rebuilt from the stored rows, so a
resumed cell equals an uninterrupted one. Probes whose per-item scores depend on the other items
or on the batch (SEAT's multiple-testing correction; BOLD's and HONEST's sampled generations) are
scored as one chunk: they resume as a whole. A cell whose run key has a finished attempt is
rebuilt from the store without scoring.

Probes are named ``"crows_pairs"`` (packaged data) or ``"crows_pairs=../shared/data/crows_pairs"``
(data path), or given as dicts ``{"name": ..., "data": ..., **probe_options}``.
"""
from __future__ import annotations

import hashlib
import json

import pandas as pd

from workbench.errors import InvalidInputError, WorkbenchError
from workbench.bench.lease import recorded_attempt

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


def probe_run_key(model, spec: dict, limit, seed: int, tag: str) -> tuple[str, str]:
    """(run key, task hash) of a probe cell: model state x probe, data, options, limit x seed x tag."""
    import workbench
    ident = _ident(spec, limit)
    key = hashlib.sha256(json.dumps([model.state_id, ident, int(seed), tag, workbench.__version__],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    return key, hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def probe_cell(model, label: str, probe, limit, seed: int, tag: str) -> dict:
    """The description of a probe cell that :class:`~workbench.bench.results.BenchResults` reads
    (without its ``"probe"`` result)."""
    from workbench.probes.api import get_spec
    spec = parse_probe(probe)
    key, task_hash = probe_run_key(model, spec, limit, seed, tag)
    categories = get_spec(spec["name"]).categories
    return {"model": label, "task": f"probe:{spec['name']}", "run_key": key, "kind": "probe",
            "group": categories[0] if categories else None, "fingerprint": model.state_id, "item_ids": None,
            "task_hash": task_hash}


def probe_finished(store, run_key: str) -> bool:
    """Whether the probe cell has a finished attempt (then it is rebuilt from the store)."""
    return bool((store.attempts(run_key).status == "finished").any())


def run_probe_cell(model, label: str, probe, store, *, limit=None, seed: int = 0, tag: str = "",
                   n_boot: int = 2000, chunk_size: int = 64, wait: bool = True) -> dict | None:
    """Run (or resume, or reload from the store) one probe on one model; returns the cell
    description, with the :class:`~workbench.probes.base.ProbeResult` rebuilt from the stored
    items. Takes the cell's lease first: while another live process computes it, waits and then
    adopts its result (``wait=True``) or returns None (``wait=False``)."""
    from workbench.bench.lease import under_lease

    cell = probe_cell(model, label, probe, limit, seed, tag)
    spec, key = parse_probe(probe), cell["run_key"]

    def compute(lease):
        _score_cell(model, label, spec, key, cell["task_hash"], store, lease, limit=limit, seed=seed, tag=tag,
                    n_boot=n_boot, chunk_size=chunk_size)
    if not under_lease(store, key, compute, wait=wait, done=lambda: probe_finished(store, key)):
        return None
    cell["probe"] = load_probe_result(store, key, n_boot=n_boot)
    return cell


def _item_keys(frame: pd.DataFrame, item_key) -> list[str]:
    return ["|".join(str(v) for v in row) for row in frame[list(item_key)].itertuples(index=False)]


def _score_cell(model, label, spec, key, task_hash, store, lease, *, limit, seed, tag, n_boot, chunk_size):
    """Score the probe items no committed chunk covers, chunk by chunk, each chunk's rows and
    skips committed in one transaction; then record the provenance of the whole cell."""
    import time

    from workbench.bench.runner import package_versions
    from workbench.probes.api import prepare_probe, probe_provenance
    from workbench.probes.base import SkipLog

    ident = _ident(spec, limit)
    versions = package_versions()
    store.ensure_run(key, model_name=label, model_fingerprint=model.state_id,
                     fingerprint_json=json.dumps(model.fingerprint, default=str), task_name=f"probe:{spec['name']}",
                     task_hash=task_hash, task_kind="probe", task_spec_json=json.dumps(ident, default=str),
                     seed=int(seed), tag=tag, versions_json=json.dumps(versions), n_items_task=None)
    options = {k: v for k, v in spec.items() if k not in ("name", "data")}
    attempt = store.start_attempt(key, backend="local", item_limit=limit, n_requested=0, n_already_done=0,
                                  versions=versions)
    lease.set_attempt(attempt)
    with recorded_attempt(store, attempt, lease):
        prep = prepare_probe(spec["name"], model, data=spec["data"], limit=limit, seed=seed, **options)
        pspec, items = prep.spec, prep.items
        keys = _item_keys(items, pspec.item_key)
        done = {k for c in store.probe_chunks(key) for k in c["item_keys"]}
        todo = [i for i, k in enumerate(keys) if k not in done]
        with store._write() as con:
            con.execute("UPDATE attempts SET n_requested=?, n_already_done=? WHERE attempt_id=?",
                        (len(keys), len(keys) - len(todo), attempt))
        # a probe whose scores depend on the other items (or on the batch) is scored whole
        size = chunk_size if pspec.itemwise else max(len(keys), 1)
        group = pspec.categories[0] if pspec.categories else None
        for start in range(0, len(todo), size):
            positions = todo[start:start + size]
            skips, t0 = SkipLog(), time.perf_counter()
            scored = pspec.call_score(model, items.iloc[positions].reset_index(drop=True), prep.context(skips))
            scored = scored.reset_index(drop=True)
            score_s = time.perf_counter() - t0
            out_keys = _item_keys(scored, pspec.item_key)
            store.add_items(key, attempt, scored.to_dict(orient="records"), lease=lease,
                            keys=list(zip(out_keys, _row_index(pspec, keys, positions, out_keys),
                                          scored[group] if group in scored.columns else [None] * len(scored))),
                            probe_chunk={"first_index": positions[0], "item_keys": [keys[i] for i in positions],
                                         "skipped": skips.rows, "score_s": score_s})
            lease.check()
        chunks = store.probe_chunks(key)
        n_rows = store.count_items(key)
        # (a chunk committed twice, by an owner that outlived its lease, adds its skips once)
        scorer_skips = list({json.dumps(r, sort_keys=True, default=str): r
                             for c in chunks for r in c["skipped"]}.values())
        prov = probe_provenance(prep, model, n_scored=n_rows, skipped=prep.skips.rows + scorer_skips,
                                score_s=sum(c["score_s"] or 0.0 for c in chunks), n_boot=n_boot)
        with store._write() as con:  # the probe's provenance (data hash, skips, timings) with its run
            con.execute("UPDATE runs SET task_spec_json=?, n_items_task=? WHERE run_key=?",
                        (json.dumps({**ident, "provenance": prov, "probe_options": prep.public_options},
                                    default=str), n_rows, key))


def _row_index(pspec, keys: list[str], positions: list[int], out_keys: list[str]) -> list[int]:
    """Where each scored row sorts in the cell: an item-wise probe's row at its item's position
    (so a resumed cell reads back in the order of an uninterrupted one); a whole-cell probe's rows
    in the order its scorer returned them."""
    if not pspec.itemwise:
        return list(range(len(out_keys)))
    where = {keys[i]: i for i in positions}
    unknown = [k for k in out_keys if k not in where]
    if unknown:
        raise WorkbenchError(f"probe {pspec.name!r} returned rows for items it was not given ({unknown[:3]}); "
                             "it cannot be scored in chunks: please report this")
    return [where[k] for k in out_keys]


def load_probe_result(store, run_key: str, n_boot: int = 2000):
    """Rebuild a :class:`~workbench.probes.base.ProbeResult` from a stored probe run."""
    from workbench.probes.api import get_spec
    from workbench.probes.base import ProbeResult, SkipLog

    info = store.run_info(run_key)
    saved = json.loads(info["task_spec_json"])
    prov = saved.get("provenance", {})
    return ProbeResult(store.items(run_key), prov, spec=get_spec(saved["probe"]), options=saved.get("probe_options", {}),
                       skipped=pd.DataFrame(prov.get("skipped") or [], columns=SkipLog().frame().columns), n_boot=n_boot, seed=int(info["seed"]))

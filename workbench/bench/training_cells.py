"""Training-data checks in the benchmark grid: ``wb.run(..., training=[...])`` runs
:func:`wb.membership <workbench.training_data.membership.membership>`,
:func:`wb.dataset_inference <workbench.training_data.dataset_inference.dataset_inference>` or
:func:`wb.contamination <workbench.training_data.contamination.contamination>` on each model and
keeps the result in the same store, with the provenance of any other cell (model fingerprint,
data hash, options, package versions).

A training cell is one unit of work, like the probes whose scores depend on all their items
(:mod:`workbench.bench.probe_cells`): the blind baseline is cross-fitted over all the texts, the
exchangeability test permutes the whole benchmark, so the cell is computed whole and committed
in one transaction (its rows, then its details and provenance, then "finished"). A cell whose run
key has a finished attempt is rebuilt from the store without touching the model; a cell killed
half-way is computed again (its model scores come back from the scoring cache where it is on).

A check is a dict: ``"kind"`` (``"membership"``, ``"dataset_inference"``, ``"contamination"``),
an optional ``"name"`` (the cell is task ``"<kind>:<name>"``, or ``"<kind>"`` without one), and the
function's own arguments, e.g. ``{"kind": "membership", "members": [...], "nonmembers": [...],
"methods": ["loss", "min_k"]}`` or ``{"kind": "contamination", "benchmark": texts, "tests":
["exchangeability", "verbatim"]}``. The run key hashes the model state, the check's kind and the
CONTENT of its data (texts, frames, files and folders read byte for byte, a reference model by
its state), options, seed, tag and the workbench version: the same check on changed data is a
new cell. A corpus given as a one-shot iterable (a generator, a streamed data set) cannot be
identified by content: give files, a folder or a list.

>>> spec = parse_training({"kind": "membership", "members": ["a b"], "nonmembers": ["c d"]})
>>> spec["kind"], training_task_name(spec)
('membership', 'membership')
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.bench.lease import recorded_attempt

KINDS = ("membership", "dataset_inference", "contamination")


def _function(kind: str):
    from workbench.training_data import contamination, dataset_inference, membership
    return {"membership": membership, "dataset_inference": dataset_inference, "contamination": contamination}[kind]


def parse_training(check) -> dict:
    """``{"kind", "name", **arguments}`` from a training check, checked before any model is loaded."""
    import inspect
    if not isinstance(check, dict) or check.get("kind") not in KINDS:
        raise InvalidInputError(f"a training check is a dict with 'kind' one of {KINDS} and the function's "
                                f"arguments (e.g. {{'kind': 'membership', 'members': [...], 'nonmembers': [...]}}); "
                                f"got {check!r:.200}")
    spec = {"name": None, **check}
    import workbench.training_data as td
    params = inspect.signature(getattr(td, spec["kind"])).parameters
    unknown = sorted(k for k in spec if k not in ("kind", "name") and (k not in params or k in ("model", "progress")))
    if unknown:
        allowed = sorted(k for k in params if k not in ("model", "progress"))
        raise InvalidInputError(f"{spec['kind']} check: unknown argument(s) {unknown}; it takes {allowed}")
    return spec


def training_task_name(spec: dict) -> str:
    return spec["kind"] + (f":{spec['name']}" if spec.get("name") else "")


def _file_digest(path: Path, h) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def canonical(value, what: str = "argument", paths: str = "top"):
    """A JSON-able stand-in for an argument that changes when its CONTENT changes: data frames as
    records, existing files and folders as the hash of their bytes, models by their state.
    ``paths``: where a string naming an existing file or folder is read as one: ``"top"`` (the
    argument itself: a data file), ``"all"`` (list elements too: a corpus of files), ``"none"``
    (a text that happens to name a file stays a text)."""
    from workbench.models.model import Model
    if isinstance(value, Model):
        return {"model": value.name, "state_id": value.state_id}
    if isinstance(value, pd.DataFrame):
        return {"frame": json.loads(value.to_json(orient="split", date_format="iso"))}
    if isinstance(value, pd.Series):
        return {"series": value.tolist()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if paths != "none" and (isinstance(value, Path) or (isinstance(value, str) and len(value) < 4096
                                                        and "\n" not in value and os.path.exists(value))):
        p, h = Path(value), hashlib.sha256()
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in files:
            h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
            _file_digest(q, h)
        return {"path": str(value), "sha256": h.hexdigest()}
    inner = "all" if paths == "all" else "none"
    if isinstance(value, dict):
        return {str(k): canonical(v, what, inner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v, what, inner) for v in value]
    if value is None or isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return value.item() if hasattr(value, "item") else value
    if type(value).__name__ == "Task":
        return {"task": value.name, "hash": value.hash}
    raise InvalidInputError(f"{what}: a stored training check needs its data as texts, a list, a DataFrame, files or "
                            f"a folder (to identify it by content); got a {type(value).__name__}. Read it into a "
                            "list first (e.g. list(iterable))")


def _ident(spec: dict) -> dict:
    args = {k: canonical(v, f"{spec['kind']} argument {k!r}", "all" if k == "corpus" else "top")
            for k, v in spec.items() if k not in ("kind", "name")}
    return {"kind": spec["kind"], "name": spec.get("name"), "arguments": args}


def _compact(ident: dict) -> dict:
    """The identity as stored with the run: options as given, data (anything long) as its hash and
    size (the texts themselves are in the cell's rows)."""
    def small(v):
        s = json.dumps(v, sort_keys=True, default=str)
        return v if len(s) <= 400 else {"sha256": hashlib.sha256(s.encode()).hexdigest()[:16], "chars": len(s)}
    return {**ident, "arguments": {k: small(v) for k, v in ident["arguments"].items()}}


def training_run_key(model, spec: dict, seed: int, tag: str) -> tuple[str, str]:
    """(run key, data hash) of a training cell: model state x kind, data content, options x seed x tag."""
    import workbench
    ident = _ident(spec)
    blob = json.dumps(ident, sort_keys=True, default=str)
    key = hashlib.sha256(json.dumps([model.state_id, blob, int(seed), tag, workbench.__version__]).encode())
    return key.hexdigest()[:16], hashlib.sha256(blob.encode()).hexdigest()[:16]


def training_cell(model, label: str, spec: dict, seed: int, tag: str) -> dict:
    """The description of a training cell that :class:`~workbench.bench.results.BenchResults`
    reads (without its ``"result"``)."""
    key, data_hash = training_run_key(model, spec, seed, tag)
    return {"model": label, "task": training_task_name(spec), "run_key": key, "kind": spec["kind"], "group": None,
            "fingerprint": model.state_id, "item_ids": None, "task_hash": data_hash}


def training_finished(store, run_key: str) -> bool:
    return bool((store.attempts(run_key).status == "finished").any())


def run_training_cell(model, label: str, check, store, *, seed: int = 0, tag: str = "",
                      wait: bool = True) -> dict | None:
    """Run (or reload from the store) one training check on one model; returns the cell
    description with its result (``"result"``), rebuilt from the store. The check's own ``seed``
    wins over the grid's. Takes the cell's lease first: while another live process computes it,
    waits and then adopts its result (``wait=True``) or returns None (``wait=False``)."""
    from workbench.bench.lease import under_lease
    from workbench.bench.store import open_store

    store = open_store(store)
    spec = parse_training(check)
    spec.setdefault("seed", seed)
    cell = training_cell(model, label, spec, seed, tag)
    key = cell["run_key"]
    if not under_lease(store, key, lambda lease: _compute(model, label, spec, cell, store, lease, seed=seed, tag=tag),
                       wait=wait, done=lambda: training_finished(store, key)):
        return None
    cell["result"] = load_training_result(store, key)
    return cell


def _rows(result, kind: str) -> list[tuple[tuple, dict]]:
    """((id, index, group), record) per stored row: the result's per-item frame(s)."""
    if kind == "contamination":
        out, i = [], 0
        for test, df in result.items.items():
            for j, rec in enumerate(df.to_dict(orient="records")):
                out.append(((f"{test}:{j}", i, test), rec))
                i += 1
        return out
    return [((str(j), j, None), rec) for j, rec in enumerate(result.items.to_dict(orient="records"))]


def _saved(result, kind: str) -> dict:
    """What the result needs besides its rows, to be rebuilt equal."""
    if kind == "membership":
        return {"methods": list(result.methods), "n_boot": result.n_boot, "seed": result.seed,
                "columns": list(result.frame.columns)}
    if kind == "dataset_inference":
        return {"details": result.details, "weights": result.weights.to_dict(), "columns": list(result.frame.columns)}
    return {"details": result.details, "columns": {t: list(df.columns) for t, df in result.items.items()}}


def _compute(model, label, spec, cell, store, lease, *, seed, tag):
    import time

    from workbench.bench.runner import package_versions
    from workbench.bench.store import _json_default

    key, kind = cell["run_key"], spec["kind"]
    versions = package_versions()
    ident = _compact(_ident(spec))
    store.ensure_run(key, model_name=label, model_fingerprint=model.state_id,
                     fingerprint_json=json.dumps({**model.fingerprint, "interventions": model.interventions},
                                                 default=str),
                     task_name=cell["task"], task_hash=cell["task_hash"], task_kind=kind,
                     task_spec_json=json.dumps(ident, default=str), seed=int(seed), tag=tag,
                     versions_json=json.dumps(versions), n_items_task=None)
    attempt = store.start_attempt(key, backend="local", item_limit=None, n_requested=0, n_already_done=0,
                                  versions=versions)
    lease.set_attempt(attempt)
    with recorded_attempt(store, attempt, lease):
        args = {k: v for k, v in spec.items() if k not in ("kind", "name")}
        result = _function(kind)(model, progress=False, **args)
        rows, now = _rows(result, kind), time.time()
        with store._write() as con:   # rows, what rebuilds the result, and the row count: one transaction
            con.execute("DELETE FROM items WHERE run_key=?", (key,))   # a half-written earlier attempt's
            con.executemany("INSERT INTO items VALUES (?,?,?,?,?,?,?)",
                            [(key, k[0], k[1], k[2], json.dumps(r, default=_json_default), attempt, now)
                             for k, r in rows])
            con.execute("UPDATE attempts SET n_requested=?, n_scored=?, n_inserted=? WHERE attempt_id=?",
                        (len(rows), len(rows), len(rows), attempt))
            con.execute("UPDATE runs SET task_spec_json=?, n_items_task=? WHERE run_key=?",
                        (json.dumps({**ident, "provenance": result.provenance, "saved": _saved(result, kind)},
                                    default=_json_default), len(rows), key))
            lease.renew(con)


def _frame(records: pd.DataFrame, columns: list) -> pd.DataFrame:
    return records.reindex(columns=columns) if len(records) else pd.DataFrame(columns=columns)


def load_training_result(store, run_key: str):
    """Rebuild the :class:`~workbench.training_data.MembershipResult`,
    :class:`~workbench.training_data.DatasetInferenceResult` or
    :class:`~workbench.training_data.ContaminationResult` of a stored training cell."""
    from workbench.training_data import ContaminationResult, DatasetInferenceResult, MembershipResult

    info = store.run_info(run_key)
    spec = json.loads(info["task_spec_json"])
    kind, saved, prov = spec["kind"], spec["saved"], spec["provenance"]
    prov = {**prov, "store": {"path": str(store.path), "run_key": info["run_key"], "task": info["task_name"],
                              "data_hash": info["task_hash"], "versions": json.loads(info["versions_json"])}}
    if kind == "membership":
        items = store.items(run_key)
        return MembershipResult(frame=_frame(items, saved["columns"]), provenance=prov,
                                methods=tuple(saved["methods"]), n_boot=saved["n_boot"], seed=saved["seed"])
    if kind == "dataset_inference":
        return DatasetInferenceResult(frame=_frame(store.items(run_key), saved["columns"]), provenance=prov, details=saved["details"],
                                      weights=pd.Series(saved["weights"], dtype=float))
    per_test = {}  # contamination: each test's rows by group (store.items would parse them all once more)
    rows = store._con.execute("SELECT grp, record FROM items WHERE run_key=? ORDER BY item_index",
                              (run_key,)).fetchall()
    for test, cols in saved["columns"].items():
        per_test[test] = _frame(pd.DataFrame([json.loads(r) for g, r in rows if g == test]), cols)
    return ContaminationResult(frame=pd.DataFrame(saved["details"]), provenance=prov, items=per_test,
                               details=saved["details"])


def table_rows(result, kind: str) -> pd.DataFrame:
    """The result's summary as rows of the grid table (metric, value, ci_low, ci_high, n):
    membership as ``"<method>/<metric>"`` (``loss/auroc``, ``blind/auroc``,
    ``loss/auroc_minus_blind``, ...); dataset inference and contamination as ``"<test>/statistic"``
    and ``"<test>/p_value"`` (no intervals)."""
    if kind == "membership":
        s = result.summary()
        return pd.DataFrame({"metric": s.method + "/" + s.metric, "value": s.value, "ci_low": s.ci_low,
                             "ci_high": s.ci_high, "n": s.n})
    s = result.summary()
    rows = [{"metric": f"{r.test}/{what}", "value": getattr(r, what), "ci_low": np.nan, "ci_high": np.nan, "n": r.n}
            for r in s.itertuples() for what in ("statistic", "p_value")]
    return pd.DataFrame(rows)

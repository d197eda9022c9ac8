"""One cell type for every unit of work: a (model, unit) cell of a grid, scored into the store,
resumed item by item, rebuilt from the store.

A unit is a benchmark task, a bias probe or a training-data check (:class:`WorkUnit`, resolved
from what ``wb.run(units=[...])`` is given by :func:`resolve_unit`); all three are
:class:`~workbench.units.UnitSpec` s and go through the same steps (:func:`run_unit_cell`):

1. its run key (the unit's ``identity``: model state x unit content x seed x tag x version);
2. the cell's lease (:mod:`workbench.bench.lease`): one process computes a cell;
3. :func:`workbench.units.run.prepare_unit`: data, options, the items ``limit`` selects;
4. the items no committed chunk covers are scored in chunks of ``chunk_size`` (a unit that is
   not item-wise, or a check, in one chunk), each chunk's rows and skips in one transaction;
5. the unit's provenance (and, for a check, what rebuilds its result) with the run;
6. :func:`rebuild`: the result from the stored rows, equal to an uninterrupted run's.

>>> import workbench as wb
>>> resolve_unit("blimp").name, resolve_unit("crows_pairs=../data").name
('blimp', 'probe:crows_pairs')
>>> resolve_unit({"check": "membership", "name": "seen", "members": ["a"], "nonmembers": ["b"]}).name
'membership:seen'
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace

import pandas as pd

from workbench._version import __version__
from workbench.bench.lease import recorded_attempt, under_lease
from workbench.bench.store import _json_default, open_store
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.probes.api import get_spec, probe_names
from workbench.tasks.kinds import KINDS as TASK_KINDS
from workbench.tasks.spec import Task, UnknownTaskError, load_task, task_from_dict
from workbench.tasks.unit import task_unit
from workbench.training_data.checks import CHECKS, get_check, parse_training, stored_identity, training_task_name
from workbench.units.result import UnitResult
from workbench.units.run import PreparedUnit, prepare_unit, unit_provenance
from workbench.units.spec import SkipLog, UnitSpec
from workbench.versions import package_versions


@dataclass(frozen=True)
class WorkUnit:
    """A unit of work as a grid runs it: its spec, its data and options, and its name in the grid
    (the ``task`` column: ``"blimp"``, ``"probe:crows_pairs"``, ``"membership:seen"``)."""

    spec: UnitSpec
    name: str
    data: object = None
    options: dict = field(default_factory=dict)
    given_name: str | None = None   # a check's own "name" (part of its identity)

    @property
    def stored_kind(self) -> str:
        """The ``task_kind`` the store records: the task's kind, "probe", or the check's name."""
        return self.spec.task.kind if self.spec.unit == "task" else (
            "probe" if self.spec.unit == "probe" else self.spec.name)


# ---- from what a grid is given to units ------------------------------------------------------
def probe_unit(probe) -> WorkUnit:
    """A probe from ``"name"``, ``"name=data_path"`` or ``{"name", "data", **options}``, checked
    before any model is loaded."""
    if isinstance(probe, str):
        name, _, data = probe.partition("=")
        name = name.removeprefix("probe:")
        spec_dict = {"name": name, "data": data or None}
    elif isinstance(probe, dict) and "name" in probe:
        spec_dict = {"data": None, **probe}
    else:
        raise InvalidInputError(f"a probe is a name, 'name=data_path' or a dict with 'name'; got {probe!r}")
    spec = get_spec(spec_dict["name"])  # an unknown name lists the known ones
    if spec_dict["data"] is None and spec.default_data is None:
        raise InvalidInputError(f"probe {spec.name!r} needs its data set: pass '{spec.name}=<path>' "
                                f"(e.g. ../shared/data/{spec.name}) or {{'name': ..., 'data': ...}}")
    options = {k: v for k, v in spec_dict.items() if k not in ("name", "data")}
    return WorkUnit(spec, f"probe:{spec.name}", spec_dict["data"], options)


def check_unit_of(check) -> WorkUnit:
    """A training-data check from ``{"check" (or "kind"), "name", **arguments}``."""
    parsed = parse_training(check)
    options = {k: v for k, v in parsed.items() if k not in ("kind", "name")}
    return WorkUnit(get_check(parsed["kind"]), training_task_name(parsed), None, options, parsed.get("name"))


def task_work_unit(task) -> WorkUnit:
    task = load_task(task)
    return WorkUnit(task_unit(task), task.name, None, {})


def resolve_unit(unit) -> WorkUnit:
    """A :class:`WorkUnit` from anything ``wb.run(units=[...])`` takes: a task name, path or dict
    spec (``"blimp"``, ``"blimp:adjunct_island"``, ``"task:prose"``), a probe (``"crows_pairs"``,
    ``"crows_pairs=<data>"``, ``"probe:seat"``, ``{"name": ..., "data": ...}``), a training-data
    check (``{"check": "membership", ...}``), a Task, a UnitSpec or a WorkUnit."""
    if isinstance(unit, WorkUnit):
        return unit
    if isinstance(unit, Task):
        return task_work_unit(unit)
    if isinstance(unit, UnitSpec):
        if unit.unit == "check":
            raise InvalidInputError(f"check {unit.name!r} takes arguments: pass {{'check': {unit.name!r}, ...}}")
        return WorkUnit(unit, unit.name if unit.unit == "task" else f"probe:{unit.name}")
    if isinstance(unit, dict):
        if "check" in unit or unit.get("kind") in CHECKS:
            return check_unit_of(unit)
        if unit.get("kind") in TASK_KINDS:
            return task_work_unit(unit)
        if "name" in unit:
            return probe_unit(unit)
        raise InvalidInputError(f"a unit dict is a task spec (with 'kind' one of {sorted(TASK_KINDS)}), a probe "
                                f"({{'name': ..., 'data': ...}}) or a check ({{'check': one of {sorted(CHECKS)}, ...}}); "
                                f"got keys {sorted(unit)}")
    if not isinstance(unit, str):
        raise InvalidInputError(f"a unit is a task or probe name, a dict or a Task; got {type(unit).__name__}")
    if unit.startswith("task:"):
        return task_work_unit(unit.removeprefix("task:"))
    name = unit.partition("=")[0]
    if unit.startswith("probe:") or "=" in unit:
        return probe_unit(unit)
    is_probe = name in probe_names()
    try:
        task = task_work_unit(unit)
    except UnknownTaskError:
        if is_probe:
            return probe_unit(unit)
        raise UnknownTaskError(f"unknown unit {unit!r}: not a task (built in: see wb.tasks.list_tasks(); or a YAML "
                               f"spec or .jsonl/.csv file) nor a probe (known: {', '.join(probe_names())})") from None
    if is_probe:
        raise InvalidInputError(f"{unit!r} names both a task and a probe: write 'task:{unit}' or 'probe:{unit}'")
    return task


# ---- one cell ---------------------------------------------------------------------------------
def identity(model, work: WorkUnit, limit, seed: int, tag: str) -> tuple[str, str]:
    """(run key, unit hash) of a cell: the unit's own ``identity`` where it has one (tasks: the
    task's content hash; checks: their data's content), else the probes' rule (model state x
    unit, data, options, limit x seed x tag x version)."""
    if work.spec.identity is not None:
        return work.spec.identity(model, work, limit, seed, tag)
    ident = _probe_ident(work, limit)
    key = hashlib.sha256(json.dumps([model.state_id, ident, int(seed), tag, __version__],
                                    sort_keys=True, default=str).encode()).hexdigest()[:16]
    return key, hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _probe_ident(work: WorkUnit, limit) -> dict:
    return {"probe": work.spec.name, "data": None if work.data is None else str(work.data),
            "options": work.options, "limit": limit}


def _stored_ident(work: WorkUnit, limit, seed: int) -> dict:
    """What the run row keeps of the unit (read back by :func:`rebuild` and ``from_store``)."""
    if work.spec.unit == "task":
        return work.spec.task.spec()
    if work.spec.unit == "check":
        return stored_identity({"kind": work.spec.name, "name": work.given_name, **work.options})
    return _probe_ident(work, limit)


def cell_description(model, label: str, work: WorkUnit, limit, seed: int, tag: str) -> dict:
    """What :class:`~workbench.bench.results.BenchResults` reads of a cell (its ``result`` is
    added once it is rebuilt)."""
    key, unit_hash = identity(model, work, limit, seed, tag)
    categories = work.spec.categories
    return {"model": label, "task": work.name, "run_key": key, "kind": work.stored_kind, "unit": work.spec.unit,
            "group": categories[0] if categories else None, "fingerprint": model.state_id, "item_ids": None,
            "task_hash": unit_hash}


def _item_keys(frame: pd.DataFrame, item_key) -> list[str]:
    return ["|".join(str(v) for v in row) for row in frame[list(item_key)].itertuples(index=False)]


def prepare_cell(model, work: WorkUnit, limit, seed: int, cache: bool) -> tuple[PreparedUnit, list[str]]:
    options = dict(work.options)
    if work.spec.unit == "check":
        options.setdefault("seed", seed)   # a check's own seed wins over the grid's
        options.pop("cache", None)
        return prepare_unit(work.spec, model, cache=cache, **options), ["cell"]
    prep = prepare_unit(work.spec, model, data=work.data, limit=limit, seed=seed, cache=cache, **options)
    return prep, _item_keys(prep.items, work.spec.item_key)


def selected_keys(work: WorkUnit, limit) -> list[str] | None:
    """The item keys a task cell's result covers (a task's ``limit`` does not change its run key,
    so a cell may hold fewer items than a later grid selects); None for other units."""
    if work.spec.unit != "task":
        return None
    return [str(it["id"]) for it in work.spec.task.select(limit)]


def complete(store, key: str, work: WorkUnit, item_keys: list[str] | None) -> bool:
    """Whether a cell needs no more scoring: a task has every selected item stored; another unit
    has a finished attempt (its run key holds its limit and options: finished is complete)."""
    if item_keys is None:
        return finished(store, key)
    return set(item_keys) <= store.done_keys(key)


def run_unit_cell(model, label: str, work: WorkUnit, store, *, limit=None, seed: int = 0, tag: str = "",
                  chunk_size: int = 64, executor: str = "local", progress=True,
                  score_kwargs: dict | None = None, n_boot: int = 2000, wait: bool = True) -> dict | None:
    """Run (or resume, or rebuild from the store) one unit on one model; returns the cell
    description with its ``result``. Takes the cell's lease first: while another live process
    computes it, waits and then adopts its result (``wait=True``) or returns None (``wait=False``:
    the grid takes other cells first). ``progress``: a bar (True), none (False), or a callable
    ``progress(done, total)`` called as scoring starts and after each committed chunk (the audit's
    terminal lines)."""
    store = open_store(store)
    score_kwargs = dict(score_kwargs or {})
    cache = score_kwargs.pop("cache", True)
    cell = cell_description(model, label, work, limit, seed, tag)
    key = cell["run_key"]
    selected = selected_keys(work, limit)

    def compute(lease):  # prepared only when there is something to score: a complete cell is only read
        prep, keys = prepare_cell(model, work, limit, seed, cache)
        _score(model, label, work, prep, keys, key, cell["task_hash"], store, lease, limit=limit, seed=seed,
               tag=tag, chunk_size=chunk_size, executor=executor, progress=progress, scoring=score_kwargs,
               n_boot=n_boot)
    if not under_lease(store, key, compute, wait=wait, done=lambda: complete(store, key, work, selected)):
        return None
    cell["item_ids"] = selected  # a task's store may hold more of its items (a larger limit earlier)
    cell["result"] = rebuild(store, key, work.spec, item_ids=selected, n_boot=n_boot, label=label)
    return cell


def _score(model, label, work, prep, keys, key, unit_hash, store, lease, *, limit, seed, tag, chunk_size, executor,
           progress, scoring, n_boot) -> None:
    """Score the items no committed chunk covers, chunk by chunk, each chunk's rows and skips
    committed in one transaction; then record the provenance of the whole cell."""
    from tqdm.auto import tqdm

    spec = work.spec
    versions = package_versions()
    ident = _stored_ident(work, limit, seed)
    store.ensure_run(key, model_name=label, model_fingerprint=model.state_id,
                     fingerprint_json=json.dumps({**model.fingerprint, "interventions": model.interventions},
                                                 default=str),
                     task_name=work.name, task_hash=unit_hash, task_kind=work.stored_kind,
                     task_spec_json=json.dumps(ident, default=str), seed=int(seed), tag=tag,
                     versions_json=json.dumps(versions), n_items_task=None)
    done = store.done_keys(key)
    todo = [i for i, k in enumerate(keys) if k not in done]
    attempt = store.start_attempt(key, executor=executor, item_limit=limit, n_requested=len(keys),
                                  n_already_done=len(keys) - len(todo), versions=versions)
    lease.set_attempt(attempt)
    # a unit whose scores depend on the other items (or on the batch), or a check, is scored whole
    size = chunk_size if spec.itemwise else max(len(keys), 1)
    group = spec.categories[0] if spec.categories else None
    report = progress if callable(progress) else None
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"{label} | {work.name}", unit="item",
               disable=not progress or report is not None or spec.unit == "check", leave=False)
    if report is not None:
        report(len(keys) - len(todo), len(keys))
    saved = {}
    with bar, recorded_attempt(store, attempt, lease):
        for start in range(0, len(todo), size):
            positions = todo[start:start + size]
            skips, t0 = SkipLog(), time.perf_counter()
            scored = spec.call_score(model, prep.items.iloc[positions].reset_index(drop=True),
                                     prep.context(skips, scoring))
            score_s = time.perf_counter() - t0
            if spec.save is not None:   # a check: its result's rows, and what rebuilds it
                records, saved = spec.save(scored)
                provenance = scored.provenance
                rows = [r for _, r in records]
                row_keys = [k for k, _ in records]
            else:
                scored = scored.reset_index(drop=True)
                out_keys = _item_keys(scored, spec.item_key)
                rows = scored.to_dict(orient="records")
                row_keys = list(zip(out_keys, _row_index(spec, prep.items, keys, positions, out_keys),
                                    scored[group] if group in scored.columns else [None] * len(scored)))
            store.add_items(key, attempt, rows, lease=lease, keys=row_keys, replace=spec.save is not None,
                            chunk={"first_index": positions[0], "item_keys": [keys[i] for i in positions],
                                   "skipped": skips.rows, "score_s": score_s})
            lease.check()
            bar.update(len(positions))
            if report is not None:
                report(len(keys) - len(todo) + start + len(positions), len(keys))
        if spec.save is None:
            chunks = store.chunks(key)
            # (a chunk committed twice, by an owner that outlived its lease, adds its skips once)
            scorer_skips = list({json.dumps(r, sort_keys=True, default=str): r
                                 for c in chunks for r in c["skipped"]}.values())
            provenance = unit_provenance(prep, model, n_scored=store.count_items(key),
                                         skipped=prep.skips.rows + scorer_skips,
                                         score_s=sum(c["score_s"] or 0.0 for c in chunks), n_boot=n_boot)
        store.finish_run_spec(key, {**ident, "provenance": provenance, "options": prep.public_options,
                                    **({"saved": saved} if spec.save is not None else {})}, lease=lease,
                              # a task's run is "partial" while it holds fewer than all the task's items
                              n_items=len(spec.task.all_items) if spec.unit == "task" else None)


def _row_index(spec, items: pd.DataFrame, keys: list[str], positions: list[int], out_keys: list[str]) -> list[int]:
    """Where each scored row sorts in the cell: an item-wise unit's row at its item's place (the
    task item's ``index``, its row in the data, so a later, larger ``limit`` adds rows in data
    order; another unit's item at its position), so a resumed cell reads back in the order of an
    uninterrupted one; a whole-cell unit's rows in the order its scorer returned them."""
    if not spec.itemwise:
        return list(range(len(out_keys)))
    place = items["index"].tolist() if spec.unit == "task" else list(range(len(items)))
    where = {keys[i]: int(place[i]) for i in positions}
    unknown = [k for k in out_keys if k not in where]
    if unknown:
        raise WorkbenchError(f"{spec.unit} {spec.name!r} returned rows for items it was not given ({unknown[:3]}); "
                             "it cannot be scored in chunks: please report this")
    return [where[k] for k in out_keys]


# ---- rebuilding a cell's result from the store ---------------------------------------------
def stored_spec(store, run_key: str) -> UnitSpec:
    """The unit spec a stored run was made with, from what its run row keeps: a task's spec, a
    probe's name or a check's name (the one place that reads a stored cell's kind)."""
    info = store.run_info(run_key)
    saved = json.loads(info["task_spec_json"] or "{}")
    if info["task_kind"] == "probe":
        return get_spec(saved["probe"])
    if info["task_kind"] in TASK_KINDS:
        spec = {k: v for k, v in saved.items() if k not in ("provenance", "options", "data")}
        return task_unit(task_from_dict(spec))
    return get_check(saved.get("kind", info["task_kind"]))


def rebuild(store, run_key: str, spec: UnitSpec | None = None, item_ids=None, n_boot: int = 2000,
            label: str | None = None):
    """The result of a stored cell, rebuilt from its rows (only ``item_ids`` where given), equal
    to the result of an uninterrupted run."""
    info = store.run_info(run_key)
    spec = spec or stored_spec(store, run_key)
    saved = json.loads(info["task_spec_json"] or "{}")
    prov = dict(saved.get("provenance") or {
        # a task cell stored before tasks were units kept no provenance: what the run row says
        "model": {"name": info["model_name"], "state_id": info["model_fingerprint"]}})
    prov["label"] = label or info["model_name"]
    rows = store.rows(run_key)
    if item_ids is not None:
        wanted = set(map(str, item_ids))
        rows = [r for r in rows if r[0] in wanted]
    if spec.save is not None:  # a check rebuilds its own result type
        prov["store"] = {"path": str(store.path), "run_key": info["run_key"], "task": info["task_name"],
                         "data_hash": info["task_hash"], "versions": json.loads(info["versions_json"])}
        return spec.result(rows, saved["saved"], prov)
    skipped = pd.DataFrame(prov.get("skipped") or [], columns=SkipLog().frame().columns)
    build = spec.result or _unit_result()
    options = saved.get("options", saved.get("probe_options", {}))
    return build(pd.DataFrame([r for _, _, r in rows]), prov, spec=spec, options=options, skipped=skipped,
                 n_boot=n_boot, seed=int(info["seed"]))


def _unit_result():
    return UnitResult


def finished(store, run_key: str) -> bool:
    """Whether the cell has a finished attempt."""
    return bool((store.attempts(run_key).status == "finished").any())


def relabel(cell: dict, label: str) -> dict:
    return replace(cell, model=label) if not isinstance(cell, dict) else {**cell, "model": label}

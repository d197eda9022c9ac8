"""``wb.run``: a grid of models x units of work (benchmark tasks, bias probes, training-data
checks), resumable, stored item by item.

One model is in memory at a time: the grid walks models in the outer loop, loads each (when
given as an alias or path), runs all its cells, then lets it go before loading the next. Every
cell is the same kind of cell (:mod:`workbench.bench.cells`): identified by a *run key* (model
state x unit content x seed x tag x workbench version), its items already in the store under that
key not scored again.
"""
from __future__ import annotations

import gc
import time
import warnings
from dataclasses import dataclass

from workbench.bench.cells import (WorkUnit, cell_description, complete, rebuild, resolve_unit, run_unit_cell,
                                   selected_keys)
from workbench.bench.executor_ray import run_grid_ray
from workbench.bench.results import BenchResults
from workbench.bench.store import open_store
from workbench.errors import InvalidInputError, InvalidTypeError
from workbench.models.loading import load_model
from workbench.models.model import Model
from workbench.tasks.spec import Task
from workbench.validate import BOOL, Int, Optional, checked

EXECUTORS = ("local", "ray")


def _model_specs(models) -> list[tuple[str, object]]:
    """(label, alias-or-Model) pairs from a list, a dict {label: model}, or one model."""
    if isinstance(models, (str, Model)):
        models = [models]
    pairs = list(models.items()) if isinstance(models, dict) else \
        [(m if isinstance(m, str) else getattr(m, "name", None), m) for m in models]
    if not pairs:
        raise InvalidInputError("models is empty: pass aliases (e.g. ['smollm2-135m-instruct']) or loaded Models")
    for label, m in pairs:
        if not isinstance(m, (str, Model)):
            raise InvalidInputError(f"a model is an alias/path or a loaded workbench Model, got {type(m).__name__}")
    labels = [label for label, _ in pairs]
    dups = sorted({x for x in labels if labels.count(x) > 1})
    if dups:
        raise InvalidInputError(f"two models share the name(s) {dups}: pass a dict {{label: model}} to tell them apart")
    return pairs


def load_model_spec(spec):
    """A loaded Model from an alias/path (or the Model itself)."""
    return load_model(spec) if isinstance(spec, str) else spec


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (str, dict, Task, WorkUnit)) or hasattr(value, "kind"):
        return [value]
    return list(value)


def grid_units(tasks=None, probes=None, training=None, units=None) -> list[WorkUnit]:
    """The grid's units, in the order given: ``units`` (any mix), then the older keywords'
    ``tasks``, ``probes`` (each a probe) and ``training`` (each a check), all resolved and checked
    before any model is loaded."""
    work = [resolve_unit(u) for u in _as_list(units)]
    work += [resolve_unit(t) if not isinstance(t, str) or t.startswith("task:") else resolve_unit(f"task:{t}")
             for t in _as_list(tasks)]
    work += [resolve_unit(p if not isinstance(p, str) or "=" in p or p.startswith("probe:") else f"probe:{p}")
             for p in _as_list(probes)]
    work += [resolve_unit({"check": c["kind"], **{k: v for k, v in c.items() if k != "kind"}})
             if isinstance(c, dict) and "kind" in c and "check" not in c else resolve_unit(c)
             for c in _as_list(training)]
    if not work:
        raise InvalidInputError("there is nothing to run: pass units=[...] (task names such as 'blimp', probe "
                                "names such as 'crows_pairs=../shared/data/crows_pairs', or training-data checks "
                                "such as {'check': 'membership', ...}), or tasks=/probes=/training=")
    names = [w.name for w in work]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"unit names must be unique in a grid, got {names} (give training checks of one "
                                "kind distinct 'name's)")
    return work


# the whole door checked here, so that limit=True is refused (a bool is an int to Python: it ran one
# item), not read as 1, and seed/chunk_size/progress are what they say before any model is loaded
@checked(limit=Optional(Int(min=1)), seed=Int(min=0), chunk_size=Int(min=1), progress=BOOL)
def run(models, tasks=None, store="results.db", limit=None, probes=None, seed: int = 0, backend: str | None = None,
        tag: str = "", chunk_size: int = 64, progress: bool = True, score_kwargs: dict | None = None,
        ray_address: str | None = None, training=None, executor: str | None = None, units=None):
    """Run every unit of work on every model; results land in a SQLite store.

    Parameters
    ----------
    models : aliases/paths (loaded one at a time), loaded :class:`~workbench.Model` objects, or a
        dict ``{label: model}``.
    units : the units of work, any mix: benchmark task names (``wb.tasks.list_tasks()``), YAML/data
        paths, dict specs or Tasks (``"task:<name>"`` says it is a task); bias probes
        (``"crows_pairs=<data path>"``, ``"probe:<name>"`` or ``{"name", "data", **options}``;
        ``wb.list_probes()``); training-data checks (``{"check": "membership" |
        "dataset_inference" | "contamination", "name": ..., **arguments}``, the arguments of
        ``wb.membership`` etc.; see :mod:`workbench.training_data.checks`). A task appears in
        ``table()`` under its name, a probe as ``"probe:<name>"``, a check as ``"<check>[:<name>]"``.
    tasks, probes, training : the older keywords, still taken: each a list of tasks, of probes, of
        training checks (``{"kind": ...}``), run after ``units``.
    store : path of the SQLite results database (created if missing) or an open Store.
    limit : at most this many items per task (per group, i.e. per BLiMP paradigm) and per probe
        (a seeded sample); None = all.
    seed : seeds torch before each cell and is passed to generation and checks; part of the run identity.
    executor : where cells run: ``"local"`` (this process, the default) or ``"ray"`` (one Ray task per
        cell; ``pip install .[ray]``). ``backend=`` is its former name, still accepted with a
        DeprecationWarning: "backend" now names a model's engine (``wb.load_model(backend=...)``).
    tag : a label that is part of the run identity: a new tag re-runs everything under it.
    chunk_size : items committed per transaction (a kill loses at most one chunk).
    score_kwargs : passed to the scoring functions (e.g. ``{"batch_size": 16}``; ``{"cache": False}``
        scores without the scoring engine's cache).

    Re-running the same call re-uses every stored item: an interrupted grid finishes where it
    stopped. The same grid started in two processes on one store splits the work: each cell is
    computed once, under a lease in the store; the other process takes other cells first, then
    waits for the cells still leased and adopts their stored results (or finishes a cell whose
    owner died). See :mod:`workbench.bench.lease`.

    Example
    -------
    >>> import workbench as wb, tempfile, os
    >>> from workbench.testing import tiny_model
    >>> res = wb.run([tiny_model("gpt2")], units=["capitals"], store=os.path.join(tempfile.mkdtemp(), "r.db"),
    ...              limit=4, progress=False)
    >>> row = res.table().iloc[0]
    >>> row.model, row.task, row.metric, int(row.n)
    ('tiny-gpt2', 'capitals', 'acc', 4)
    """
    if not isinstance(tag, str):
        raise InvalidTypeError(f"tag must be a string (part of the run identity), got the {type(tag).__name__} {tag!r}")
    if score_kwargs is not None and not isinstance(score_kwargs, dict):
        raise InvalidTypeError(f"score_kwargs must be a dict of scoring options such as {{'token_budget': 4096}}, "
                               f"got the {type(score_kwargs).__name__} {score_kwargs!r}")
    executor = _executor(executor, backend)
    if executor == "ray" and (probes or training):  # said before the probes' data are looked at
        raise InvalidInputError("probes and training checks run with executor='local' (backend='local') only for "
                                "now; run them in a separate wb.run call")
    work = grid_units(tasks, probes, training, units)
    if executor == "ray" and any(w.spec.unit != "task" for w in work):
        raise InvalidInputError("probes and training checks run with executor='local' (backend='local') only for "
                                "now; run them in a separate wb.run call")
    for w in work:
        if w.spec.unit == "task":
            w.spec.task.select(limit)  # validate groups and data before any model is loaded
    specs = _model_specs(models)
    store = open_store(store)
    t0 = time.perf_counter()
    options = dict(limit=limit, seed=seed, tag=tag, chunk_size=chunk_size, score_kwargs=score_kwargs)
    if executor == "ray":
        cells = run_grid_ray(specs, work, store.path, address=ray_address, **options)
    else:
        cells = _run_grid_local(specs, work, store, progress=progress, **options)
    return BenchResults(store, cells, wall_s=time.perf_counter() - t0, seed=seed)


def _executor(executor, backend) -> str:
    if backend is not None:
        if executor is not None and executor != backend:
            raise InvalidInputError(f"executor={executor!r} and backend={backend!r} disagree: pass executor= only "
                                    "(backend= is its former name)")
        warnings.warn("wb.run(backend=...) is now executor=...: 'backend' names a model's engine "
                      "(wb.load_model(backend=...))", DeprecationWarning, stacklevel=3)
    executor = executor or backend or "local"
    if executor not in EXECUTORS:
        raise InvalidInputError(f"executor (formerly backend) must be one of {EXECUTORS}, got {executor!r}")
    return executor


@dataclass
class _Pending:
    """A cell another live process is computing: where it goes in the grid, and how to finish it."""

    pos: int
    label: str
    spec: object          # the model alias/path or Model, reloaded only if the cell must be computed here
    work: WorkUnit
    cell: dict            # its description (run key, ...)
    item_keys: list | None   # a task cell's selected items (None: another unit, complete once finished)


def _run_grid_local(specs, work, store, *, progress, limit, seed, tag, chunk_size, score_kwargs) -> list[dict]:
    """Models outer, cells inner. A cell leased by another live process (the same grid started
    twice on one store) is skipped at first; once this process has done every free cell, it waits
    for those, adopting the stored results when the owner finishes, or computing the rest itself
    when the owner died (see :mod:`workbench.bench.lease`)."""
    from tqdm.auto import tqdm

    cells, pending = [], []
    grid_bar = tqdm(total=len(specs) * len(work), desc="grid", unit="cell", disable=not progress)
    opts = dict(limit=limit, seed=seed, tag=tag, chunk_size=chunk_size, score_kwargs=score_kwargs,
                progress=progress)
    for label, spec in specs:
        model = load_model_spec(spec)
        for w in work:
            cell = run_unit_cell(model, label, w, store, wait=False, **opts)
            if cell is None:  # another process is computing it: come back to it at the end
                desc = cell_description(model, label, w, limit, seed, tag)
                pending.append(_Pending(len(cells), label, spec, w, desc, selected_keys(w, limit)))
            cells.append(cell)
            grid_bar.update(cell is not None)
        del model
        gc.collect()  # one model in memory at a time
    _wait_for_pending(pending, cells, store, grid_bar, opts)
    grid_bar.close()
    return cells


def _wait_for_pending(pending: list[_Pending], cells: list, store, bar, opts) -> None:
    """Poll the cells other processes hold until each is adopted or computed here; a model is
    loaded again only for a cell whose owner died before finishing it."""
    loaded = (None, None)  # (label, model): one model in memory at a time
    while pending:
        waiting = []
        for p in pending:
            key = p.cell["run_key"]
            if store.lease_holder(key) is not None:
                waiting.append(p)
                continue
            if complete(store, key, p.work, p.item_keys):
                cells[p.pos] = {**p.cell, "item_ids": p.item_keys,
                                "result": rebuild(store, key, p.work.spec, item_ids=p.item_keys, label=p.label)}
            else:  # the owner stopped before the end (died, failed): compute the rest here
                if loaded[0] != p.label:
                    loaded = (None, None)
                    gc.collect()
                    loaded = (p.label, load_model_spec(p.spec))
                cells[p.pos] = run_unit_cell(loaded[1], p.label, p.work, store, wait=False, **opts)
                if cells[p.pos] is None:  # a third process took it meanwhile
                    waiting.append(p)
                    continue
            bar.update()
        pending = waiting
        if pending:
            time.sleep(store.lease_poll_s)

"""``wb.run``: a grid of models x tasks (x bias probes, x training-data checks), resumable, stored item by item.

One model is in memory at a time: the grid walks models in the outer loop, loads each (when
given as an alias or path), runs all its tasks, then lets it go before loading the next. Each
(model, task) cell is identified by a *run key* (model state x task hash x seed x tag x workbench
version); items already in the store under that key are not scored again.
"""
from __future__ import annotations

import gc
import hashlib
import json
import platform
import time
from dataclasses import dataclass
from typing import Callable

from workbench.bench.probe_cells import parse_probe, run_probe_cell
from workbench.bench.scorers import score_items
from workbench.bench.store import open_store
from workbench.bench.training_cells import parse_training, run_training_cell, training_task_name
from workbench.bench.tasks import load_task
from workbench.errors import InvalidInputError, InvalidTypeError
from workbench.validate import BOOL, Int, Optional, checked

BACKENDS = ("local", "ray")


def package_versions() -> dict:
    import numpy
    import torch
    import transformers

    import workbench
    return {"workbench": workbench.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def run_key_of(model, task, seed: int, tag: str) -> str:
    """The identity of a cell: same model state, same task content, same seed/tag, same
    workbench version => same key (and its stored items are re-used)."""
    import workbench
    ident = [model.state_id, task.name, task.hash, int(seed), tag, workbench.__version__]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def _chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def task_cell(label: str, task, key: str, fingerprint: str, items: list[dict]) -> dict:
    """The description of a (model, task) cell that :class:`BenchResults` reads."""
    return {"model": label, "task": task.name, "run_key": key, "kind": task.kind, "group": task.group,
            "task_hash": task.hash, "fingerprint": fingerprint, "item_ids": [it["id"] for it in items],
            "format": task.format, "system_prompt": task.system_prompt}


def run_cell(model, label: str, task, store, *, limit=None, seed: int = 0, tag: str = "", chunk_size: int = 64,
             backend: str = "local", progress: bool = True, score_kwargs: dict | None = None,
             wait: bool = True) -> dict | None:
    """Score the items of one (model, task) cell that the store does not have yet.

    Each chunk of ``chunk_size`` items is committed in one transaction, so a kill loses at most
    the chunk in flight. The cell's lease is taken first (:mod:`workbench.bench.lease`): while
    another live process computes the cell, this one waits and then adopts what it stored
    (``wait=True``), or returns None at once (``wait=False``: the grid runner takes other cells
    first). Returns the cell description used by :class:`BenchResults`.
    """
    from workbench.bench.lease import under_lease

    store = open_store(store)
    items = task.select(limit)
    key = run_key_of(model, task, seed, tag)

    def compute(lease):  # resumes: only the items the store does not have are scored
        _score_cell(model, label, task, store, items, key, lease, limit=limit, seed=seed, tag=tag,
                    chunk_size=chunk_size, backend=backend, progress=progress, score_kwargs=score_kwargs)
    if not under_lease(store, key, compute, wait=wait):
        return None
    return task_cell(label, task, key, model.state_id, items)


def _score_cell(model, label, task, store, items, key, lease, *, limit, seed, tag, chunk_size, backend, progress,
                score_kwargs) -> None:
    import torch
    from tqdm.auto import tqdm

    versions = package_versions()
    store.ensure_run(key, model_name=label, model_fingerprint=model.state_id,
                     fingerprint_json=json.dumps({**model.fingerprint, "interventions": model.interventions},
                                                 default=str),
                     task_name=task.name, task_hash=task.hash, task_kind=task.kind,
                     task_spec_json=json.dumps(task.spec(), default=str), seed=int(seed), tag=tag,
                     versions_json=json.dumps(versions), n_items_task=len(task.all_items))
    done = store.done_ids(key)
    todo = [it for it in items if it["id"] not in done]
    attempt = store.start_attempt(key, backend=backend, item_limit=limit, n_requested=len(items),
                                  n_already_done=len(items) - len(todo), versions=versions)
    lease.set_attempt(attempt)
    torch.manual_seed(seed)
    kwargs = {"progress": False, **(score_kwargs or {})}  # one bar per cell, not one per chunk
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"{label} | {task.name}",
               unit="item", disable=not progress, leave=False)
    from workbench.bench.lease import recorded_attempt
    with bar, recorded_attempt(store, attempt, lease):
        for chunk in _chunks(todo, chunk_size):
            store.add_items(key, attempt, score_items(model, task, chunk, seed=seed, **kwargs), lease=lease)
            lease.check()
            bar.update(len(chunk))


def _model_specs(models) -> list[tuple[str, object]]:
    """(label, alias-or-Model) pairs from a list, a dict {label: model}, or one model."""
    from workbench.models.model import Model
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
    if not isinstance(spec, str):
        return spec
    from workbench.models.loading import load_model
    return load_model(spec)


# the whole door checked here, so that limit=True is refused (a bool is an int to Python: it ran one
# item), not read as 1, and seed/chunk_size/progress are what they say before any model is loaded
@checked(limit=Optional(Int(min=1)), seed=Int(min=0), chunk_size=Int(min=1), progress=BOOL)
def run(models, tasks, store="results.db", limit=None, probes=None, seed: int = 0, backend: str | None = None,
        tag: str = "", chunk_size: int = 64, progress: bool = True, score_kwargs: dict | None = None,
        ray_address: str | None = None, training=None, executor: str | None = None):
    """Run every task (and bias probe) on every model; results land in a SQLite store.

    Parameters
    ----------
    models : aliases/paths (loaded one at a time), loaded :class:`~workbench.Model` objects, or a
        dict ``{label: model}``.
    tasks : task names (``wb.bench.list_tasks()``), YAML/data paths, dict specs or Tasks.
    store : path of the SQLite results database (created if missing) or an open Store.
    limit : at most this many items per task (per group, i.e. per BLiMP paradigm); None = all.
    probes : bias probes run on each model in the same grid (``wb.run_probe``): names
        (``"occupations_pronouns"``), ``"crows_pairs=<data path>"`` or dicts ``{"name", "data",
        **options}``; their items land in the same store, their summaries in ``table()`` as task
        ``"probe:<name>"`` (see :mod:`workbench.bench.probe_cells`).
    training : training-data checks run on each model in the same grid: dicts ``{"kind":
        "membership" | "dataset_inference" | "contamination", "name": ..., **arguments}`` (the
        arguments of ``wb.membership`` etc.); each is one cell, task ``"<kind>[:<name>]"``, its
        result stored whole and reloaded on a rerun (``res.result(model, task)``; rows in
        ``table()``). See :mod:`workbench.bench.training_cells`.
    seed : seeds torch before each cell and is passed to generation; part of the run identity.
    executor : where cells run: ``"local"`` (this process, the default) or ``"ray"`` (one Ray task per
        cell; ``pip install .[ray]``). ``backend=`` is its former name, still accepted with a
        DeprecationWarning: "backend" now names a model's engine (``wb.load_model(backend=...)``).
    tag : a label that is part of the run identity: a new tag re-runs everything under it.
    chunk_size : items committed per transaction (a kill loses at most one chunk).
    score_kwargs : passed to the scoring functions (e.g. ``{"batch_size": 16}``).

    Re-running the same call re-uses every stored item: an interrupted grid finishes where it
    stopped. The same grid started in two processes on one store splits the work: each cell is
    computed once, under a lease in the store; the other process takes other cells first, then
    waits for the cells still leased and adopts their stored results (or finishes a cell whose
    owner died). See :mod:`workbench.bench.lease`.

    Example
    -------
    >>> import workbench as wb, tempfile, os
    >>> from workbench.testing import tiny_model
    >>> res = wb.run([tiny_model("gpt2")], ["capitals"], store=os.path.join(tempfile.mkdtemp(), "r.db"),
    ...              limit=4, progress=False)
    >>> row = res.table().iloc[0]
    >>> row.model, row.task, row.metric, int(row.n)
    ('tiny-gpt2', 'capitals', 'acc', 4)
    """
    from workbench.bench.results import BenchResults

    if not isinstance(tag, str):
        raise InvalidTypeError(f"tag must be a string (part of the run identity), got the {type(tag).__name__} {tag!r}")
    if score_kwargs is not None and not isinstance(score_kwargs, dict):
        raise InvalidTypeError(f"score_kwargs must be a dict of scoring options such as {{'token_budget': 4096}}, "
                               f"got the {type(score_kwargs).__name__} {score_kwargs!r}")
    if backend is not None:
        import warnings
        if executor is not None and executor != backend:
            raise InvalidInputError(f"executor={executor!r} and backend={backend!r} disagree: pass executor= only "
                                    "(backend= is its former name)")
        warnings.warn("wb.run(backend=...) is now executor=...: 'backend' names a model's engine "
                      "(wb.load_model(backend=...))", DeprecationWarning, stacklevel=2)
    backend = executor or backend or "local"  # the cells' executor (the store's attempts call it backend)
    if backend not in BACKENDS:
        raise InvalidInputError(f"executor (formerly backend) must be one of {BACKENDS}, got {backend!r}")
    if (probes or training) and backend == "ray":
        raise InvalidInputError("probes and training checks run with executor='local' (backend='local') only for now; "
                                "run them in a separate wb.run call")
    if isinstance(tasks, (str, dict)) or hasattr(tasks, "kind"):
        tasks = [tasks]
    task_objs = [load_task(t) for t in tasks]
    if isinstance(training, dict):
        training = [training]
    training = [parse_training(c) for c in (training or [])]
    if not task_objs and not probes and not training:
        raise InvalidInputError("tasks is empty: pass e.g. tasks=['blimp'] (see wb.bench.list_tasks())")
    names = [t.name for t in task_objs] + [training_task_name(c) for c in training]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"task names must be unique in a grid, got {names} (give training checks of one "
                                "kind distinct 'name's)")
    probes = [parse_probe(p) for p in (probes or [])]
    for t in task_objs:
        t.select(limit)  # validate limit, groups and data before any model is loaded
    specs = _model_specs(models)
    store = open_store(store)
    t0 = time.perf_counter()
    options = dict(limit=limit, seed=seed, tag=tag, chunk_size=chunk_size, score_kwargs=score_kwargs)
    if backend == "ray":
        from workbench.bench.ray_backend import run_grid_ray
        cells = run_grid_ray(specs, task_objs, store.path, address=ray_address, **options)
    else:
        cells = _run_grid_local(specs, task_objs, probes, store, progress=progress, training=training, **options)
    return BenchResults(store, cells, wall_s=time.perf_counter() - t0, seed=seed)


@dataclass
class _Pending:
    """A cell another live process is computing: where it goes in the grid, and how to finish it."""

    pos: int
    label: str
    spec: object          # the model alias/path or Model, reloaded only if the cell must be computed here
    key: str
    complete: Callable    # store -> bool: its results are all stored
    adopt: Callable       # store -> the cell description, from the stored results
    run: Callable         # (model, wait) -> the cell description, or None while leased elsewhere


def _run_grid_local(specs, task_objs, probes, store, *, progress, limit, seed, tag, chunk_size,
                    score_kwargs, training=()) -> list[dict]:
    """Models outer, cells inner. A cell leased by another live process (the same grid started
    twice on one store) is skipped at first; once this process has done every free cell, it waits
    for those, adopting the stored results when the owner finishes, or computing the rest itself
    when the owner died (see :mod:`workbench.bench.lease`)."""
    from tqdm.auto import tqdm

    cells, pending = [], []
    grid_bar = tqdm(total=len(specs) * (len(task_objs) + len(probes) + len(training)), desc="grid", unit="cell",
                    disable=not progress)
    opts = dict(limit=limit, seed=seed, tag=tag, chunk_size=chunk_size)
    for label, spec in specs:
        model = load_model_spec(spec)
        for task in task_objs:
            def run_task(m, wait, label=label, task=task):
                return run_cell(m, label, task, store, progress=progress, score_kwargs=score_kwargs, wait=wait,
                                **opts)
            cells.append(run_task(model, False))
            if cells[-1] is None:  # another process is computing it: come back to it at the end
                pending.append(_pending_task(len(cells) - 1, model, label, spec, task, run_task, limit, seed, tag))
            grid_bar.update(cells[-1] is not None)
        for probe in probes:  # bias probes in the same grid, same store
            def run_probe(m, wait, label=label, probe=probe):
                return run_probe_cell(m, label, probe, store, wait=wait, **opts)
            cells.append(run_probe(model, False))
            if cells[-1] is None:
                pending.append(_pending_probe(len(cells) - 1, model, label, spec, probe, run_probe, limit, seed, tag))
            grid_bar.update(cells[-1] is not None)
        for check in training:  # training-data checks: one whole cell each, same store
            def run_check(m, wait, label=label, check=check):
                return run_training_cell(m, label, check, store, seed=seed, tag=tag, wait=wait)
            cells.append(run_check(model, False))
            if cells[-1] is None:
                pending.append(_pending_training(len(cells) - 1, model, label, spec, check, run_check, seed, tag))
            grid_bar.update(cells[-1] is not None)
        del model
        gc.collect()  # one model in memory at a time
    _wait_for_pending(pending, cells, store, grid_bar)
    grid_bar.close()
    return cells


def _pending_task(pos, model, label, spec, task, run, limit, seed, tag) -> _Pending:
    items, key = task.select(limit), run_key_of(model, task, seed, tag)
    desc, ids = task_cell(label, task, key, model.state_id, items), {it["id"] for it in items}
    return _Pending(pos, label, spec, key, complete=lambda store: ids <= store.done_ids(key),
                    adopt=lambda store: desc, run=run)


def _pending_probe(pos, model, label, spec, probe, run, limit, seed, tag) -> _Pending:
    from workbench.bench.probe_cells import load_probe_result, probe_cell, probe_finished
    desc = probe_cell(model, label, probe, limit, seed, tag)
    key = desc["run_key"]
    return _Pending(pos, label, spec, key, complete=lambda store: probe_finished(store, key),
                    adopt=lambda store: {**desc, "probe": load_probe_result(store, key)}, run=run)


def _pending_training(pos, model, label, spec, check, run, seed, tag) -> _Pending:
    from workbench.bench.training_cells import load_training_result, training_cell, training_finished
    desc = training_cell(model, label, {**check, "seed": check.get("seed", seed)}, seed, tag)
    key = desc["run_key"]
    return _Pending(pos, label, spec, key, complete=lambda store: training_finished(store, key),
                    adopt=lambda store: {**desc, "result": load_training_result(store, key)}, run=run)


def _wait_for_pending(pending: list[_Pending], cells: list, store, bar) -> None:
    """Poll the cells other processes hold until each is adopted or computed here; a model is
    loaded again only for a cell whose owner died before finishing it."""
    loaded = (None, None)  # (label, model): one model in memory at a time
    while pending:
        waiting = []
        for p in pending:
            if store.lease_holder(p.key) is not None:
                waiting.append(p)
                continue
            if p.complete(store):
                cells[p.pos] = p.adopt(store)
            else:  # the owner stopped before the end (died, failed): compute the rest here
                if loaded[0] != p.label:
                    loaded = (None, None)
                    gc.collect()
                    loaded = (p.label, load_model_spec(p.spec))
                cells[p.pos] = p.run(loaded[1], False)
                if cells[p.pos] is None:  # a third process took it meanwhile
                    waiting.append(p)
                    continue
            bar.update()
        pending = waiting
        if pending:
            time.sleep(store.lease_poll_s)

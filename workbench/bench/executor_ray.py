"""Scale-out on Ray (``pip install .[ray]``): each (model, task) cell is one Ray task on a
worker that loads its model, scores the missing items and writes them to the same store.

The store is a SQLite file, so every worker must see the same file system (one machine, or a
shared volume across nodes); SQLite's locking keeps concurrent writers safe. Resuming works as
locally: a cell only scores the items its run key does not have yet. A cell another process is
computing (its lease in the store, see :mod:`workbench.bench.lease`) is waited for, then adopted.

>>> import workbench as wb                                    # doctest: +SKIP
>>> wb.run(["smollm2-135m-instruct", "gemma-3-270m"], ["blimp"], executor="ray", limit=10)  # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

from workbench.bench.cells import run_unit_cell
from workbench.errors import WorkbenchError
from workbench.models.loading import load_model


def import_ray():
    try:
        import ray
    except ImportError:
        raise WorkbenchError("executor='ray' needs Ray: pip install 'open-model-workbench[ray]' "
                             "(or pip install ray)") from None
    return ray


def _cell(label, spec, work, store_path, options):
    """Runs on a Ray worker: load one model, run one cell, return the cell description. ``spec``
    is an alias or path, a loaded Model, or an object whose ``load()`` loads it (the audit's
    model specs: a backend and options as well as a path)."""
    if isinstance(spec, str):
        model = load_model(spec)
    else:
        model = spec.load() if callable(getattr(spec, "load", None)) else spec
    return run_unit_cell(model, label, work, store_path, executor="ray", progress=False, **options)


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


def run_grid_ray(specs, units, store_path, *, address=None, num_cpus_per_cell: float = 1, **options) -> list[dict]:
    """Run the grid's cells as Ray tasks; returns the cell descriptions in grid order
    (models outer, units inner), like the local executor.

    Connects to ``address`` (e.g. ``"auto"`` or ``"ray://host:10001"``) or, when Ray is not
    initialised yet, starts a local cluster for this call and shuts it down afterwards (call
    ``ray.init(...)`` yourself first to keep one running between grids).
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        # workers import workbench from the same place as this process, installed or not
        path = os.pathsep.join(p for p in (_package_root(), os.environ.get("PYTHONPATH")) if p)
        ray.init(address=address, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
        started = True
    try:
        remote = ray.remote(num_cpus=num_cpus_per_cell)(_cell)
        refs = []
        for label, spec in specs:
            spec_ref = spec if isinstance(spec, str) else ray.put(spec)  # a loaded Model ships once
            for work in units:
                refs.append(remote.remote(label, spec_ref, work, str(store_path), options))
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()

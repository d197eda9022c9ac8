"""The audit's units of work, as the runner runs them: every probe and task of an audit file is a
cell of the runner (:func:`workbench.bench.cells.run_unit_cell`) in the audit's store, so an
interrupted audit resumes item by item and a finished one is read back, never scored again.

Also here: which metric of a unit its findings compare (the audit file's ``metric``, else the
unit's primary one), how that metric's difference reads in points, and a unit's items in the
order of its data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.audit.spec import AuditSpec, UnitChoice
from workbench.bench.cells import WorkUnit, probe_unit, run_unit_cell, task_work_unit
from workbench.errors import DataError, InvalidInputError
from workbench.units.result import result_comparable
from workbench.units.run import prepare_unit

MAX_CATEGORIES = 30   # a finding lists its categories up to this many (BLiMP's 67 paradigms: overall only)


@dataclass(frozen=True)
class AuditUnit:
    """A probe or task of the audit: what the file says (``choice``) and the runner's unit."""

    choice: UnitChoice
    work: WorkUnit

    @property
    def name(self) -> str:
        return self.work.name

    @property
    def title(self) -> str:
        return self.choice.label

    @property
    def is_task(self) -> bool:
        return self.work.spec.unit == "task"

    def metrics(self) -> list:
        return self.work.spec.metrics({**self.work.spec.defaults, **self.work.options})

    def metric(self):
        """The metric the findings compare: the file's ``metric``, else the unit's primary one."""
        name = self.choice.metric or self.work.spec.primary_metric
        metrics = self.metrics()
        return next((m for m in metrics if m.name == name), metrics[0])

    def decision_metric(self):
        """The binary metric whose per-item outcome is the unit's decision on an item (the
        deployment section's flips): the compared metric if binary, else the first binary one."""
        first = self.metric()
        if first.kind == "binary":
            return first
        return next((m for m in self.metrics() if m.kind == "binary" and not m.where), None)


def points(metric) -> float:
    """Display scale: how many points one unit of the metric's per-item outcome is worth. A
    0-1 binary metric is shown in percentage points (x100); a metric with its own scale keeps it."""
    return 100.0 if metric.kind == "binary" and metric.scale == 1 else 1.0


def unit_of(spec: AuditSpec, choice: UnitChoice, format: str | None = None) -> AuditUnit:
    """The runner's unit for a probe or task of the audit (``format``: a chat reading)."""
    if choice.kind == "task":
        return AuditUnit(choice, task_work_unit(choice.name))
    data = spec.unit_data(choice)
    if data is not None and not data.exists():
        raise DataError(f"the data of probe {choice.name!r} is not at {data}: set `data:` in the audit file (or "
                        f"--data DIR) to the folder that holds {data.name}/, or give the probe its own data path")
    options = dict(choice.options)
    if format is not None:
        options["format"] = format
    work = probe_unit({"name": choice.name, "data": None if data is None else str(data), **options})
    if format is not None:
        work = WorkUnit(work.spec, f"{work.name}[{format}]", work.data, work.options)
    return AuditUnit(choice, work)


def cell_limit(unit: AuditUnit, n_items: int | None) -> int | None:
    """The runner's ``limit`` for ``n_items`` items: items for a probe, items per group for a
    task with groups (BLiMP: pairs per paradigm)."""
    if n_items is None or not unit.is_task:
        return n_items
    groups = max(1, len(unit.work.spec.task.group_names) if unit.work.spec.task.group else 1)
    return max(1, math.ceil(n_items / groups))


def available(unit: AuditUnit, model) -> int:
    """How many items the unit's data has (after the loader's checks)."""
    if unit.is_task:
        return len(unit.work.spec.task.all_items)
    return len(prepare_unit(unit.work.spec, model, data=unit.work.data, limit=None, **unit.work.options).items)


def run_cell(model, label: str, unit: AuditUnit, store, *, limit, seed: int, tag: str = "", progress=False,
             cache: bool = True) -> dict:
    """One (model, unit) cell through the runner: scored into ``store`` (resumed where it
    stopped), then rebuilt from it."""
    return run_unit_cell(model, label, unit.work, store, limit=limit, seed=seed, tag=tag, progress=progress,
                         score_kwargs=None if cache else {"cache": False})


def comparable(cell: dict):
    """What :func:`workbench.compare` pairs for a cell's result."""
    result = cell["result"]
    if result is None:
        raise InvalidInputError(f"the cell {cell['task']} on {cell['model']} has no result")
    return result_comparable(result, cell["task"])

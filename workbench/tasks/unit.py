"""A benchmark task as a unit of work: the same :class:`~workbench.units.UnitSpec` a bias probe
is, so the runner has one cell type and ``wb.run_probe`` runs a task too.

:func:`task_unit` reads a task (a YAML file or dict: :mod:`workbench.tasks.spec`) as a spec: its
rendered items, :func:`workbench.tasks.kinds.score_items` as the scorer and the kind's metrics.
What a task keeps of its own: ``limit`` is the first ``limit`` items of each group (BLiMP
paradigm) in data order, not a random sample; its run key is the task's content hash (so a store
written before tasks were units resumes); its table rows are computed at the level asked for
(:class:`TaskResult`).

>>> import workbench as wb
>>> from workbench.tasks.unit import task_as_probe
>>> from workbench.testing import tiny_model
>>> spec = wb.register_probe(task_as_probe("capitals"), replace=True)
>>> res = wb.run_probe("task:capitals", tiny_model("gpt2"), limit=4, n_boot=200)
>>> sorted(res.summary().metric.unique())
['acc', 'acc_norm', 'n_skipped']
>>> wb.probes.api.unregister_probe("task:capitals")
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pandas as pd

from workbench._version import __version__
from workbench.scoring.chat import reading_identity
from workbench.stats import Comparable, summarise
from workbench.tasks.kinds import score_items, task_kind
from workbench.tasks.spec import load_task
from workbench.units.result import UnitResult
from workbench.units.spec import UnitSpec


@dataclasses.dataclass
class TaskResult(UnitResult):
    """A task's result: the unit result, with the runner's table computed at any level (a task's
    metrics are the kind's; groups are the task's ``group`` field, e.g. BLiMP's paradigms)."""

    def table_rows(self, groups: bool = False, level: float = 0.95) -> pd.DataFrame:
        by = "group" if groups and self.spec.categories else None
        return summarise(self.frame, self.metrics, by=by, n_boot=self.n_boot, level=level, seed=self.seed)

    def comparable(self) -> Comparable:
        task = self.spec.task
        prov = self.provenance
        ident, label = reading_identity(prov["model"]["state_id"], prov.get("label") or prov["model"]["name"],
                                        task.format, task.system_prompt)
        return Comparable(self.frame, self.metrics, ["id"], "group" if task.group else None, ident, label, task.name)


def task_run_key(model, task, seed: int, tag: str) -> str:
    """The identity of a task cell: same model state, same task content, same seed/tag, same
    workbench version => same key (the limit is not in it: a larger limit adds items to the cell)."""
    ident = [model.state_id, task.name, task.hash, int(seed), tag, __version__]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]


def _first_per_group(items: pd.DataFrame, limit, seed) -> pd.DataFrame:
    """The first ``limit`` items of each group, in data order (seed unused: no sampling)."""
    if limit is None or items.empty:
        return items
    group = items["group"].fillna("") if "group" in items else pd.Series("", index=items.index)
    return items[group.groupby(group).cumcount() < limit]


@dataclasses.dataclass(frozen=True)
class TaskSpec(UnitSpec):
    """A unit spec that knows its task (``spec.task``)."""

    task: object = None


def task_unit(task, name: str | None = None) -> TaskSpec:
    """``task`` (a name, path, dict or :class:`~workbench.tasks.spec.Task`) as a unit spec named
    ``name`` (default ``task.name``); ``wb.register_probe`` makes it runnable by name."""
    task = load_task(task)
    kind = task_kind(task.kind)

    def load(source, ctx):
        for s in task.skipped:
            ctx.skips.add(s.get("index", s.get("row")), s.get("reason", "skipped by the task loader"))
        return pd.DataFrame(task.select(None)), []

    def score(model, items, ctx):
        records = score_items(model, task, items.to_dict("records"), seed=ctx.seed, cache=ctx.cache,
                              **{"progress": False, **ctx.scoring})
        return pd.DataFrame(records)

    def identity(model, work, limit, seed, tag):
        return task_run_key(model, task, seed, tag), task.hash

    return TaskSpec(name=name or task.name, description=f"benchmark task {task.name!r} ({task.kind})",
                    load=load, score=score, metrics=lambda options: task_kind(task.kind).metrics(),
                    categories=("group",) if task.group else (), item_key=("id",), kinds=("causal",),
                    licence=getattr(task, "licence", None) or "see the task's data", default_data="(task items)",
                    paper=f"workbench benchmark task {task.name}", formats=(task.format,),
                    default_format=task.format, itemwise=True, unit="task", higher_is_better=kind.primary[1],
                    primary_metric=kind.primary[0], select=_first_per_group, identity=identity, result=TaskResult,
                    task=task)


def task_as_probe(task, name: str | None = None) -> TaskSpec:
    """A task as a unit spec named ``"task:<name>"`` (its name among the probes: register it with
    ``wb.register_probe`` to run it as ``wb.run_probe("task:<name>", ...)``)."""
    task = load_task(task)
    return task_unit(task, name=name or f"task:{task.name}")

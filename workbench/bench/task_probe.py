"""One contract for every unit of work: a benchmark task as a probe spec.

A bias probe is a :class:`~workbench.probes.base.ProbeSpec`: ``load(source, ctx)`` (items),
``score(model, items, ctx)`` (item by item, through the scoring engine) and ``metrics``. A
benchmark task is declarative (a YAML file or dict: :mod:`workbench.bench.tasks`), and
:func:`task_as_probe` reads it as exactly such a spec: its rendered items,
:func:`workbench.bench.scorers.score_items` as the scorer and
:func:`~workbench.bench.scorers.task_metrics` as the metrics. So a task runs through
``wb.run_probe`` (summary with the probes' intervals, ``wb.compare``, ``wb.multiverse`` where it
applies) and gives the numbers the benchmark runner gives for it.

>>> import workbench as wb
>>> from workbench.bench.task_probe import task_as_probe
>>> from workbench.testing import tiny_model
>>> spec = wb.register_probe(task_as_probe("capitals"), replace=True)
>>> res = wb.run_probe("task:capitals", tiny_model("gpt2"), limit=4, n_boot=200)
>>> sorted(res.summary().metric.unique())
['acc', 'acc_norm', 'n_skipped']
"""
from __future__ import annotations

import pandas as pd

from workbench.probes.base import ProbeSpec


def task_as_probe(task, name: str | None = None) -> ProbeSpec:
    """``task`` (a name, path, dict or :class:`~workbench.bench.tasks.Task`) as a probe spec
    named ``"task:<name>"``; register it with ``wb.register_probe`` to run it by name."""
    from workbench.bench.scorers import score_items, task_metrics
    from workbench.bench.tasks import load_task

    task = load_task(task)

    def load(source, ctx):
        for s in task.skipped:
            ctx.skips.add(s.get("index", s.get("id")), s.get("reason", "skipped by the task loader"))
        return pd.DataFrame(task.select(None)), []

    def score(model, items, ctx):
        records = score_items(model, task, items.to_dict("records"), seed=ctx.seed, cache=ctx.cache, progress=False)
        return pd.DataFrame(records)

    return ProbeSpec(name=name or f"task:{task.name}", description=f"benchmark task {task.name!r} ({task.kind})",
                     load=load, score=score, metrics=lambda options: task_metrics(task.kind),
                     categories=("group",) if task.group else (), item_key=("id",), kinds=("causal",),
                     licence=getattr(task, "licence", None) or "see the task's data", default_data="(task items)",
                     paper=f"workbench benchmark task {task.name} (hash {task.hash})")

"""Benchmark tasks: declarative specs (YAML or dicts) over one table of task kinds, run as units
of work like the bias probes.

- :func:`load_task` / :func:`list_tasks` (``workbench.tasks.spec``): task specs; built in: BLiMP,
  capitals, arithmetic, prose;
- :class:`TaskKind`, :func:`register_task_kind` (``workbench.tasks.kinds``): what each kind
  renders, scores and reports (multiple choice, minimal pairs, perplexity, generation);
- :func:`task_unit` (``workbench.tasks.unit``): a task as a :class:`~workbench.units.UnitSpec`.

>>> import workbench as wb
>>> sorted(wb.tasks.list_tasks().name)
['arithmetic', 'blimp', 'capitals', 'prose']
"""
from workbench.tasks.kinds import KINDS, TaskKind, register_task_kind, task_metrics, unregister_task_kind
from workbench.tasks.spec import Task, UnknownTaskError, list_tasks, load_task
from workbench.tasks.unit import TaskResult, task_as_probe, task_unit

__all__ = ["KINDS", "Task", "TaskKind", "TaskResult", "UnknownTaskError", "list_tasks", "load_task",
           "register_task_kind", "task_as_probe", "task_metrics", "task_unit", "unregister_task_kind"]

"""The runner: grids of models x units of work, and model-vs-model comparison.

- :func:`~workbench.bench.runner.run`: models x units (benchmark tasks, bias probes,
  training-data checks; one cell type, :mod:`workbench.bench.cells`), resumable, into a SQLite
  store (:func:`~workbench.bench.store.open_store`); ``executor="ray"`` scales out.
- :func:`~workbench.tasks.spec.load_task` / :func:`~workbench.tasks.spec.list_tasks`: the task
  specs (:mod:`workbench.tasks`), here too for code that found them here.
- :class:`~workbench.bench.results.BenchResults`: ``table()``, ``items()``, ``compare()``,
  ``leaderboard()``, ``plot()``, ``diff()``.

>>> import workbench as wb
>>> sorted(wb.bench.list_tasks().name)
['arithmetic', 'blimp', 'capitals', 'prose']
"""
from workbench.bench.results import BenchResults
from workbench.bench.runner import run
from workbench.bench.store import Store, open_store
from workbench.tasks.spec import Task, list_tasks, load_task

__all__ = ["BenchResults", "Store", "Task", "list_tasks", "load_task", "open_store", "run"]

"""Benchmark runner and model-vs-model comparison.

- :func:`~workbench.bench.tasks.load_task` / :func:`~workbench.bench.tasks.list_tasks`: task specs
  (multiple choice, minimal pairs, perplexity, generation); built in: BLiMP, capitals,
  arithmetic, prose.
- :func:`~workbench.bench.runner.run`: models x tasks (x bias probes), resumable, into a SQLite
  store (:func:`~workbench.bench.store.open_store`); ``executor="ray"`` scales out.
- :class:`~workbench.bench.results.BenchResults`: ``table()``, ``items()``, ``compare()``,
  ``leaderboard()``, ``plot()``, ``diff()``.

>>> import workbench as wb
>>> sorted(wb.bench.list_tasks().name)
['arithmetic', 'blimp', 'capitals', 'prose']
"""
from workbench.bench.results import BenchResults
from workbench.bench.runner import run
from workbench.bench.store import Store, open_store
from workbench.bench.tasks import Task, list_tasks, load_task

__all__ = ["BenchResults", "Store", "Task", "list_tasks", "load_task", "open_store", "run"]

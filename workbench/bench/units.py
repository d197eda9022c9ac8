"""One view of every unit of work a grid holds: a benchmark task, a bias probe or a
training-data check is, to the results, a cell that can give its **items** (one row per item,
what its metrics read), its **rows** of the grid table (metric, category, value, CI, n), a
**comparable** (for paired tests between models, when it has one) and, if it has a
better/worse direction, its **primary** metric (leaderboard and bar plots).

:class:`workbench.bench.results.BenchResults` asks these four questions of every cell and never
of a cell's kind, so a new kind of unit is one view class here (registered in ``VIEWS``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.scoring.chat import reading_identity
from workbench.stats import Comparable, summarise


class TaskView:
    """A benchmark task's cell: items from the store, metrics from :mod:`workbench.bench.scorers`."""

    def __init__(self, cell: dict, results):
        self.cell, self.results = cell, results

    def items(self) -> pd.DataFrame:
        c, cache = self.cell, self.results._items
        key = (c["model"], c["task"])
        if key not in cache:
            cache[key] = self.results.store.items(c["run_key"], c["item_ids"])
        return cache[key].copy()

    def rows(self, groups: bool, level: float) -> pd.DataFrame:
        from workbench.bench.scorers import task_metrics
        items = self.items()
        if items.empty:
            return pd.DataFrame()
        by = "group" if groups and self.cell.get("group") else None
        return summarise(items, task_metrics(self.cell["kind"]), by=by, n_boot=self.results.n_boot, level=level,
                         seed=self.results.seed)

    def comparable(self) -> Comparable:
        from workbench.bench.scorers import task_metrics
        c = self.cell
        # a chat-formatted run is a different reading of the same model (see reading_identity)
        ident, label = reading_identity(c["fingerprint"], c["model"], c.get("format", "raw"), c.get("system_prompt"))
        return Comparable(self.items(), task_metrics(c["kind"]), ["id"], "group" if c.get("group") else None,
                          ident, label, c["task"])

    @property
    def primary(self):
        from workbench.bench.scorers import PRIMARY
        return PRIMARY[self.cell["kind"]]

    @property
    def result(self):
        raise InvalidInputError(f"{self.cell['task']!r} is a benchmark task: its results are items() and table(); "
                                "result() gives the result of a probe or training-data check")


class ProbeView:
    """A bias probe's cell: its :class:`~workbench.probes.base.ProbeResult` rebuilt from the store.
    Its rows are the probe's own ``summary()`` (level 0.95); no direction (no leaderboard)."""

    primary = None

    def __init__(self, cell: dict, results):
        self.cell, self.result = cell, cell["probe"]

    def items(self) -> pd.DataFrame:
        return self.result.items.copy()

    def rows(self, groups: bool, level: float) -> pd.DataFrame:
        s = self.result.summary()
        return s if groups else s[s.category == "all"]

    def comparable(self) -> Comparable:
        return self.result.comparable()


class TrainingView:
    """A training-data check's cell (membership, dataset inference, contamination): computed whole,
    its rows are the result's summary; no per-item paired test between models, no direction."""

    primary = None

    def __init__(self, cell: dict, results):
        self.cell, self.result = cell, cell["result"]

    def items(self) -> pd.DataFrame:
        if self.cell["kind"] == "contamination":  # the per-item frames of its tests, one block per test
            frames = [df.assign(test=t) for t, df in self.result.items.items()]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["test"])
        return self.result.items.copy()

    def rows(self, groups: bool, level: float) -> pd.DataFrame:
        from workbench.bench.training_cells import table_rows
        return table_rows(self.result, self.cell["kind"]).assign(category="all")

    def comparable(self):
        raise InvalidInputError(f"{self.cell['task']!r} is a training-data check: it has no paired per-item test "
                                "between models; compare their rows in table() or side_by_side()")


def _training_kinds():
    from workbench.bench.training_cells import KINDS
    return KINDS


def view(cell: dict, results):
    """The view of ``cell`` (see the module docstring)."""
    if cell["kind"] == "probe":
        return ProbeView(cell, results)
    if cell["kind"] in _training_kinds():
        return TrainingView(cell, results)
    return TaskView(cell, results)


def attach(store, cell: dict) -> bool:
    """Rebuild a stored cell's result object where its kind has one (probes, training-data
    checks); False when there is nothing to show (a check killed before it finished)."""
    if cell["kind"] == "probe":
        from workbench.bench.probe_cells import load_probe_result
        cell["probe"] = load_probe_result(store, cell["run_key"])
    elif cell["kind"] in _training_kinds():
        from workbench.bench.training_cells import load_training_result, training_finished
        if not training_finished(store, cell["run_key"]):
            return False
        cell["result"] = load_training_result(store, cell["run_key"])
    return True


def table_frame(cell: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """A view's rows named for the grid table: ``task`` is the cell's task for the overall rows
    and ``"<task>/<category>"`` for the others."""
    if rows.empty:
        return rows
    category = rows["category"] if "category" in rows else pd.Series("all", index=rows.index)
    return rows.assign(model=cell["model"], task=np.where(category == "all", cell["task"],
                                                          cell["task"] + "/" + category.astype(str)))

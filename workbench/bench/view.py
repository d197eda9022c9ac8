"""One view of every cell a grid holds: a benchmark task, a bias probe or a training-data check is,
to the results, a cell with a rebuilt result that gives its **items** (one row per item, what its
metrics read), its **rows** of the grid table (metric, category, value, CI, n), a **comparable**
(for paired tests between models, when it has one) and, if its unit has a better/worse direction,
its **primary** metric (leaderboard and bar plots).

:class:`workbench.bench.results.BenchResults` asks these four questions of every cell and never
of a cell's kind; the answers come from the result (:mod:`workbench.units.result`) and its spec.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.stats import Comparable
from workbench.units.result import result_comparable, result_items, result_rows


class CellView:
    """The view of one cell (its description dict, with its rebuilt ``result``)."""

    def __init__(self, cell: dict):
        self.cell, self.result = cell, cell["result"]

    def items(self) -> pd.DataFrame:
        return result_items(self.result)

    def rows(self, groups: bool, level: float) -> pd.DataFrame:
        return result_rows(self.result, groups, level)

    def comparable(self) -> Comparable:
        return result_comparable(self.result, self.cell["task"])

    @property
    def primary(self) -> tuple[str, bool] | None:
        """(metric, higher is better) for units with a direction (tasks), else None."""
        spec = getattr(self.result, "spec", None)
        if spec is None or spec.higher_is_better is None:
            return None
        return spec.primary_metric or spec.metrics({})[0].name, spec.higher_is_better


def view(cell: dict) -> CellView:
    return CellView(cell)


def table_frame(cell: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """A view's rows named for the grid table: ``task`` is the cell's task for the overall rows
    and ``"<task>/<category>"`` for the others."""
    if rows.empty:
        return rows
    category = rows["category"] if "category" in rows else pd.Series("all", index=rows.index)
    return rows.assign(model=cell["model"], task=np.where(category == "all", cell["task"],
                                                          cell["task"] + "/" + category.astype(str)))

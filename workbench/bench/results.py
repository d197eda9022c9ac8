"""What ``wb.run`` returns: tables with confidence intervals, per-item scores, paired
model-vs-model tests, a leaderboard, plots, and item-by-item diffs of two runs.

All numbers are recomputed from the items in the store (never cached aggregates), with the
statistics of :mod:`workbench.stats` (seeded bootstrap CIs; McNemar's exact test / paired
bootstrap for comparisons; Benjamini-Hochberg across groups such as BLiMP paradigms).
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from workbench.bench.cells import finished, rebuild
from workbench.bench.view import table_frame, view
from workbench.errors import InvalidInputError
from workbench.results import Result
from workbench.stats import Comparable, compare

TABLE_COLUMNS = ["model", "task", "metric", "value", "ci_low", "ci_high", "n"]


class BenchResults(Result):
    """Results of a grid. ``table()`` is the tidy summary (also ``to_frame()``); ``items(model,
    task)`` the per-item scores; ``compare``/``leaderboard``/``plot``/``diff`` build on them.
    Bias probes run in the grid appear as tasks ``"probe:<name>"`` (table, items, compare);
    training-data checks as ``"membership[:<name>]"``, ``"contamination[:<name>]"``,
    ``"dataset_inference[:<name>]"`` (table, items, and ``result()`` for the result object).

    ``cells`` holds one dict per (model, task): ``run_key`` into the store and the ``item_ids``
    this grid selected (a store may hold more items of the same run from a larger ``limit``).
    """

    def __init__(self, store, cells: list[dict], wall_s: float | None = None, seed: int = 0, n_boot: int = 2000):
        self.store, self.cells, self.seed, self.n_boot = store, cells, seed, n_boot
        super().__init__(frame=self.table(), provenance={
            "store": str(store.path), "wall_s": wall_s, "seed": seed,
            "runs": [{k: c.get(k) for k in ("model", "task", "run_key", "fingerprint", "task_hash")} for c in cells]})

    @classmethod
    def from_store(cls, store, models=None, tasks=None) -> "BenchResults":
        """The latest run of every (model, task) in ``store`` (optionally only these), all items."""
        runs = store.runs()
        if models is not None:
            runs = runs[runs.model_name.isin(list(models))]
        if tasks is not None:
            runs = runs[runs.task_name.isin(list(tasks))]
        cells = []
        for (model, task), g in runs.groupby(["model_name", "task_name"], sort=False):
            r = g.sort_values("updated_at").iloc[-1]
            result = rebuild(store, r.run_key, label=model)
            if getattr(result, "spec", None) is None and not finished(store, r.run_key):
                continue  # a check killed before it finished has nothing to show
            categories = getattr(getattr(result, "spec", None), "categories", ())
            cells.append({"model": model, "task": task, "run_key": r.run_key, "kind": r.task_kind,
                          "group": categories[0] if categories else None, "fingerprint": r.model_fingerprint,
                          "item_ids": None, "task_hash": r.task_hash, "result": result})
        return cls(store, cells)

    # ---- lookup -------------------------------------------------------------------------------
    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(c["model"] for c in self.cells))

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c["task"] for c in self.cells))

    def _cell(self, model, task) -> dict:
        for c in self.cells:
            if c["model"] == model and c["task"] == task:
                return c
        raise InvalidInputError(f"no results for model {model!r} on task {task!r}; models: {self.models}, "
                                f"tasks: {self.tasks}")

    def items(self, model: str, task: str) -> pd.DataFrame:
        """One row per item with the scores its metric used (BLiMP: ``UID``, ``logprob_good``,
        ``logprob_bad``, ``correct``; multiple choice: ``logprobs``, ``pred``, ``correct``, ...)."""
        c = self._cell(model, task)
        out = view(c).items()
        out.attrs.update(run_key=c["run_key"], task_hash=c.get("task_hash"), fingerprint=c["fingerprint"])
        return out

    def result(self, model: str, task: str):
        """The result object of a cell (a task's ``TaskResult``, a probe's ``ProbeResult``, a check's
        ``MembershipResult``, ``DatasetInferenceResult`` or ``ContaminationResult``), as rebuilt
        from the store."""
        return view(self._cell(model, task)).result

    def runs(self) -> pd.DataFrame:
        """The store's run rows for this grid (run keys, status, attempts, wall time)."""
        keys = [c["run_key"] for c in self.cells]
        return self.store.runs().set_index("run_key").loc[keys].reset_index()

    # ---- summaries ----------------------------------------------------------------------------
    def table(self, groups: bool = False, level: float = 0.95) -> pd.DataFrame:
        """model, task, metric, value, ci_low, ci_high, n: every metric of every cell with a
        seeded bootstrap CI. ``groups=True`` adds one row per group (BLiMP paradigm) with task
        ``"<task>/<group>"``. Probe rows are the probe's own ``summary()`` (its level: 0.95)."""
        if not groups and level == 0.95 and getattr(self, "frame", None) is not None:
            return self.frame.copy()  # (attrs too) computed once at construction (seeded: the same numbers)
        frames = [table_frame(c, view(c).rows(groups, level)) for c in self.cells]
        frames = [f for f in frames if not f.empty]
        out = pd.concat(frames, ignore_index=True)[TABLE_COLUMNS] if frames else pd.DataFrame(columns=TABLE_COLUMNS)
        # provenance travels with the table: which task content and model state each row is from
        out.attrs.update(task_hashes={c["task"]: c.get("task_hash") for c in self.cells},
                         fingerprints={c["model"]: c["fingerprint"] for c in self.cells})
        return out

    def summary(self) -> pd.DataFrame:
        return self.frame.copy()

    def side_by_side(self, groups: bool = False) -> pd.DataFrame:
        """One row per (task, metric), one column per model: ``"value [ci_low, ci_high]"``."""
        t = self.table(groups=groups)
        cell = t.apply(lambda r: f"{r.value:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]", axis=1)
        wide = t.assign(cell=cell).pivot(index=["task", "metric"], columns="model", values="cell")
        order = pd.MultiIndex.from_tuples(list(dict.fromkeys(zip(t.task, t.metric))), names=["task", "metric"])
        return wide.reindex(index=order, columns=self.models).rename_axis(columns=None)

    def leaderboard(self) -> pd.DataFrame:
        """One row per model: each task's primary metric (acc, exact_match, bits_per_byte) and the
        model's mean rank across tasks (1 = best), sorted by mean rank."""
        t = self.frame
        cols, ranks = {}, {}
        for c in self._task_cells():
            metric, higher = view(c).primary
            sel = t[(t.task == c["task"]) & (t.metric == metric)].set_index("model")["value"]
            cols[f"{c['task']}:{metric}"] = sel
            ranks[c["task"]] = sel.rank(ascending=not higher, method="min")
        board = pd.DataFrame(cols)
        board["mean_rank"] = pd.DataFrame(ranks).mean(axis=1)
        return board.sort_values("mean_rank").rename_axis("model").reset_index()

    # ---- comparison ---------------------------------------------------------------------------
    def _task_cells(self) -> list[dict]:
        """Cells with a better/worse direction (benchmark tasks; probes and training-data checks
        have none: no leaderboard or bar)."""
        return [c for c in self.cells if view(c).primary is not None]

    def comparable(self, model: str, task: str) -> Comparable:
        return view(self._cell(model, task)).comparable()

    def compare(self, model_a: str, model_b: str, task: str, metrics=None, level: float = 0.95) -> pd.DataFrame:
        """Paired test of two models on the same items of ``task``: ``diff = a - b`` with a paired
        bootstrap CI; McNemar's exact test for accuracies; per group (BLiMP paradigm) with
        Benjamini-Hochberg adjusted p-values. Both must have run on the same items.

        Raw vs chat of one model: task names are unique in a grid, so run the two formats in two
        grids and pair their cells, ``wb.compare(raw.comparable(m, t), chat.comparable(m, t))``;
        the chat cell is identified by the model state and its format (no ``allow_same_model``)."""
        return compare(self.comparable(model_a, task), self.comparable(model_b, task), metrics=metrics,
                       n_boot=self.n_boot, level=level, seed=self.seed)

    def diff(self, run_a: str, run_b: str) -> pd.DataFrame:
        """Item by item difference of two stored runs of the same model and task (e.g. before and
        after a library upgrade). ``run_a``/``run_b`` are run keys (or unique prefixes) from
        :meth:`runs` / ``store.runs()``. Columns: ``id``, each score as ``<score>_a``/``<score>_b``,
        ``changed`` (any score differs). ``attrs`` has counts and the two runs' versions."""
        ra, rb = self.store.run_info(run_a), self.store.run_info(run_b)
        if (ra["model_name"], ra["task_name"]) != (rb["model_name"], rb["task_name"]):
            raise InvalidInputError(f"diff compares two runs of the same model and task; got "
                                    f"{ra['model_name']}/{ra['task_name']} and {rb['model_name']}/{rb['task_name']}")
        a, b = self.store.items(ra["run_key"]), self.store.items(rb["run_key"])
        meta = {"id", "index", "group"} | set(json.loads(ra["task_spec_json"] or "{}").get("keep", []))
        scores = [c for c in a.columns if c not in meta and c in b.columns]
        merged = a[[c for c in a.columns if c in meta] + scores].merge(
            b[["id"] + scores], on="id", how="inner", suffixes=("_a", "_b"))
        changed = np.zeros(len(merged), bool)
        for s in scores:
            changed |= (merged[f"{s}_a"].astype(str) != merged[f"{s}_b"].astype(str)).to_numpy()
            if pd.api.types.is_numeric_dtype(merged[f"{s}_a"]) and pd.api.types.is_numeric_dtype(merged[f"{s}_b"]):
                merged[f"{s}_delta"] = merged[f"{s}_b"] - merged[f"{s}_a"]
        merged["changed"] = changed
        merged.attrs.update(run_a=ra["run_key"], run_b=rb["run_key"], n_common=len(merged),
                            n_changed=int(changed.sum()), n_only_a=len(set(a.id) - set(b.id)),
                            n_only_b=len(set(b.id) - set(a.id)), versions_a=json.loads(ra["versions_json"]),
                            versions_b=json.loads(rb["versions_json"]))
        return merged

    # ---- plots --------------------------------------------------------------------------------
    def plot(self, kind: str = "bars", metric: str | None = None, ax=None):
        """``kind="bars"``: grouped bars (task x model) with CI error bars; ``"forest"``: one
        point and interval per model and task. Default metric: each task's primary metric.
        Returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        if kind not in ("bars", "forest"):
            raise InvalidInputError(f"kind must be 'bars' or 'forest', got {kind!r}")
        t = self.frame
        if metric is None:
            keep = {(c["task"], view(c).primary[0]) for c in self._task_cells()}
            t = t[[(a, b) in keep for a, b in zip(t.task, t.metric)]]
        else:
            t = t[t.metric == metric]
        if t.empty:
            raise InvalidInputError(f"nothing to plot for metric {metric!r}; metrics: {sorted(self.frame.metric.unique())}")
        metrics = list(dict.fromkeys(t.metric))
        if ax is None:
            fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
            axes = axes[0]
        else:
            fig, axes = ax.figure, [ax] * len(metrics)
        for a, m in zip(axes, metrics):
            (_bars if kind == "bars" else _forest)(a, t[t.metric == m], self.models)
            a.set_title(m)
        fig.tight_layout()
        return fig

    def __repr__(self):
        return f"BenchResults({len(self.models)} models x {len(self.tasks)} tasks, store={str(self.store.path)!r})"


def _bars(ax, t: pd.DataFrame, models: list[str]):
    tasks = list(dict.fromkeys(t.task))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        sub = t[t.model == m].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (i - (len(models) - 1) / 2) * width
        err = [sub.value - sub.ci_low, sub.ci_high - sub.value]
        ax.bar(x, sub.value, width, yerr=err, capsize=3, label=m)
    ax.set_xticks(np.arange(len(tasks)), tasks, rotation=30, ha="right")
    ax.legend(fontsize="small")


def _forest(ax, t: pd.DataFrame, models: list[str]):
    t = t.assign(label=t.task + " | " + t.model).reset_index(drop=True)
    y = np.arange(len(t))[::-1]
    for m in models:
        sel = (t.model == m).to_numpy()
        ax.errorbar(t.value[sel], y[sel], xerr=[(t.value - t.ci_low)[sel], (t.ci_high - t.value)[sel]],
                    fmt="o", capsize=3, label=m)
    ax.set_yticks(y, t.label)
    ax.legend(fontsize="small")

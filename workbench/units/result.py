"""What a run of a unit returns, when the unit has no result type of its own (probes and tasks):
:class:`UnitResult`, per-item rows, a summary with intervals, plots and provenance, and the three
questions the benchmark runner asks of every result (:meth:`UnitResult.item_frame`,
:meth:`UnitResult.table_rows`, :meth:`UnitResult.comparable`).

A unit with its own result type (a training-data check's ``MembershipResult``, ...) answers the
same three questions; that is the whole contract between a unit and the runner's one view.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.results import Result
from workbench.scoring.chat import reading_identity
from workbench.stats import MIN_N
from workbench.stats.bootstrap import summarise
from workbench.stats.compare import Comparable
from workbench.units.spec import SkipLog, UnitSpec

@dataclass
class UnitResult(Result):
    """Result of :func:`workbench.run_probe` (a probe's, or a task's run as a unit): ``items`` (one
    row per item with the scores used), ``summary()`` (metric, category, value, ci_low, ci_high,
    n), ``plot()``, ``provenance``. ``workbench.probes.ProbeResult`` is this class."""

    spec: UnitSpec | None = None
    options: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: SkipLog().frame())
    n_boot: int = 2000
    seed: int = 0
    _summary: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def items(self) -> pd.DataFrame:
        return self.frame

    @property
    def metrics(self) -> list:
        return self.spec.metrics(self.options)

    def summary(self) -> pd.DataFrame:
        """Every metric overall ("all") and per category with a CI (exact Clopper-Pearson for
        proportions; a seeded BCa bootstrap of ``n_boot`` resamples for other metrics from
        ``MIN_N_BOOTSTRAP`` items, else NaN), then one ``n_skipped`` row. ``attrs`` hold the
        rules, the rows under ``MIN_N`` and why an interval is missing (see
        :func:`workbench.stats.summarise`)."""
        if self._summary is None:
            out = self.spec.summary(self) if self.spec.summary else self._generic_summary()
            skipped = pd.DataFrame([{"metric": "n_skipped", "category": "all", "value": float(len(self.skipped)),
                                     "ci_low": np.nan, "ci_high": np.nan, "n": len(self.skipped) + len(self.frame)}])
            attrs = dict(out.attrs)  # the interval rules, small-n rows and notes (concat drops them)
            self._summary = pd.concat([out, skipped], ignore_index=True)
            self._summary.attrs = attrs
        return self._summary.copy()

    def _generic_summary(self) -> pd.DataFrame:
        parts = []
        for i, col in enumerate(list(self.spec.categories) or [None]):
            part = summarise(self.frame, self.metrics, by=col, n_boot=self.n_boot, seed=self.seed)
            parts.append(part if i == 0 else part[part.category != "all"])  # "all" once
        out = pd.concat(parts, ignore_index=True)
        out.attrs = dict(parts[0].attrs)
        for part in parts[1:]:  # merge the per-row lists, "all" rows once
            out.attrs["small_n"] += [r for r in part.attrs["small_n"] if r[1] != "all"]
            out.attrs["notes"] += [r for r in part.attrs["notes"] if r["category"] != "all"]
        return out

    def item_frame(self) -> pd.DataFrame:
        """One row per item (what the runner's ``items(model, task)`` shows)."""
        return self.frame.copy()

    def table_rows(self, groups: bool = False, level: float = 0.95) -> pd.DataFrame:
        """The rows of the runner's table: the summary (its own level, 0.95), overall only unless
        ``groups``."""
        s = self.summary()
        return s if groups else s[s.category == "all"]

    def comparable(self) -> Comparable:
        """What :func:`workbench.compare` pairs, named as the grid named the model (``provenance["label"]``)
        or by the model's name. A chat-formatted run is identified by the model state
        *and* its format (and system prompt), so raw vs chat of one model compare as two readings
        (no ``allow_same_model`` needed); two runs of one model in one format are still refused."""
        prov = self.provenance
        cat = self.spec.categories[0] if self.spec.categories else None
        ident, label = reading_identity(prov["model"]["state_id"], prov.get("label") or prov["model"]["name"],
                                        self.options.get("format", "raw"), self.options.get("system_prompt"))
        return Comparable(self.frame, self.metrics, list(self.spec.item_key), cat, ident, label, self.spec.name)

    def plot(self, ax=None, metric: str | None = None, **kwargs):
        """The probe's own plot if it has one, else every category's value with its CI."""
        if self.spec.plot is not None and metric is None:
            return self.spec.plot(self, ax=ax, **kwargs)
        metric = metric or self.spec.primary_metric or self.metrics[0].name
        ideal = next((m.ideal for m in self.metrics if m.name == metric), None)
        return plot_summary(self.summary(), metric=metric, ax=ax, ideal=ideal,
                            title=f"{self.spec.name}: {self.provenance['model']['name']}", **kwargs)

    def _repr_html_(self) -> str:
        prov = self.provenance
        head = (f"<b>{self.spec.name}</b> on <code>{prov['model']['name']}</code> "
                f"(fingerprint {prov['model']['fingerprint_id']}, licence {prov['model']['licence']}); "
                f"data licence: {prov['data']['licence']}")
        if prov["data"].get("non_commercial"):
            head += " <b>(NON-COMMERCIAL)</b>"
        return head + f"; {len(self.frame)} items, {len(self.skipped)} skipped" + self.summary()._repr_html_()


def plot_summary(summary: pd.DataFrame, metric: str | None = None, ax=None, title: str = "",
                 ideal: float | None = None, xlim: tuple | None = None):
    """Horizontal point-and-interval plot of one metric's rows of a summary frame: the ideal
    value (if given) as a dashed line, rows with fewer than ``workbench.stats.MIN_N`` items
    hollow, and ``xlim`` to put several models on the same axis."""
    import matplotlib.pyplot as plt

    rows = summary[summary.metric != "n_skipped"]
    metric = metric or rows.metric.iloc[0]
    sub = rows[rows.metric == metric].reset_index(drop=True)
    if sub.empty:
        raise InvalidInputError(f"no metric {metric!r} in the summary; choose one of {sorted(rows.metric.unique())}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.35 * len(sub) + 1.2))
    y = np.arange(len(sub))[::-1]
    err = np.vstack([sub.value - sub.ci_low, sub.ci_high - sub.value]).clip(min=0)
    small = (sub.n < MIN_N).to_numpy()
    for mask, face in ((~small, None), (small, "white")):
        if mask.any():
            ax.errorbar(sub.value[mask], y[mask], xerr=err[:, mask], fmt="o", capsize=3, color="#1f5fa8",
                        mfc=face or "#1f5fa8")
    if ideal is not None:
        ax.axvline(ideal, color="grey", ls="--", lw=1, label=f"ideal {ideal:g}")
        ax.legend(fontsize="small", loc="best")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_yticks(y, [f"{c} (n={n}{', small' if n < MIN_N else ''})" for c, n in zip(sub.category, sub.n)])
    ax.set_xlabel(metric)
    ax.set_title(title)
    return ax


# ---- the three questions the runner asks of any unit's result ---------------------------------
def result_items(result) -> pd.DataFrame:
    """One row per item of any unit's result: its ``item_frame()``, else its ``items`` (a frame, or
    a dict of per-test frames, stacked with a ``test`` column), else its ``frame``."""
    if hasattr(result, "item_frame"):
        return result.item_frame()
    items = getattr(result, "items", result.frame)
    if isinstance(items, dict):  # several tests, each with its own per-item frame
        frames = [df.assign(test=t) for t, df in items.items()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["test"])
    return items.copy()


def result_rows(result, groups: bool = False, level: float = 0.95) -> pd.DataFrame:
    """The runner's table rows (metric, category, value, ci_low, ci_high, n) of any unit's result:
    its ``table_rows()``, else read from its ``summary()``: rows with ``metric`` and ``value``
    (a ``method`` column is prefixed: ``"loss/auroc"``), or rows of ``test``, ``statistic`` and
    ``p_value`` (``"<test>/statistic"``, ``"<test>/p_value"``, no interval)."""
    if hasattr(result, "table_rows"):
        return result.table_rows(groups, level)
    s = result.summary()
    if {"metric", "value"} <= set(s.columns):
        metric = s.method + "/" + s.metric if "method" in s else s.metric
        out = pd.DataFrame({"metric": metric, "value": s.value,
                            "ci_low": s.get("ci_low", np.nan), "ci_high": s.get("ci_high", np.nan),
                            "n": s.get("n", np.nan)})
    elif {"test", "statistic", "p_value"} <= set(s.columns):
        out = pd.DataFrame([{"metric": f"{r.test}/{what}", "value": getattr(r, what), "ci_low": np.nan,
                             "ci_high": np.nan, "n": getattr(r, "n", np.nan)}
                            for r in s.itertuples() for what in ("statistic", "p_value")])
    else:
        raise InvalidInputError(f"a {type(result).__name__}'s summary has neither metric/value nor "
                                "test/statistic/p_value columns: give the result a table_rows(groups, level) method")
    return out.assign(category="all")


def result_comparable(result, name: str) -> Comparable:
    """What :func:`workbench.compare` pairs, for a result that has a paired per-item test."""
    if not hasattr(result, "comparable"):
        raise InvalidInputError(f"{name!r} is a training-data check: it has no paired per-item test between models; "
                                "compare their rows in table() or side_by_side()")
    return result.comparable()

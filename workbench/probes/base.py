"""What a probe is (:class:`ProbeSpec`: data loader + scoring rule + metrics) and what it returns
(:class:`ProbeResult`: per-item rows, a summary with bootstrap CIs, plots, provenance).

Bad input is never dropped silently: loaders and scorers record every row they cannot use in a
:class:`SkipLog` (row id + reason); the result shows the count in ``summary()`` and the rows in
``res.skipped`` and ``res.provenance["skipped"]``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench.errors import DataError, InvalidInputError
from workbench.results import Result
from workbench.stats.bootstrap import summarise
from workbench.stats.compare import Comparable
from workbench.scoring.chat import reading_identity


class SkipLog:
    """Rows a probe could not use, with the reason for each (shown, never dropped silently)."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, row, reason: str, stage: str = "load"):
        self.rows.append({"row": str(row), "reason": reason, "stage": stage})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["row", "reason", "stage"])

    def __len__(self):
        return len(self.rows)


def require_text(value) -> str | None:
    """The stripped string, or None when the field is missing/NaN/empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def hash_files(paths) -> str:
    """sha256 over the (sorted) files a probe read: the data part of the provenance."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def find_file(source: Path, *names: str) -> Path:
    """``source`` itself if it is a file, else the first of ``names`` inside the folder."""
    if source.is_file():
        return source
    for n in names:
        if (source / n).is_file():
            return source / n
    raise DataError(f"none of {list(names)} found in {source}; pass the data file or its folder")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe: ``load(source, skips, options) -> (items, files)``, ``score(model, items, options,
    skips) -> items`` (adds score columns; goes through :mod:`workbench.scoring.api`),
    ``metrics(options) -> [Metric]``.

    ``categories`` are the item columns the summary is split by (the first one is the category
    used by :func:`workbench.compare`); ``kinds`` the model kinds the scoring rule supports.
    """

    name: str
    description: str
    load: Callable
    score: Callable
    metrics: Callable
    categories: tuple = ()
    item_key: tuple = ("item_id",)
    kinds: tuple = ("causal", "masked")
    licence: str = "unknown"
    non_commercial: bool = False
    defaults: dict = field(default_factory=dict)
    default_data: str | None = None   # package data (templated probes); others need `data=`
    plot: Callable | None = None
    summary: Callable | None = None   # res -> summary frame, where the generic one does not fit (SEAT)
    paper: str = ""
    primary_metric: str | None = None  # the bias metric plots and headlines show (default: the first)
    formats: tuple = ("raw",)          # "chat" where items can be a chat model's user turn (scoring.chat)
    default_format: str = "raw"        # "auto": chat for a causal LM with a chat template, else raw
    hub_id: str | None = None          # the data set on the Hugging Face hub (when `data` is not a path)
    multiverse: dict = field(default_factory=dict)  # extra scoring choices wb.multiverse varies (masked LMs)
    # how the mechanistic audit reads the probe's items as minimal pairs (workbench.attribution.audit):
    # {"kind": "sentences", "a": column of the stereotyped side, "b": the other, "category": column,
    #  "sides": (label a, label b)} or {"kind": "bbq_answers"}; None: not a minimal-pair probe
    pairs: dict | None = None


@dataclass
class ProbeResult(Result):
    """Result of :func:`workbench.run_probe`: ``items`` (one row per item with the scores used),
    ``summary()`` (metric, category, value, ci_low, ci_high, n), ``plot()``, ``provenance``."""

    spec: ProbeSpec | None = None
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

    def comparable(self) -> Comparable:
        """What :func:`workbench.compare` pairs. A chat-formatted run is identified by the model state
        *and* its format (and system prompt), so raw vs chat of one model compare as two readings
        (no ``allow_same_model`` needed); two runs of one model in one format are still refused."""
        prov = self.provenance
        cat = self.spec.categories[0] if self.spec.categories else None
        ident, label = reading_identity(prov["model"]["state_id"], prov["model"]["name"],
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
    from workbench.stats import MIN_N as min_n
    y = np.arange(len(sub))[::-1]
    err = np.vstack([sub.value - sub.ci_low, sub.ci_high - sub.value]).clip(min=0)
    small = (sub.n < min_n).to_numpy()
    for mask, face in ((~small, None), (small, "white")):
        if mask.any():
            ax.errorbar(sub.value[mask], y[mask], xerr=err[:, mask], fmt="o", capsize=3, color="#1f5fa8",
                        mfc=face or "#1f5fa8")
    if ideal is not None:
        ax.axvline(ideal, color="grey", ls="--", lw=1, label=f"ideal {ideal:g}")
        ax.legend(fontsize="small", loc="best")
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_yticks(y, [f"{c} (n={n}{', small' if n < min_n else ''})" for c, n in zip(sub.category, sub.n)])
    ax.set_xlabel(metric)
    ax.set_title(title)
    return ax

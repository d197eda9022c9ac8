"""What a probe is (:class:`ProbeSpec`: data loader + scoring rule + metrics), what a run hands
its loader and scorer (:class:`ProbeContext`) and what it returns (:class:`ProbeResult`:
per-item rows, a summary with bootstrap CIs, plots, provenance).

Bad input is never dropped silently: loaders and scorers record every row they cannot use in a
:class:`SkipLog` (row id + reason); the result shows the count in ``summary()`` and the rows in
``res.skipped`` and ``res.provenance["skipped"]``.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
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
class ProbeContext:
    """What one run of a probe hands its ``load(source, ctx)`` and ``score(model, items, ctx)``.

    ``options``: the method's options, read-only, exactly as the provenance records them (the
    spec's ``defaults`` overridden by the caller's, plus ``seed``, ``format`` and, where given,
    ``system_prompt`` and ``encoding``); the run's own settings are attributes, not hidden keys:
    ``source`` (the resolved data path, for scorers that re-read side files; None for data given
    as a DataFrame), ``cache`` (pass it to every :mod:`workbench.scoring.api` call), ``skips``
    (the :class:`SkipLog` to record unusable rows in), ``seed`` and ``format`` (read from the
    options, as the options have them).

    >>> ctx = ProbeContext({"aggregate": "sum", "seed": 3, "format": "raw"}, cache=False)
    >>> ctx.options["aggregate"], ctx.seed, ctx.format, ctx.cache, ctx.source
    ('sum', 3, 'raw', False, None)
    """

    options: Mapping = field(default_factory=dict)
    source: Path | None = None
    cache: bool = True
    skips: SkipLog = field(default_factory=SkipLog)
    # the old contract's options dict (hidden keys included), passed as is to an old-contract spec
    _legacy: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        # read-only: the options are what provenance records, not a channel from load to score
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    @property
    def seed(self) -> int:
        return self.options.get("seed", 0)

    @property
    def format(self) -> str:
        return self.options.get("format", "raw")

    def with_skips(self, skips: SkipLog) -> ProbeContext:
        """The same context recording into ``skips`` (the runner gives each chunk its own)."""
        return ProbeContext(self.options, self.source, self.cache, skips, self._legacy)

    def legacy_options(self) -> dict:
        """The options dict of the old contract: the method's options plus the hidden keys
        ``"cache"`` and ``"_source"`` (the very dict a run built, where there is one)."""
        if self._legacy is not None:
            return self._legacy
        return {**self.options, "cache": self.cache, **({"_source": str(self.source)} if self.source else {})}

    @classmethod
    def from_options(cls, options: Mapping, skips: SkipLog | None = None) -> ProbeContext:
        """A context from an old-contract options dict: the hidden keys become ``source`` and
        ``cache``, the rest (what provenance records) ``options``; an old-contract spec is handed
        ``options`` itself, the very dict (as it always was)."""
        source = options.get("_source")
        return cls({k: v for k, v in options.items() if k != "cache" and not str(k).startswith("_")},
                   Path(source) if source else None, options.get("cache", True),
                   SkipLog() if skips is None else skips, options)


_OLD_CALL = ("calling a probe's {what} with the old arguments {old} is deprecated; pass a "
             "workbench.probes.ProbeContext instead: {what}{new}")


def takes_context(fn: Callable) -> Callable:
    """Mark ``fn`` as a new-contract ``load(source, ctx)`` or ``score(model, items, ctx)`` that
    still answers code calling it with the old arguments (``(source, skips, options)`` or
    ``(model, items, options, skips)``, e.g. a wrapper around a built-in scorer), with a
    DeprecationWarning. The built-in probes use it; a new probe outside the package needs it not."""
    n = len([p for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if len(args) == n + 1 and not kwargs:  # the old call: one argument more, (skips, options) in some order
            *head, a, b = args
            options, skips = (a, b) if isinstance(a, Mapping) else (b, a)
            is_load = n == 2
            warnings.warn(_OLD_CALL.format(what="load" if is_load else "score",
                                           old="(source, skips, options)" if is_load else "(model, items, options, skips)",
                                           new="(source, ctx)" if is_load else "(model, items, ctx)"),
                          DeprecationWarning, stacklevel=2)
            return fn(*head, ProbeContext.from_options(options, skips))
        return fn(*args, **kwargs)
    wrapper.__probe_contract__ = 2
    return wrapper


def _contract_of(fn: Callable, new: int) -> int | None:
    """2 or 1 when ``fn``'s signature says which contract it follows (it can be called with
    ``new`` positional arguments: the new one; with one more: the old one), 0 when it can be
    called with neither, else None (both, ``*args``, no signature)."""
    marked = getattr(fn, "__probe_contract__", None)
    if marked is not None:
        return marked
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    n_req = len([p for p in positional if p.default is p.empty])
    fits = tuple(k for k in (new, new + 1) if n_req <= k <= len(positional))
    return {(new,): 2, (new + 1,): 1, (): 0}.get(fits)


@dataclass(frozen=True)
class ProbeSpec:
    """A probe: ``load(source, ctx) -> (items, files)``, ``score(model, items, ctx) -> items``
    (adds score columns; goes through :mod:`workbench.scoring.api`), ``metrics(options) -> [Metric]``.

    Each function takes what it works on first and the run's :class:`ProbeContext` last:
    ``source`` is the data (a path, or a DataFrame given as ``data=``); ``files`` the files
    ``load`` read (hashed into the provenance); ``ctx.options`` the method's options (no hidden
    keys), ``ctx.source``, ``ctx.cache``, ``ctx.skips``, ``ctx.seed``, ``ctx.format``. ``score``
    may be called on any subset of the items (the runner scores item-wise probes in chunks, each
    with its own ``ctx.skips``). ``metrics`` gets the result's options (``res.options``).

    ``categories`` are the item columns the summary is split by (the first one is the category
    used by :func:`workbench.compare`); ``kinds`` the model kinds the scoring rule supports.

    >>> import pandas as pd, workbench as wb
    >>> from workbench.stats import mean_metric
    >>> def load(source, ctx):                      # here source is the DataFrame given as data=
    ...     for i in source.index[source.bad.isna()]:
    ...         ctx.skips.add(i, "no ungrammatical sentence")
    ...     return source.dropna().reset_index(drop=True), []
    >>> def score(model, items, ctx):
    ...     ll = wb.loglikelihood(model, [("", s) for s in [*items.good, *items.bad]], cache=ctx.cache)
    ...     good, bad = ll.logprob.to_numpy().reshape(2, -1)
    ...     return items.assign(prefers_good=(good > bad).astype(int))
    >>> spec = wb.register_probe(ProbeSpec(
    ...     name="doc_agreement", description="subject-verb agreement", load=load, score=score,
    ...     metrics=lambda options: [mean_metric("pct_good", "prefers_good", kind="binary", scale=100)]),
    ...     replace=True)
    >>> data = pd.DataFrame({"item_id": [0, 1, 2], "good": ["The dogs bark.", "A cat sleeps.", "It is."],
    ...                      "bad": ["The dogs barks.", "A cat sleep.", None]})
    >>> res = wb.run_probe("doc_agreement", wb.testing.tiny_model("gpt2"), data=data, n_boot=200)
    >>> len(res.items), list(res.skipped.reason), res.provenance["options"]
    (2, ['no ungrammatical sentence'], {'seed': 0, 'format': 'raw'})
    >>> wb.probes.api.unregister_probe("doc_agreement")

    ``contract``: which contract ``load`` and ``score`` follow. None (the default) reads it from
    each one's signature: ``load(source, ctx)`` and ``score(model, items, ctx)`` are this one (2);
    ``load(source, skips, options)`` and ``score(model, items, options, skips)`` the old one (1,
    deprecated: it still runs, with a DeprecationWarning at registration or first use, and gets
    the old options dict with its hidden keys ``"_source"`` and ``"cache"``). A signature that
    does not say (``*args``, optional parameters that fit both) is read as the old one: pass
    ``contract=2`` (or 1) to say it. ``spec.follows`` is the contract read.
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
    # True when each item's rows depend on that item alone (same item -> same requests -> same
    # scores), so the runner may score the items in chunks and resume a cell item by item; False
    # (the safe default) when a score depends on the other items or the batch: scored whole
    itemwise: bool = False
    # whether ``load`` reads items given in memory (``data=`` a DataFrame); False: it reads files,
    # and a DataFrame is refused at the door instead of failing inside the loader
    accepts_frame: bool = True
    # Why a signature read by default rather than an explicit contract=2 on every spec: a spec
    # written to the documented contract then just works, an old one keeps working unchanged
    # (nothing in it could say contract=1), and dataclasses.replace(spec, score=wrapper) (how the
    # tests wrap a scorer) judges the wrapper by its own signature instead of carrying over a
    # field that no longer describes it. Each function is read on its own, so such a wrapper
    # written the old way beside a new-contract load still runs. An explicit value wins (for both).
    contract: int | None = None

    def __post_init__(self):
        if self.contract not in (None, 1, 2):
            raise InvalidInputError(f"probe {self.name!r}: contract must be 2 (load(source, ctx), score(model, "
                                    f"items, ctx)), 1 (the old (source, skips, options) one) or None (read from "
                                    f"the signatures), got {self.contract!r}")
        if self.contract is None:  # a function that fits neither contract fails here, not mid-run
            for what, fn, new, old in (("load", self.load, 2, "load(source, skips, options)"),
                                       ("score", self.score, 3, "score(model, items, options, skips)")):
                if _contract_of(fn, new) == 0:
                    args = "(source, ctx)" if what == "load" else "(model, items, ctx)"
                    raise InvalidInputError(f"probe {self.name!r}: its {what} takes neither {what}{args} nor the old "
                                            f"{old}; write {what}{args}")

    @functools.cached_property
    def _contracts(self) -> tuple[int, int]:
        # a function whose signature does not say (e.g. *args): the old contract, the only one
        # such a spec can have been written for (the warning says how to declare contract=2)
        if self.contract is not None:
            return self.contract, self.contract
        return _contract_of(self.load, 2) or 1, _contract_of(self.score, 3) or 1

    @property
    def follows(self) -> int:
        """2 when ``load`` and ``score`` both follow the ``ctx`` contract, 1 when one of them
        follows the old, deprecated one."""
        return min(self._contracts)

    def warn_if_old(self, stacklevel: int = 2) -> None:
        """A DeprecationWarning, once per spec, when it follows the old contract."""
        if self.follows == 1 and not self.__dict__.get("_warned"):
            self.__dict__["_warned"] = True  # a cache beside the frozen fields, like `_contracts`
            old = " and ".join(f for f, c in zip(("load(source, skips, options)", "score(model, items, options, skips)"),
                                                 self._contracts) if c == 1)
            warnings.warn(
                f"probe {self.name!r} follows the old probe contract {old}, which is deprecated: write "
                "load(source, ctx) and score(model, items, ctx) and read ctx.options (no hidden keys), ctx.source "
                "(was options['_source']), ctx.cache (was options['cache']) and ctx.skips (see "
                "workbench.probes.ProbeSpec; pass contract=2 where a signature such as *args does not say)",
                DeprecationWarning, stacklevel=stacklevel + 1)

    def call_load(self, source, ctx: ProbeContext):
        """``load`` under its contract: ``(items, files)``."""
        if self._contracts[0] == 1:
            self.warn_if_old(stacklevel=3)
            return self.load(source, ctx.skips, ctx.legacy_options())
        return self.load(source, ctx)

    def call_score(self, model, items: pd.DataFrame, ctx: ProbeContext) -> pd.DataFrame:
        """``score`` under its contract: the scored items."""
        if self._contracts[1] == 1:
            self.warn_if_old(stacklevel=3)
            return self.score(model, items, ctx.legacy_options(), ctx.skips)
        return self.score(model, items, ctx)


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

"""What a unit of work is: :class:`UnitSpec` (a loader, a scoring rule, metrics), and what a run
hands its loader and scorer (:class:`UnitContext`).

A bias probe, a benchmark task and a training-data check are all units: each is a
:class:`UnitSpec` (``workbench.probes.ProbeSpec`` is the same class, under the name its probes
have always used), each runs through one preparation (:mod:`workbench.units.run`), one result
shape (:class:`workbench.units.result.UnitResult` or the check's own result) and one cell type in
the benchmark runner. ``unit`` says which of the three a spec is.

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

import pandas as pd

from workbench.errors import InvalidInputError


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


def hash_files(paths) -> str:
    """sha256 over the (sorted) files a probe read: the data part of the provenance."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class UnitContext:
    """What one run of a probe hands its ``load(source, ctx)`` and ``score(model, items, ctx)``.

    ``options``: the method's options, read-only, exactly as the provenance records them (the
    spec's ``defaults`` overridden by the caller's, plus ``seed``, ``format`` and, where given,
    ``system_prompt`` and ``encoding``); the run's own settings are attributes, not hidden keys:
    ``source`` (the resolved data path, for scorers that re-read side files; None for data given
    as a DataFrame), ``cache`` (pass it to every :mod:`workbench.scoring.api` call), ``skips``
    (the :class:`SkipLog` to record unusable rows in), ``seed`` and ``format`` (read from the
    options, as the options have them).

    >>> ctx = UnitContext({"aggregate": "sum", "seed": 3, "format": "raw"}, cache=False)
    >>> ctx.options["aggregate"], ctx.seed, ctx.format, ctx.cache, ctx.source
    ('sum', 3, 'raw', False, None)
    """

    options: Mapping = field(default_factory=dict)
    source: Path | None = None
    cache: bool = True
    skips: SkipLog = field(default_factory=SkipLog)
    # keywords for the scoring engine that change no number (batch_size, progress), from the runner's
    # score_kwargs: pass them on with ``**ctx.scoring`` where a unit wants them
    scoring: Mapping = field(default_factory=dict)
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

    def with_skips(self, skips: SkipLog) -> UnitContext:
        """The same context recording into ``skips`` (the runner gives each chunk its own)."""
        return UnitContext(self.options, self.source, self.cache, skips, self.scoring, self._legacy)

    def legacy_options(self) -> dict:
        """The options dict of the old contract: the method's options plus the hidden keys
        ``"cache"`` and ``"_source"`` (the very dict a run built, where there is one)."""
        if self._legacy is not None:
            return self._legacy
        return {**self.options, "cache": self.cache, **({"_source": str(self.source)} if self.source else {})}

    @classmethod
    def from_options(cls, options: Mapping, skips: SkipLog | None = None,
                     scoring: Mapping | None = None) -> UnitContext:
        """A context from an old-contract options dict: the hidden keys become ``source`` and
        ``cache``, the rest (what provenance records) ``options``; an old-contract spec is handed
        ``options`` itself, the very dict (as it always was)."""
        source = options.get("_source")
        return cls({k: v for k, v in options.items() if k != "cache" and not str(k).startswith("_")},
                   Path(source) if source else None, options.get("cache", True),
                   SkipLog() if skips is None else skips, dict(scoring or {}), options)


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
            return fn(*head, UnitContext.from_options(options, skips))
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
class UnitSpec:
    """A unit of work (a bias probe, a benchmark task, a training-data check):
    ``load(source, ctx) -> (items, files)``, ``score(model, items, ctx) -> items`` (adds score
    columns; goes through :mod:`workbench.scoring.api`), ``metrics(options) -> [Metric]``.

    Each function takes what it works on first and the run's :class:`UnitContext` last:
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
    >>> spec = wb.register_probe(wb.probes.ProbeSpec(
    ...     name="doc_agreement", description="subject-verb agreement", load=load, score=score,
    ...     metrics=lambda options: [mean_metric("pct_good", "prefers_good", kind="binary", scale=100)]),
    ...     replace=True)
    >>> data = pd.DataFrame({"item_id": [0, 1, 2], "good": ["The dogs bark.", "A cat sleeps.", "It is."],
    ...                      "bad": ["The dogs barks.", "A cat sleep.", None]})
    >>> res = wb.run_probe("doc_agreement", wb.testing.tiny_model("gpt2"), data=data, n_boot=200)
    >>> len(res.items), list(res.skipped.reason), res.provenance["options"]
    (2, ['no ungrammatical sentence'], {'seed': 0, 'format': 'raw'})
    >>> wb.probes.api.unregister_probe("doc_agreement")

    A unit whose inputs are its options (a training-data check: ``wb.membership``'s texts are its
    arguments) has ``load=None``; its ``score`` then gets one empty item frame and returns the
    check's result object, which ``save`` turns into stored rows and ``result`` rebuilds
    (:mod:`workbench.training_data.checks`). ``unit`` names the kind (``"probe"``, ``"task"``,
    ``"check"``); ``identity``, ``select`` and ``result`` let a kind keep its own run keys, its
    own reading of ``limit`` and its own result type (see ``docs/architecture.md``).

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
    # why format="chat" does not apply to this probe (said when it is asked for)
    no_chat: str = ""
    # -- which kind of unit, and what the runner needs to store, resume and rebuild it ------------
    unit: str = "probe"                    # "probe", "task" or "check" (a training-data check)
    higher_is_better: bool | None = None   # the primary metric's direction (leaderboards); None: none
    # (items, limit, seed) -> the items a run with ``limit`` scores; None: a seeded random sample
    select: Callable | None = None
    # (model, work, limit, seed, tag) -> (run key, unit hash), ``work`` the grid's unit (its .data,
    # .options, .name); None: the probes' rule (workbench.bench.cells.identity)
    identity: Callable | None = None
    # the result type: for a unit with load, built as UnitResult is (frame, provenance, spec=, options=,
    # skipped=, n_boot=, seed=; None: UnitResult); for a check, rebuild(rows, saved, provenance)
    result: Callable | None = None
    # a unit whose score returns a result object (load=None): result -> (records, saved)
    save: Callable | None = None
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
        if self.unit not in ("probe", "task", "check"):
            raise InvalidInputError(f"unit {self.name!r}: unit must be 'probe', 'task' or 'check', got {self.unit!r}")
        if self.load is None and self.save is None:
            raise InvalidInputError(f"unit {self.name!r} has no load (its inputs are its options): give it save= "
                                    "(result -> (records, saved)) so the runner can store what its score returns")
        if self.contract is None:  # a function that fits neither contract fails here, not mid-run
            for what, fn, new, old in (("load", self.load, 2, "load(source, skips, options)"),
                                       ("score", self.score, 3, "score(model, items, options, skips)")):
                if fn is not None and _contract_of(fn, new) == 0:
                    args = "(source, ctx)" if what == "load" else "(model, items, ctx)"
                    raise InvalidInputError(f"probe {self.name!r}: its {what} takes neither {what}{args} nor the old "
                                            f"{old}; write {what}{args}")

    @functools.cached_property
    def _contracts(self) -> tuple[int, int]:
        # a function whose signature does not say (e.g. *args): the old contract, the only one
        # such a spec can have been written for (the warning says how to declare contract=2)
        if self.contract is not None:
            return self.contract, self.contract
        load = 2 if self.load is None else (_contract_of(self.load, 2) or 1)
        return load, _contract_of(self.score, 3) or 1

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

    def call_load(self, source, ctx: UnitContext):
        """``load`` under its contract: ``(items, files)``."""
        if self._contracts[0] == 1:
            self.warn_if_old(stacklevel=3)
            return self.load(source, ctx.skips, ctx.legacy_options())
        return self.load(source, ctx)

    def call_score(self, model, items: pd.DataFrame, ctx: UnitContext) -> pd.DataFrame:
        """``score`` under its contract: the scored items."""
        if self._contracts[1] == 1:
            self.warn_if_old(stacklevel=3)
            return self.score(model, items, ctx.legacy_options(), ctx.skips)
        return self.score(model, items, ctx)


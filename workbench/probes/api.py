"""``wb.run_probe`` and ``wb.list_probes``: run a bias probe on a model, with honest statistics.

>>> import workbench as wb
>>> wb.list_probes()[["probe", "models"]].head(3)                   # doctest: +SKIP
>>> res = wb.run_probe("crows_pairs", model, data="../shared/data/crows_pairs", limit=100)  # doctest: +SKIP
>>> res.summary()                                                    # doctest: +SKIP
"""
from __future__ import annotations

import importlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError, InvalidInputError, OfflineError
from workbench.provenance import model_record, record
from workbench.probes.base import ProbeContext, ProbeResult, ProbeSpec, SkipLog, hash_files

# built-in probes: every module of this package that defines SPEC (or SPECS, several probes)
# registers itself the first time a probe is looked up; adding a probe is adding its module.
# Name -> module: the spec is read from its module at each look-up, so it is always the module's.
_BUILTIN: dict[str, object] = {}


def _builtin() -> dict[str, object]:
    if not _BUILTIN:
        import pkgutil

        import workbench.probes as package
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            names = list(getattr(module, "SPECS", None) or ([module.SPEC.name] if hasattr(module, "SPEC") else []))
            _BUILTIN.update({n: module for n in names})
    return _BUILTIN


# probes registered at run time (register_probe): the same contract as the built-in ones
_REGISTERED: dict[str, ProbeSpec] = {}


def register_probe(spec: ProbeSpec, replace: bool = False) -> ProbeSpec:
    """Make ``spec`` a probe like the built-in ones: ``wb.run_probe(spec.name, ...)``,
    ``wb.list_probes()``, the runner (``probes=[spec.name]``), ``wb.compare`` and
    ``wb.multiverse`` find it by name.

    >>> import workbench as wb
    >>> from workbench.probes.api import register_probe
    >>> spec = wb.probes.api.get_spec("crows_pairs")
    >>> register_probe(spec)
    Traceback (most recent call last):
    ...
    workbench.errors.InvalidInputError: a probe named 'crows_pairs' already exists; pass replace=True to replace it, or give your probe another name
    """
    if not isinstance(spec, ProbeSpec):
        raise InvalidInputError(f"register_probe takes a workbench ProbeSpec, got {type(spec).__name__}")
    if not spec.name or not isinstance(spec.name, str):
        raise InvalidInputError(f"a probe needs a non-empty name, got {spec.name!r}")
    if spec.name in probe_names() and not replace:
        raise InvalidInputError(f"a probe named {spec.name!r} already exists; pass replace=True to replace it, "
                                "or give your probe another name")
    spec.warn_if_old(stacklevel=2)  # the old contract still runs; say what to change, where it is registered
    _REGISTERED[spec.name] = spec
    return spec


def unregister_probe(name: str) -> None:
    """Remove a probe added with :func:`register_probe`."""
    if _REGISTERED.pop(name, None) is None:
        raise InvalidInputError(f"no registered probe named {name!r}; registered: {sorted(_REGISTERED)}")


def probe_names() -> list[str]:
    """Built-in probes, then registered ones."""
    return list(_builtin()) + [n for n in _REGISTERED if n not in _builtin()]


def get_spec(name: str) -> ProbeSpec:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _builtin():
        raise InvalidInputError(f"unknown probe {name!r}; known probes: {', '.join(probe_names())}")
    module = _builtin()[name]
    specs = getattr(module, "SPECS", None)
    return specs[name] if specs else module.SPEC


def list_probes() -> pd.DataFrame:
    """One row per probe: what it measures, which model kinds it supports, the data licence."""
    rows = []
    for name in probe_names():
        s = get_spec(name)
        rows.append({"probe": name, "description": s.description, "models": "/".join(s.kinds),
                     "categories": ", ".join(s.categories), "licence": s.licence,
                     "non_commercial": s.non_commercial, "needs_data": s.default_data is None, "paper": s.paper,
                     "formats": "/".join(s.formats)})
    return pd.DataFrame(rows)


def _resolve(spec: ProbeSpec, data, options):
    """A local path (file or folder), a hub id, or None (the probe's packaged data)."""
    if data is None:
        if spec.default_data is None:
            hub = spec.hub_id
            raise InvalidInputError(
                f"probe {spec.name!r} needs data=PATH to its data set (e.g. '../shared/data/{spec.name}')"
                + (f" or the hub id {hub!r}" if hub else ""))
        return Path(__file__).resolve().parents[1] / "data" / "templates" / spec.default_data
    if isinstance(data, pd.DataFrame):  # items in memory (e.g. a synthetic image set)
        if not spec.accepts_frame:
            raise InvalidInputError(f"probe {spec.name!r} reads its data from files, not from a DataFrame; pass "
                                    "data= the path of its data file or folder")
        return data
    path = Path(data).expanduser()
    if path.exists():
        return path
    if spec.hub_id and "/" in str(data) and not str(data).startswith((".", "/", "~")):
        try:
            import datasets
            return datasets.load_dataset(str(data), split="test").to_pandas()
        except Exception as e:  # offline machines end here: say so and how to use a local copy
            raise OfflineError(f"could not load {data!r} from the hub ({type(e).__name__}: {e}); if this machine "
                               "is offline, pass data= a local copy of the data set") from e
    raise DataError(f"data path {str(path)!r} does not exist; pass the probe's data folder or file")


def _subset(items: pd.DataFrame, spec: ProbeSpec, categories, limit, seed) -> pd.DataFrame:
    if categories is not None:
        col = spec.categories[0] if spec.categories else None
        if col is None:
            raise InvalidInputError(f"probe {spec.name!r} has no categories to select")
        wanted = [categories] if isinstance(categories, str) else list(categories)
        known = sorted(items[col].astype(str).unique())
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise InvalidInputError(f"unknown {col} value(s) {unknown} for probe {spec.name!r}; known: {known}")
        items = items[items[col].astype(str).isin(wanted)]
    if limit is not None:
        if isinstance(limit, (bool, np.bool_)) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise InvalidInputError(f"limit must be a positive integer or None, got {limit!r}")
        if limit < len(items):  # a seeded random sample (kept in data order), so categories stay mixed
            keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
            items = items.iloc[keep]
    return items.reset_index(drop=True)


def _resolve_format(spec: ProbeSpec, model, format) -> str:
    """``None`` -> the probe's default; ``"auto"`` -> chat when the model can be chat-formatted."""
    from workbench.scoring.chat import has_template
    format = spec.default_format if format is None else format
    if isinstance(format, str) and format == "auto":
        ok = "chat" in spec.formats and getattr(model, "kind", None) == "causal" and has_template(model)
        return "chat" if ok else "raw"
    return format


def _check_format(spec: ProbeSpec, model, format, system_prompt) -> None:
    from workbench.scoring.chat import check_format
    check_format(format, None, f"probe {spec.name!r}", system_prompt)
    if format not in spec.formats:
        raise InvalidInputError(
            f"probe {spec.name!r} has no chat format (it takes format={'/'.join(map(repr, spec.formats))}): "
            + _NO_CHAT.get(spec.name, "its items are not questions or replies a chat model is asked")
            + "; use format='raw'")
    check_format(format, model, f"probe {spec.name!r}", system_prompt)


# why a probe refuses format="chat"
_NO_CHAT = {"seat": "it compares sentence embeddings, which no chat turn changes the meaning of",
            "bold": "it continues the beginnings of sentences, which a chat template would turn into requests",
            "honest": "it completes templates word by word (a masked or causal LM's fill-in), not a chat reply"}


def _where(source) -> str:
    """The data's origin as a portable string (a path relative to a named root, a hub id, or
    "in-memory DataFrame")."""
    from workbench.portable import portable_path
    if isinstance(source, pd.DataFrame):
        return f"in-memory DataFrame ({len(source)} rows)"
    return portable_path(str(source))


def run_probe(name: str, model, data=None, limit: int | None = None, seed: int = 0, categories=None,
              n_boot: int = 2000, cache: bool = True, encoding: str | None = None, format: str | None = None,
              system_prompt: str | None = None, **options) -> ProbeResult:
    """Run bias probe ``name`` on ``model`` and return a :class:`~workbench.probes.base.ProbeResult`.

    Parameters
    ----------
    name : one of :func:`list_probes` (crows_pairs, stereoset, bbq, winobias, winogender, seat,
        bold, honest, occupations_pronouns, names_sentiment, templated).
    data : local file/folder of the data set (or a hub id where one exists); None for probes
        that ship their data (the templated ones).
    limit : score at most this many items: a seeded random sample (``seed``), in data order.
    categories : only these values of the probe's main category (e.g. ``["gender"]``).
    n_boot : bootstrap resamples for the confidence intervals in ``summary()``.
    encoding : the text encoding of the data files (default UTF-8, e.g. ``"latin-1"``); a file
        that is not valid in it raises a DataError naming the file.
    format : "raw" (the text as given) or "chat": each item as a user turn through the model's chat
        template, the answers scored as the assistant's reply (:mod:`workbench.scoring.chat`), for
        probes that list "chat" in ``wb.list_probes().formats`` and causal models with a template;
        "auto": chat when the model has a template, else raw. Default (None): the probe's own
        (raw for the likelihood probes; auto for those that ask a model questions: bbq_generative,
        decisions). ``system_prompt``: an optional system turn (chat only). The format used is
        recorded in ``options`` and the provenance.
    options : the probe's scoring options (see its module), e.g. ``aggregate="mean"``.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> res = run_probe("occupations_pronouns", tiny_model("gpt2"), limit=10, n_boot=200)
    >>> list(res.summary().columns)
    ['metric', 'category', 'value', 'ci_low', 'ci_high', 'n']
    """
    prep = prepare_probe(name, model, data=data, limit=limit, seed=seed, categories=categories, cache=cache,
                         encoding=encoding, format=format, system_prompt=system_prompt, **options)
    t1 = time.perf_counter()
    scored = prep.spec.call_score(model, prep.items, prep.context()).reset_index(drop=True)
    provenance = probe_provenance(prep, model, n_scored=len(scored), skipped=prep.skips.rows,
                                  score_s=time.perf_counter() - t1, n_boot=n_boot)
    return ProbeResult(scored, provenance, spec=prep.spec, options=prep.public_options, skipped=prep.skips.frame(),
                       n_boot=n_boot, seed=seed)


@dataclass
class PreparedProbe:
    """A probe's checked options and its loaded, selected items, ready to score (all of them, as
    :func:`run_probe` does, or in chunks, as the benchmark runner does)."""

    name: str
    spec: ProbeSpec
    opts: dict          # the old contract's options dict: the method's, plus the hidden "cache" and "_source"
    data: object
    source: object
    items: pd.DataFrame
    files: list
    skips: SkipLog      # rows the loader skipped (the scorer adds its own)
    n_loaded: int
    limit: int | None
    categories: object
    load_s: float

    @property
    def public_options(self) -> dict:
        """The options the result keeps (its metrics may re-read side files through "_source")."""
        return {k: v for k, v in self.opts.items() if k != "cache"}

    @property
    def recorded_options(self) -> dict:
        """The options provenance records: hidden keys ("_source", a path of this machine) are
        the machine's, not the method's."""
        return {k: v for k, v in self.public_options.items() if not k.startswith("_")}

    def context(self, skips: SkipLog | None = None) -> ProbeContext:
        """The context the probe's load and score get: the recorded options, the data path, the
        cache switch, and ``skips`` (default: the loader's log, as :func:`run_probe` scores)."""
        return ProbeContext.from_options(self.opts, self.skips if skips is None else skips)


def prepare_probe(name: str, model, data=None, limit: int | None = None, seed: int = 0, categories=None,
                  cache: bool = True, encoding: str | None = None, format: str | None = None,
                  system_prompt: str | None = None, **options) -> PreparedProbe:
    """Check a probe's arguments, load its data and select the items :func:`run_probe` scores."""
    from workbench.models.model import Model
    spec = get_spec(name)
    if not isinstance(model, Model):
        raise InvalidInputError(f"run_probe needs a workbench Model, got {type(model).__name__}; "
                                "load one with wb.load_model(...)")
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        raise InvalidInputError(f"unknown option(s) {unknown} for probe {name!r}; it takes {sorted(spec.defaults)}")
    format = _resolve_format(spec, model, format)
    _check_format(spec, model, format, system_prompt)
    opts = {**spec.defaults, **options, "cache": cache, "seed": seed, "format": format}
    if format == "chat":
        opts["system_prompt"] = system_prompt
    if encoding is not None:  # only when given, so the options (and provenance) of other runs are unchanged
        from workbench.datafiles import check_encoding
        check_encoding(encoding)
        opts["encoding"] = encoding
    source = _resolve(spec, data, opts)
    if not isinstance(source, pd.DataFrame):
        opts["_source"] = str(source)  # scorers that re-read side files (templated specs, HurtLex) need it
    skips = SkipLog()
    t0 = time.perf_counter()
    items, files = spec.call_load(source, ProbeContext.from_options(opts, skips))
    n_loaded = len(items)
    items = _subset(items, spec, categories, limit, seed)
    if items.empty:
        raise DataError(f"probe {name!r}: no usable items in {source if not isinstance(source, pd.DataFrame) else data!r} "
                        f"({len(skips)} rows skipped: {skips.frame().reason.value_counts().head(3).to_dict()})")
    return PreparedProbe(name, spec, opts, data, source, items, files, skips, n_loaded, limit, categories,
                         time.perf_counter() - t0)


def probe_provenance(prep: PreparedProbe, model, *, n_scored: int, skipped: list, score_s: float,
                     n_boot: int) -> dict:
    """The provenance of a probe result (model, data hash and licence, options, timings, skipped
    rows); warns once when the data licence is non-commercial."""
    spec, data = prep.spec, prep.data
    provenance = {
        "probe": prep.name, "paper": spec.paper,
        **record(model),
        "model": model_record(model, full=True),
        "data": {"source": _where(data if data is not None else prep.source),
                 "sha256": hash_files(prep.files) if prep.files else None,
                 "licence": spec.licence, "non_commercial": spec.non_commercial, "n_loaded": prep.n_loaded,
                 "n_scored": n_scored, "limit": prep.limit, "categories": prep.categories},
        "options": prep.recorded_options, "n_boot": n_boot,
        "timing_s": {"load": round(prep.load_s, 3), "score": round(score_s, 3)},
        "skipped": skipped,
    }
    if spec.non_commercial:
        provenance["warning"] = f"data licence {spec.licence} is NON-COMMERCIAL: do not use these results commercially"
        warnings.warn(f"probe {prep.name!r}: {provenance['warning']}", UserWarning, stacklevel=3)
    return provenance

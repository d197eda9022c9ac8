"""One preparation and one provenance for every unit of work: resolve the data, check the
options and the format, load and select the items, and record where every number came from.

:func:`workbench.run_probe` runs a probe through :func:`run_unit`; the benchmark runner
(:mod:`workbench.bench.runner`) runs every unit (probe, task, training-data check) through
:func:`prepare_unit` and :func:`unit_provenance`, in chunks where the unit is item-wise.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.datafiles import check_encoding
from workbench.errors import DataError, InvalidInputError, InvalidTypeError, OfflineError
from workbench.models.model import Model
from workbench.portable import portable_path
from workbench.provenance import model_record, record
from workbench.scoring.chat import check_format, has_template
from workbench.units.result import UnitResult
from workbench.units.spec import SkipLog, UnitContext, UnitSpec, hash_files

# where a unit's packaged data lives (``UnitSpec.default_data`` is relative to it)
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data" / "templates"


def _resolve(spec: UnitSpec, data, options):
    """A local path (file or folder), a hub id, or None (the unit's packaged data)."""
    if data is None:
        if spec.default_data is None:
            hub = spec.hub_id
            raise InvalidInputError(
                f"{spec.unit} {spec.name!r} needs data=PATH to its data set (e.g. '../shared/data/{spec.name}')"
                + (f" or the hub id {hub!r}" if hub else ""))
        return PACKAGE_DATA / spec.default_data
    if isinstance(data, pd.DataFrame):  # items in memory (e.g. a synthetic image set)
        if not spec.accepts_frame:
            raise InvalidInputError(f"{spec.unit} {spec.name!r} reads its data from files, not from a DataFrame; "
                                    "pass data= the path of its data file or folder")
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
    raise DataError(f"data path {str(path)!r} does not exist; pass the {spec.unit}'s data folder or file")


def check_limit(limit) -> int | None:
    """``limit`` as a positive int or None (a bool, a float or a string is refused, not read)."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        kind = f"the {type(limit).__name__} " if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) else ""
        raise InvalidTypeError(f"limit must be a positive integer or None, got {kind}{limit!r}")
    return int(limit)


def select_sample(items: pd.DataFrame, limit, seed) -> pd.DataFrame:
    """The default reading of ``limit``: a seeded random sample of ``limit`` items, kept in data
    order, so the categories stay mixed."""
    if limit is not None and limit < len(items):
        keep = np.sort(np.random.default_rng(seed).choice(len(items), size=limit, replace=False))
        items = items.iloc[keep]
    return items


def _subset(items: pd.DataFrame, spec: UnitSpec, categories, limit, seed) -> pd.DataFrame:
    if categories is not None:
        col = spec.categories[0] if spec.categories else None
        if col is None:
            raise InvalidInputError(f"{spec.unit} {spec.name!r} has no categories to select")
        wanted = [categories] if isinstance(categories, str) else list(categories)
        known = sorted(items[col].astype(str).unique())
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise InvalidInputError(f"unknown {col} value(s) {unknown} for {spec.unit} {spec.name!r}; known: {known}")
        items = items[items[col].astype(str).isin(wanted)]
    items = (spec.select or select_sample)(items, check_limit(limit), seed)
    return items.reset_index(drop=True)


def resolve_format(spec: UnitSpec, model, format) -> str:
    """``None`` -> the unit's default; ``"auto"`` -> chat when the model can be chat-formatted."""
    format = spec.default_format if format is None else format
    if isinstance(format, str) and format == "auto":
        ok = "chat" in spec.formats and getattr(model, "kind", None) == "causal" and has_template(model)
        return "chat" if ok else "raw"
    return format


def check_unit_format(spec: UnitSpec, model, format, system_prompt) -> None:
    """Refuse a format the unit does not take (saying why, from ``spec.no_chat``) or the model
    cannot give (no chat template)."""
    check_format(format, None, f"{spec.unit} {spec.name!r}", system_prompt)
    if format not in spec.formats:
        raise InvalidInputError(
            f"{spec.unit} {spec.name!r} has no chat format (it takes format={'/'.join(map(repr, spec.formats))}): "
            + (spec.no_chat or "its items are not questions or replies a chat model is asked")
            + "; use format='raw'")
    check_format(format, model, f"{spec.unit} {spec.name!r}", system_prompt)


def _where(source) -> str:
    """The data's origin as a portable string (a path relative to a named root, a hub id, or
    "in-memory DataFrame")."""
    if isinstance(source, pd.DataFrame):
        return f"in-memory DataFrame ({len(source)} rows)"
    return portable_path(str(source))


@dataclass
class PreparedUnit:
    """A unit's checked options and its loaded, selected items, ready to score (all of them, as
    :func:`run_unit` does, or in chunks, as the benchmark runner does)."""

    name: str
    spec: UnitSpec
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

    def context(self, skips: SkipLog | None = None, scoring: dict | None = None) -> UnitContext:
        """The context the unit's load and score get: the recorded options, the data path, the
        cache switch, ``skips`` (default: the loader's log, as :func:`run_unit` scores) and the
        scoring engine's keywords (``scoring``: batch size, ...; they change no number)."""
        return UnitContext.from_options(self.opts, self.skips if skips is None else skips, scoring)


def prepare_unit(spec: UnitSpec, model, data=None, limit: int | None = None, seed: int = 0, categories=None,
                 cache: bool = True, encoding: str | None = None, format: str | None = None,
                 system_prompt: str | None = None, **options) -> PreparedUnit:
    """Check a unit's arguments, load its data and select the items a run scores.

    A unit without ``load`` (a training-data check) takes its inputs as its options: they are
    checked against ``spec.defaults`` and handed to ``score`` as they are, with one empty item."""
    if not isinstance(model, Model):
        raise InvalidInputError(f"running {spec.unit} {spec.name!r} needs a workbench Model, got "
                                f"{type(model).__name__}; load one with wb.load_model(...)")
    unknown = sorted(set(options) - set(spec.defaults))
    if unknown:
        raise InvalidInputError(f"unknown option(s) {unknown} for {spec.unit} {spec.name!r}; it takes "
                                f"{sorted(spec.defaults)}")
    if spec.load is None:  # a check: its options are its inputs; no data, format or selection
        opts = {**options, "cache": cache}
        return PreparedUnit(spec.name, spec, opts, None, None, pd.DataFrame(index=[0]), [], SkipLog(), 1, None,
                            None, 0.0)
    format = resolve_format(spec, model, format)
    check_unit_format(spec, model, format, system_prompt)
    opts = {**spec.defaults, **options, "cache": cache, "seed": seed, "format": format}
    if format == "chat":
        opts["system_prompt"] = system_prompt
    if encoding is not None:  # only when given, so the options (and provenance) of other runs are unchanged
        check_encoding(encoding)
        opts["encoding"] = encoding
    source = _resolve(spec, data, opts)
    if not isinstance(source, pd.DataFrame):
        opts["_source"] = str(source)  # scorers that re-read side files (templated specs, HurtLex) need it
    skips = SkipLog()
    t0 = time.perf_counter()
    items, files = spec.call_load(source, UnitContext.from_options(opts, skips))
    n_loaded = len(items)
    items = _subset(items, spec, categories, limit, seed)
    if items.empty:
        raise DataError(f"{spec.unit} {spec.name!r}: no usable items in "
                        f"{source if not isinstance(source, pd.DataFrame) else data!r} ({len(skips)} rows skipped: "
                        f"{skips.frame().reason.value_counts().head(3).to_dict()})")
    return PreparedUnit(spec.name, spec, opts, data, source, items, files, skips, n_loaded, limit, categories,
                        time.perf_counter() - t0)


def unit_provenance(prep: PreparedUnit, model, *, n_scored: int, skipped: list, score_s: float,
                    n_boot: int) -> dict:
    """The provenance of a unit's result (model, data hash and licence, options, timings, skipped
    rows); warns once when the data licence is non-commercial."""
    spec, data = prep.spec, prep.data
    provenance = {
        spec.unit: prep.name, "paper": spec.paper,
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
        warnings.warn(f"{spec.unit} {prep.name!r}: {provenance['warning']}", UserWarning, stacklevel=3)
    return provenance


def run_unit(spec: UnitSpec, model, data=None, limit: int | None = None, seed: int = 0, categories=None,
             n_boot: int = 2000, cache: bool = True, encoding: str | None = None, format: str | None = None,
             system_prompt: str | None = None, **options) -> UnitResult:
    """Run ``spec`` on ``model``: prepare, score every item, and return its result (see
    :func:`workbench.run_probe`, which runs a probe by name through this)."""
    prep = prepare_unit(spec, model, data=data, limit=limit, seed=seed, categories=categories, cache=cache,
                        encoding=encoding, format=format, system_prompt=system_prompt, **options)
    t1 = time.perf_counter()
    scored = spec.call_score(model, prep.items, prep.context()).reset_index(drop=True)
    provenance = unit_provenance(prep, model, n_scored=len(scored), skipped=prep.skips.rows,
                                 score_s=time.perf_counter() - t1, n_boot=n_boot)
    build = spec.result or UnitResult
    return build(scored, provenance, spec=spec, options=prep.public_options, skipped=prep.skips.frame(),
                 n_boot=n_boot, seed=seed)

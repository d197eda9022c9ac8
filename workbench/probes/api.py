"""``wb.run_probe`` and ``wb.list_probes``: run a bias probe on a model, with honest statistics.

>>> import workbench as wb
>>> wb.list_probes()[["probe", "models"]].head(3)                   # doctest: +SKIP
>>> res = wb.run_probe("crows_pairs", model, data="../shared/data/crows_pairs", limit=100)  # doctest: +SKIP
>>> res.summary()                                                    # doctest: +SKIP
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pandas as pd

from workbench.errors import InvalidInputError
from workbench.units.result import UnitResult
from workbench.units.run import PreparedUnit, prepare_unit, run_unit, unit_provenance
from workbench.units.spec import UnitSpec

ProbeSpec = UnitSpec

# built-in probes: every module of this package that defines SPEC (or SPECS, several probes)
# registers itself the first time a probe is looked up; adding a probe is adding its module.
# Name -> module: the spec is read from its module at each look-up, so it is always the module's.
_BUILTIN: dict[str, object] = {}


def _builtin() -> dict[str, object]:
    if not _BUILTIN:
        here = Path(__file__).parent  # this package: its modules are the probes
        for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
            module = importlib.import_module(f"{__package__}.{info.name}")
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


def run_probe(name: str, model, data=None, limit: int | None = None, seed: int = 0, categories=None,
              n_boot: int = 2000, cache: bool = True, encoding: str | None = None, format: str | None = None,
              system_prompt: str | None = None, **options) -> UnitResult:
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
    return run_unit(get_spec(name), model, data=data, limit=limit, seed=seed, categories=categories,
                    n_boot=n_boot, cache=cache, encoding=encoding, format=format, system_prompt=system_prompt,
                    **options)


def prepare_probe(name: str, model, data=None, **kwargs) -> PreparedUnit:
    """Check a probe's arguments, load its data and select the items :func:`run_probe` scores
    (:func:`workbench.units.run.prepare_unit` for the probe named ``name``)."""
    return prepare_unit(get_spec(name), model, data=data, **kwargs)


# the generic names, where code written for probes looks for them
PreparedProbe = PreparedUnit
probe_provenance = unit_provenance

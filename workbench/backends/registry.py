"""The backend registry: ``wb.load_model(spec, backend=NAME)`` looks NAME up here.

A backend registers a loader (``loader(spec, **options) -> Model``) and the capabilities it
has, so error messages can name a backend that can do what another cannot without loading
anything. Third-party backends register the same way:

>>> from workbench.backends import register_backend, backend_names
>>> "hf" in backend_names()
True
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from workbench.errors import InvalidInputError

# what a backend can be asked for (the table in workbench.backends.base says what each means);
# here, below the base class, because registering a backend checks its capabilities against them
CAPABILITIES = ("token_logprobs", "token_moments", "masked_logprobs", "generate", "embed", "hooks", "capture", "steer")


@dataclass(frozen=True)
class BackendEntry:
    name: str
    loader: Callable | str          # a callable, or "module:function" imported on first use
    capabilities: frozenset
    description: str = ""
    install: str = ""               # how to get its optional dependencies

    def load(self, spec, **options):
        loader = self.loader
        if isinstance(loader, str):
            module, func = loader.split(":")
            loader = getattr(importlib.import_module(module), func)
        return loader(spec, **options)


_BACKENDS: dict[str, BackendEntry] = {}


def register_backend(name: str, loader, capabilities, description: str = "", install: str = "",
                     replace: bool = False) -> BackendEntry:
    """Make ``wb.load_model(spec, backend=name)`` call ``loader(spec, **options)``."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"a backend name must be a non-empty string, got {name!r}")
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise InvalidInputError(f"unknown capabilities {unknown}; choose from {list(CAPABILITIES)}")
    if name in _BACKENDS and not replace:
        raise InvalidInputError(f"a backend named {name!r} is already registered; pass replace=True to replace it")
    entry = BackendEntry(name, loader, frozenset(capabilities), description, install)
    _BACKENDS[name] = entry
    return entry


def unregister_backend(name: str) -> None:
    """Remove a backend registered with :func:`register_backend` (a test's or a plugin's)."""
    if name not in _BACKENDS:
        raise InvalidInputError(f"unknown backend {name!r}; registered backends: {backend_names()}")
    del _BACKENDS[name]


def get_backend(name: str) -> BackendEntry:
    if name not in _BACKENDS:
        raise InvalidInputError(f"unknown backend {name!r}; registered backends: {backend_names()}")
    return _BACKENDS[name]


def backend_names() -> list[str]:
    return list(_BACKENDS)


def backends_with(capability: str) -> list[str]:
    return [n for n, e in _BACKENDS.items() if capability in e.capabilities]

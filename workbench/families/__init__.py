"""Architecture families: one module per family, found by ``model_type`` (see
:mod:`workbench.families.base`). Add one with :func:`register_family`; ``docs/architecture.md``
has the recipe.
"""
from __future__ import annotations

import importlib
import pkgutil

from workbench.families.base import (GENERIC, Family, GraphSites, GraphTensor, HookPoint, Shape, families,
                                     family_for, heads, model_types,
                                     register_family, unregister_family)

_loaded = False


def _load_builtin() -> None:
    """Register every module of this package that defines ``FAMILY`` (in name order): adding a
    family is adding a file."""
    global _loaded
    if not _loaded:
        _loaded = True
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            if info.name != "base":
                family = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FAMILY", None)
                if family is not None:
                    register_family(family, replace=True)


__all__ = ["GENERIC", "Family", "GraphSites", "GraphTensor", "HookPoint", "Shape", "families", "family_for", "heads", "model_types",
           "register_family", "unregister_family"]

"""Backends: the engines that answer a model's requests (see :mod:`workbench.backends.base`).

``hf`` (the default, :mod:`workbench.backends.hf`) is the unmodified ``transformers`` model in
process. Add one with :func:`register_backend`; ``docs/architecture.md`` has the recipe.
"""
from workbench.backends.base import CAPABILITIES, Backend, require
from workbench.backends.hf import HFBackend
from workbench.backends.registry import (BackendEntry, backend_names, backends_with, get_backend,
                                         register_backend)

register_backend("hf", "workbench.models.loading:load_model", CAPABILITIES,
                 description="the unmodified transformers model in process (reference; every capability)")

__all__ = ["CAPABILITIES", "Backend", "BackendEntry", "HFBackend", "backend_names", "backends_with",
           "get_backend", "register_backend", "require"]

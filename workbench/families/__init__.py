"""Architecture families: one module per family, found by ``model_type`` (see
:mod:`workbench.families.base`). Add one with :func:`register_family` (a vision-language one built
with :func:`vision_language_family`); ``docs/architecture.md`` has the recipe.
"""
from __future__ import annotations

from workbench.families.base import (GENERIC, Family, GraphSites, GraphTensor, HookPoint, Shape, VisionParts, families,
                                     family_for, heads, model_types, register_family, unregister_family)
from workbench.families.vlm import vision_language_family

__all__ = ["GENERIC", "Family", "GraphSites", "GraphTensor", "HookPoint", "Shape", "VisionParts", "families",
           "family_for", "heads", "model_types",
           "register_family", "unregister_family", "vision_language_family"]

"""Module paths of the previous release, kept importable for one release with a DeprecationWarning.

The second redesign (issue 25) moved 27 modules (the runner's tasks into ``workbench.tasks``,
the audit's loose modules into ``workbench.audit``, vision into ``workbench.vision``, the
Hugging Face engine out of ``scoring`` into ``workbench.engine``, ...). Rather than leave 27
loose modules behind (which would undo the layering that ``lint-imports`` keeps), one import
hook serves each old dotted name as its new module: ``import workbench.bench.tasks`` warns
and hands back ``workbench.tasks.spec`` itself, so ``from workbench.bench.tasks import
load_task`` keeps working. Where an old module was split, its name maps to a small namespace
that looks each name up in the new modules in turn; a name that no longer exists raises
``AttributeError`` saying what replaced it.

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     from workbench.bench.tasks import load_task
>>> load_task.__module__
'workbench.tasks.spec'
>>> "workbench.tasks.spec" in str(caught[0].message)
True
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

# old dotted name -> its new module, or a tuple of modules for an old module that was split
# (names are looked up in them in order), and for a split module what replaced its removed names.
MOVED: dict[str, str | tuple[str, ...]] = {
    "workbench.attribution.vision": "workbench.vision.attribution",
    "workbench.attribution.vision_prompt": "workbench.vision.prompt",
    "workbench.audit_card": ("workbench.audit.card", "workbench.audit.notebook", "workbench.audit.command",
                             "workbench.audit.spec", "workbench.portable"),
    "workbench.audit_figures": "workbench.audit.figures",
    "workbench.audit_findings": "workbench.audit.findings",
    "workbench.audit_html": "workbench.audit.report",
    "workbench.audit_progress": "workbench.audit.progress",
    "workbench.bench.probe_cells": ("workbench.bench.cells",),
    "workbench.bench.ray_backend": "workbench.bench.executor_ray",
    "workbench.bench.scorers": ("workbench.tasks.kinds",),
    "workbench.bench.task_probe": "workbench.tasks.unit",
    "workbench.bench.taskdata": "workbench.tasks.data",
    "workbench.bench.tasks": ("workbench.tasks.spec", "workbench.tasks.kinds"),
    "workbench.bench.training_cells": ("workbench.training_data.checks", "workbench.bench.cells"),
    "workbench.bench.units": ("workbench.bench.view",),
    "workbench.inspect.probe": "workbench.inspect.linear_probe",
    "workbench.inspect.vision": "workbench.vision.capture",
    "workbench.inspect.vision_layout": "workbench.vision.layout",
    "workbench.models.vision": "workbench.vision.loading",
    "workbench.scoring.embedding": "workbench.engine.embedding",
    "workbench.scoring.engine": ("workbench.engine.causal", "workbench.engine.batches"),
    "workbench.scoring.generation": "workbench.engine.generation",
    "workbench.scoring.masked": "workbench.engine.masked",
    "workbench.scoring.padding": "workbench.engine.padding",
    "workbench.scoring.shared": "workbench.engine.shared",
    "workbench.scoring.vision": "workbench.vision.scoring",
    "workbench.vision.counterfactual": "workbench.vision.bias",
}

# names of a split module that were renamed: old name -> "module:new name" (looked up first)
RENAMED = {
    # the audit notebook's path; workbench.audit.spec.FLAGSHIP is now the flagship audit file
    "workbench.audit_card": {"FLAGSHIP": "workbench.audit.notebook:AUDIT_NOTEBOOK"},
}

# names of a split module that have no new home, and what to use instead
REPLACED = {
    "workbench.audit_card": {"VERSIONED": "workbench.versions.versions()"},
    "workbench.bench.probe_cells": dict.fromkeys(
        ("parse_probe", "probe_run_key", "probe_cell", "probe_finished", "run_probe_cell", "load_probe_result"),
        "workbench.bench.cells (one cell type for every unit: run_unit_cell, identity, finished, rebuild)"),
    "workbench.bench.scorers": dict.fromkeys(
        ("SCORERS", "PRIMARY"), "workbench.tasks.kinds.task_kind(name).score / .primary"),
    "workbench.bench.training_cells": dict.fromkeys(
        ("training_cell", "training_finished", "run_training_cell", "load_training_result", "table_rows"),
        "workbench.bench.cells (one cell type for every unit: run_unit_cell, identity, finished, rebuild)"),
    "workbench.bench.units": dict.fromkeys(
        ("TaskView", "ProbeView", "TrainingView", "attach"), "workbench.bench.view (CellView, view)"),
}


def new_home(old: str) -> str:
    """Where an old module path lives now, as the DeprecationWarning names it."""
    target = MOVED[old]
    return target if isinstance(target, str) else " and ".join(target)


def _namespace(old: str, modules: tuple[str, ...]) -> types.ModuleType:
    """A module named ``old`` whose names are those of ``modules``, looked up in order."""
    namespace = types.ModuleType(old, f"Moved: this module's names now live in {new_home(old)}.")
    replaced, renamed = REPLACED.get(old, {}), RENAMED.get(old, {})

    def __getattr__(name: str):
        if name in renamed:
            module_name, new_name = renamed[name].split(":")
            return getattr(importlib.import_module(module_name), new_name)
        for module_name in modules:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                return getattr(module, name)
        if name in replaced:
            raise AttributeError(f"{old}.{name} was removed in the redesign; use {replaced[name]}")
        raise AttributeError(f"module {old!r} (moved to {new_home(old)}) has no attribute {name!r}")

    namespace.__getattr__ = __getattr__
    return namespace


class _MovedLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None  # a plain placeholder; exec_module puts the real module in its place

    def exec_module(self, module) -> None:
        old = module.__name__
        warnings.warn(f"{old} moved to {new_home(old)}; import it from there "
                      "(the old path goes away in the next release)", DeprecationWarning, stacklevel=2)
        target = MOVED[old]
        new = importlib.import_module(target) if isinstance(target, str) else _namespace(old, target)
        # the import system hands back whatever sys.modules holds once exec_module returns
        sys.modules[old] = new


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Answers only the old names in :data:`MOVED`; every other import passes it by."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader())


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once), so no stale copy elsewhere answers."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())

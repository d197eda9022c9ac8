"""Open Model Workbench: audit open language models transparently.

The public API is flat (``import workbench as wb``) and loaded lazily, so ``import workbench``
is cheap and a notebook only pays for what it uses.

>>> import workbench as wb
>>> model = wb.load_model("smollm2-135m-instruct")              # doctest: +SKIP
>>> wb.loglikelihood(model, [("The capital of France is", " Paris")])  # doctest: +SKIP
"""
from __future__ import annotations

import importlib

from workbench import _moved
from workbench._version import __version__

_moved.install()  # old module paths of the previous release: importable, with a DeprecationWarning

# public name -> "module:attribute". Each capability lives in its own sub-package;
# this table is the one place that says what ``wb.<name>`` means.
_API = {
    # models (foundation)
    "load_model": "workbench.models.loading:load_model",
    "list_models": "workbench.models.registry:list_models",
    "estimate_memory": "workbench.models.memory:estimate_memory",
    "Model": "workbench.models.model:Model",
    # extension points: backends, architecture families, probes (docs/architecture.md)
    "register_backend": "workbench.backends.registry:register_backend",
    "register_family": "workbench.families.base:register_family",
    "register_probe": "workbench.probes.api:register_probe",
    # scoring engine (foundation)
    "loglikelihood": "workbench.scoring.api:loglikelihood",
    "perplexity": "workbench.scoring.api:perplexity",
    "pseudo_loglikelihood": "workbench.scoring.api:pseudo_loglikelihood",
    "generate": "workbench.scoring.api:generate",
    "embed": "workbench.scoring.api:embed",
    "fill_mask": "workbench.scoring.api:fill_mask",
    # activation inspection
    "capture": "workbench.inspect.capture:capture",
    "logit_lens": "workbench.inspect.lens:logit_lens",
    # one network through several backends or precisions: where does deployment change it?
    "conformance": "workbench.inspect.conformance:conformance",
    # one token display (␣ for a space) for tables and plots
    "show_token": "workbench.display:show_token",
    "readable": "workbench.display:readable",
    # attribution and mechanistic audits
    "attribute": "workbench.attribution.api:attribute",
    "mechanistic_audit": "workbench.attribution.audit:mechanistic_audit",
    # bias probes and statistics
    "run_probe": "workbench.probes.api:run_probe",
    "list_probes": "workbench.probes.api:list_probes",
    "compare": "workbench.stats.compare:compare",
    "multiverse": "workbench.probes.multiverse:multiverse",
    # benchmark runner
    "run": "workbench.bench.runner:run",
    "load_task": "workbench.tasks.spec:load_task",
    "register_task_kind": "workbench.tasks.kinds:register_task_kind",
    "register_check": "workbench.training_data.checks:register_check",
    "check_unit": "workbench.training_data.checks:check_unit",
    "open_store": "workbench.bench.store:open_store",
    # how the model was made: training data and contamination
    "membership": "workbench.training_data.membership:membership",
    "contamination": "workbench.training_data.contamination:contamination",
    "dataset_inference": "workbench.training_data.dataset_inference:dataset_inference",
    # how the model was made: documentation, transparency indicators, lineage, ML-BOM
    "documentation": "workbench.provenance_audit.record:documentation",
    "lineage": "workbench.provenance_audit.lineage:lineage",
}
_SUBMODULES = {"inspect", "scoring", "models", "probes", "tasks", "units", "stats", "bench", "attribution", "testing",
               "errors", "widgets", "training_data", "backends", "families", "provenance_audit", "vision",
               "audit"}  # audit: a callable package, wb.audit(models=[...])

__all__ = sorted(_API) + sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"workbench.{name}")
    if name in _API:
        module_name, attr = _API[name].split(":")
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value  # cache: later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'workbench' has no attribute {name!r}")


def __dir__():
    return __all__

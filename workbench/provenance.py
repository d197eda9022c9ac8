"""One provenance record for every result: which model (name, fingerprint, state, backend),
which software, then what each result adds (data hash, options, seeds, timings).

Every result's ``provenance`` starts with :func:`record`, so the same keys mean the same thing
across scoring frames (``df.attrs["provenance"]``), captures, lens, attention, attribution,
probes, tasks and audits:

>>> from workbench.testing import tiny_model
>>> sorted(record(tiny_model("gpt2"), options={"k": 5}))
['backend', 'model', 'options', 'versions']
>>> sorted(model_record(tiny_model("gpt2")))
['architecture', 'backend', 'fingerprint_id', 'kind', 'licence', 'name', 'state_id']
"""
from __future__ import annotations

from workbench.versions import versions


def model_record(model, full: bool = False) -> dict:
    """Who computed a number. ``full``: also the whole fingerprint and active interventions."""
    out = {"name": model.name, "kind": model.kind, "fingerprint_id": model.fingerprint_id,
           "state_id": model.state_id, "backend": model.backend.describe(), "licence": model.licence,
           "architecture": model.architecture}
    if full:
        out.update(fingerprint=model.fingerprint, interventions=list(model.interventions))
    return out


def record(model, **fields) -> dict:
    """The common head of a provenance dict (``model``, ``backend``, ``versions``) plus ``fields``."""
    return {"model": model_record(model), "backend": model.backend.name, "versions": versions(), **fields}


def model_name(provenance: dict) -> str:
    """The model's name from a provenance dict (records written before ``model`` was a dict
    held the name itself)."""
    m = provenance.get("model")
    return m.get("name", "") if isinstance(m, dict) else str(m or "")

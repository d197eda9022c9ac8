"""The documentation record as a CycloneDX 1.6 ML-BOM (JSON), built with ``cyclonedx-python-lib``.

The BOM's subject (``metadata.component``) is the model, of type ``machine-learning-model``, with
its licences, the supplier it names and the workbench fingerprint as properties; its components
are the weight files (with their SHA-256), the model card and licence files (hashed), the declared
training data sets (type ``data``) and base models. The library has no model-card object yet, so
the ``modelCard`` (architecture, task, data set references, declared evaluation results, uses and
limitations) is added to the library's JSON; :func:`validate` checks the whole document against
the CycloneDX 1.6 JSON schema that the library ships (offline).
"""
from __future__ import annotations

import json

from workbench.errors import WorkbenchError
from workbench.provenance_audit.licences import spdx_id


def _licences(doc):
    from cyclonedx.model.license import DisjunctiveLicense
    out, seen = [], set()
    for value in doc.declared("licence"):
        key = spdx_id(value) or str(value)
        if key in seen:
            continue
        seen.add(key)
        # an SPDX id goes in "id"; LicenseRef- names and free text are not in the schema's id list
        out.append(DisjunctiveLicense(id=key) if spdx_id(value) and not key.startswith("LicenseRef-")
                   else DisjunctiveLicense(name=key))
    return out


def _hashes(sha256: str):
    from cyclonedx.model import HashAlgorithm, HashType
    return [HashType(alg=HashAlgorithm.SHA_256, content=sha256)]


def _first(doc, name):
    values = doc.declared(name)
    return values[0] if values else None


def to_cyclonedx(doc) -> dict:
    """The CycloneDX 1.6 ML-BOM of a :class:`~workbench.provenance_audit.record.Documentation`."""
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.contact import OrganizationalEntity
    from cyclonedx.output.json import JsonV1Dot6

    info = doc.model_info
    org = _first(doc, "organisation")
    version = _first(doc, "version") or _first(doc, "finetune")
    weights = [f for f in doc.files if f["role"] == "weights"]
    props = [Property(name="workbench:fingerprint_id", value=info["fingerprint_id"]),
             Property(name="workbench:source", value=str(info["source"])),
             Property(name="workbench:kind", value=info["kind"])]
    for k, (v, _) in doc.measured.items():
        props.append(Property(name=f"workbench:measured:{k}", value=str(v)))
    model = Component(name=str(_first(doc, "name") or info["name"]), type=ComponentType.MACHINE_LEARNING_MODEL,
                      bom_ref="model", version=str(version) if version else None,
                      supplier=OrganizationalEntity(name=str(org)) if org else None,
                      description=str(_first(doc, "description")) if _first(doc, "description") else None,
                      licenses=_licences(doc), properties=props,
                      hashes=_hashes(weights[0]["sha256"]) if len(weights) == 1 else None)
    parts = []
    for i, f in enumerate(doc.files):
        parts.append(Component(name=f["name"], type=ComponentType.FILE, bom_ref=f"file-{i}", hashes=_hashes(f["sha256"]),
                               description=f["role"]))
    datasets = []
    for i, name in enumerate(dict.fromkeys(n for v in doc.declared("training_datasets") for n in v)):
        datasets.append(Component(name=name, type=ComponentType.DATA, bom_ref=f"dataset-{i}",
                                  description="training data set declared in the model's documentation"))
    bases = [Component(name=name, type=ComponentType.MACHINE_LEARNING_MODEL, bom_ref=f"base-model-{i}",
                       description="base model declared in the model's documentation")
             for i, name in enumerate(dict.fromkeys(n for v in doc.declared("base_models") for n in v))]
    bom = Bom(components=parts + datasets + bases)
    bom.metadata.component = model
    bom.register_dependency(model, parts + datasets + bases)
    out = json.loads(JsonV1Dot6(bom).output_as_string())
    out["metadata"]["component"]["modelCard"] = _model_card(doc, datasets)
    return out


def _model_card(doc, datasets) -> dict:
    info = doc.model_info
    params = {"task": "text-generation" if info["kind"] == "causal" else
              ("fill-mask" if info["kind"] == "masked" else "feature-extraction"),
              "architectureFamily": info["architecture"]}
    if info.get("class_name"):
        params["modelArchitecture"] = info["class_name"]
    if datasets:
        params["datasets"] = [{"ref": d.bom_ref.value} for d in datasets]
    card = {"modelParameters": params}
    metrics = [{"type": str(e["metric"]), "value": str(e["value"]), "slice": str(e["task"])} for e in doc.evaluations]
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    considerations = {}
    if doc.declared("intended_use"):
        considerations["useCases"] = [str(v) for v in doc.declared("intended_use")]
    if doc.declared("limitations"):
        considerations["technicalLimitations"] = [str(v) for v in doc.declared("limitations")]
    if considerations:
        card["considerations"] = considerations
    card["properties"] = [{"name": f"workbench:indicator:{r.indicator}", "value": r.status}
                          for r in doc.indicators().itertuples()]
    return card


def validate(bom: dict) -> None:
    """Raise :class:`WorkbenchError` when ``bom`` is not valid against the CycloneDX 1.6 JSON schema."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    if error is not None:
        first = str(error).splitlines()[0]
        raise WorkbenchError(f"the ML-BOM is not valid CycloneDX 1.6: {first}")

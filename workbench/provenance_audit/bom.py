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


def _number(value) -> str:
    return f"{float(value):.6g}"


def with_results(bom: dict, results: list[dict]) -> dict:
    """``bom`` with measured results in its model card's ``quantitativeAnalysis.performanceMetrics``:
    each of ``results`` (``metric``, ``value``, ``ci_low``, ``ci_high``, ``n``, ``slice``) becomes
    one metric with its ``confidenceInterval`` (where it has one) and its ``n`` in the slice's name
    (the schema has no field for it). Declared results already there stay, before the measured ones.

    >>> bom = {"metadata": {"component": {"modelCard": {}}}}
    >>> card = with_results(bom, [{"metric": "pct_stereotype", "value": 61.2, "ci_low": 48.0, "ci_high": 73.1,
    ...                            "n": 60, "slice": "crows_pairs"}])["metadata"]["component"]["modelCard"]
    >>> card["quantitativeAnalysis"]["performanceMetrics"][0]["slice"]
    'crows_pairs: all items (n = 60), measured by Open Model Workbench'
    """
    out = json.loads(json.dumps(bom))
    card = out["metadata"]["component"].setdefault("modelCard", {})
    metrics = card.setdefault("quantitativeAnalysis", {}).setdefault("performanceMetrics", [])
    for r in results:
        if r.get("value") is None:
            continue
        entry = {"type": str(r["metric"]), "value": _number(r["value"]),
                 "slice": f"{r['slice']}: {r.get('category') or 'all'} items (n = {int(r['n'])}), measured by "
                          "Open Model Workbench"}
        if r.get("ci_low") is not None and r.get("ci_high") is not None:
            entry["confidenceInterval"] = {"lowerBound": _number(r["ci_low"]), "upperBound": _number(r["ci_high"])}
        metrics.append(entry)
    return out


def combine(boms: dict[str, dict]) -> dict:
    """One BOM holding several models' BOMs: each model (with its model card) and its parts as
    components, their bom-refs prefixed with the model's position, dependencies kept. The BOM's
    own subject is left out: the audit is not a component."""
    out = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": [], "dependencies": []}
    for i, (name, bom) in enumerate(boms.items()):
        prefix = f"m{i}-"
        refs = {}

        def renamed(component):
            component = json.loads(json.dumps(component))
            if "bom-ref" in component:
                refs[component["bom-ref"]] = prefix + component["bom-ref"]
                component["bom-ref"] = refs[component["bom-ref"]]
            return component
        model = renamed(bom["metadata"]["component"])
        model.setdefault("properties", []).append({"name": "workbench:audit_label", "value": name})
        parts = [renamed(c) for c in bom.get("components", [])]
        model["components"] = parts
        out["components"].append(model)
        for dep in bom.get("dependencies", []):
            out["dependencies"].append({"ref": refs.get(dep["ref"], prefix + dep["ref"]),
                                        **({"dependsOn": [refs.get(d, prefix + d) for d in dep["dependsOn"]]}
                                           if dep.get("dependsOn") else {})})
        if "metadata" in bom and "timestamp" in bom["metadata"]:
            out.setdefault("metadata", {"timestamp": bom["metadata"]["timestamp"]})
    return out

"""How a model was made, as its makers declare it and as far as that can be checked offline:
the documentation record (:func:`documentation`), transparency indicators, claims against
measurements, lineage between two models (:func:`lineage`) and a CycloneDX 1.6 ML-BOM.

>>> from workbench.provenance_audit import documentation, lineage
"""
from workbench.provenance_audit.claims import claims_table
from workbench.provenance_audit.lineage import Lineage, lineage
from workbench.provenance_audit.record import Documentation, documentation, fmti_not_checkable

__all__ = ["Documentation", "Lineage", "claims_table", "documentation", "fmti_not_checkable", "lineage"]

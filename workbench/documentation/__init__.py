"""How a model was made, as its makers declare it and as far as that can be checked offline:
the documentation record (:func:`documentation`), transparency indicators, claims against
measurements, lineage between two models (:func:`lineage`) and a CycloneDX 1.6 ML-BOM.

>>> from workbench.documentation import documentation, lineage
"""
from workbench.documentation.claims import claims_table
from workbench.documentation.lineage import Lineage, lineage
from workbench.documentation.record import Documentation, documentation, fmti_not_checkable

__all__ = ["Documentation", "Lineage", "claims_table", "documentation", "fmti_not_checkable", "lineage"]

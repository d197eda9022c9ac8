"""Token attribution (captum) and mechanistic bias audits.

>>> import workbench as wb
>>> df = wb.attribute(model, "The doctor said that", " she", method="feature_ablation")  # doctest: +SKIP
>>> df          # highlighted tokens + sanity checks in JupyterLab; a DataFrame everywhere else
"""
from workbench.attribution.api import attribute
from workbench.attribution.result import AttributionFrame

__all__ = ["attribute", "AttributionFrame"]

"""Token attribution (captum) and mechanistic bias audits.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> df = wb.attribute(tiny_model("gpt2"), "The doctor said that", " she", method="feature_ablation")
>>> list(df.columns[:4])  # shown as highlighted tokens + sanity checks in JupyterLab
['position', 'token', 'token_id', 'attribution']
"""
from workbench.attribution.api import attribute
from workbench.attribution.result import AttributionFrame

__all__ = ["attribute", "AttributionFrame"]

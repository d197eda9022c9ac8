"""ipywidgets explorers for JupyterLab. Everything renders from inline HTML/CSS produced here:
no scripts, fonts or styles from a CDN, so they work offline and in exported HTML (as static
snapshots of the current view).

>>> from workbench.testing import tiny_model
>>> from workbench.widgets import logit_lens_explorer
>>> w = logit_lens_explorer(tiny_model("llama"), "The cat sat on the")   # display(w) in a notebook
"""
from workbench.widgets.attention import attention_explorer
from workbench.widgets.lens import logit_lens_explorer

__all__ = ["attention_explorer", "logit_lens_explorer"]

"""Activation inspection on the unmodified Hugging Face model: capture, logit lens, attention,
ablation, patching, steering and representation similarity, all through forward hooks.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> wb.inspect.verify(m).ok
True
"""
from workbench.inspect.cache import ActivationCache
from workbench.inspect.capture import capture
from workbench.inspect.sites import EDITABLE, SITES, adapter
from workbench.inspect.verify import VerifyResult, verify

__all__ = ["ActivationCache", "EDITABLE", "SITES", "VerifyResult", "adapter", "capture", "verify"]

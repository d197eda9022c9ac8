"""Vision-language models, in one place. Each module sits in the layer of what it does (the
import-linter contracts in ``pyproject.toml`` place each one; ``docs/vision_language.md``):

- :mod:`~workbench.vision.loading`: load a vision-language model and its processor (models layer);
- :mod:`~workbench.vision.scoring`: log-likelihoods and generation with images (scoring layer);
- :mod:`~workbench.vision.capture`, :mod:`~workbench.vision.layout`: the vision tower's and the
  projector's sites, image attention, the image logit lens, ``verify_vision`` (inspection layer);
- :mod:`~workbench.vision.attribution`, :mod:`~workbench.vision.prompt`: attribution over image
  patches and prompt tokens (attribution layer);
- :mod:`~workbench.vision.bias`: the one counterfactual image-bias analysis, behind both doors
  (:func:`image_bias` here and the ``image_counterfactual`` probe).

What a vision-language family adds to its text family is typed
(:class:`workbench.families.VisionParts`); a new family is one file (``families/vlm.py``).
Loaded lazily: ``import workbench`` stays cheap, and a lower layer importing
``workbench.vision.loading`` does not pull in the layers above it.

>>> import workbench as wb
>>> callable(wb.vision.image_bias)
True
"""
from __future__ import annotations

import importlib

# public name -> module of this package
_API = {"ImageBiasResult": "bias", "image_bias": "bias", "load_pairs": "bias", "load_social_counterfactuals": "bias",
        "synthetic_counterfactuals": "bias", "verify_vision": "capture", "image_attention": "capture",
        "image_logit_lens": "capture", "edit_image_tokens": "capture", "ImageAttention": "capture"}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'workbench.vision' has no attribute {name!r}")


def __dir__():
    return __all__ + ["attribution", "bias", "capture", "layout", "loading", "prompt", "scoring"]

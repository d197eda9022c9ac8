"""What a vision-language family adds to a text family: where its vision tower, projector and
language model live, and how its tiny test model is built. Used by ``llava.py``,
``paligemma.py``, ``gemma3_vl.py``; this module defines no family itself.

Site scheme (one scheme for every vision-language family; see :mod:`workbench.vision.capture`):

* the language model's sites keep their text names (``resid_post``, ``attn_pattern``,
  ``logits``, ...): a vision-language model *is* a language model whose input embeddings hold
  image features at the image-token positions;
* ``vision.embed``, ``vision.resid_pre`` / ``vision.resid_post`` (per vision layer) are the
  vision tower's patch embeddings and residual stream, ``[images, patches, d_vision]``;
* ``projector`` is the projector's output, the image features that replace the image tokens'
  embeddings, ``[images, image_tokens, d_text]`` (what image ablation and patching edit).

Tiling families (Idefics3: ``vision.tiled``) give each tile of an image one row of the vision
sites and of ``projector`` ("images" above are tiles there; see ``idefics3.py``). Families with
``vision.flat_vision`` (Qwen2-VL) run all images' patches as one sequence: their vision sites and
``projector`` are ``[patches or tokens of all images, d]`` (``qwen2_vl.py``).
"""
from __future__ import annotations

from dataclasses import replace

from workbench.families.base import Family, Shape, VisionParts


def language_model_sites(text_sites, where: str = "language_model."):
    """A text family's ``sites`` re-rooted at the language model inside the VLM."""
    def sites(s: Shape) -> dict:
        return text_sites(replace(s, base=s.base + where))
    return sites


def vision_language_family(name: str, model_types: tuple, text: Family, *, tiny=None, notes: str = "",
                           vision_layers: str = "vision_tower.encoder.layers",
                           vision_embed: str = "vision_tower.embeddings",
                           projector: str = "multi_modal_projector", where: str = "language_model.",
                           prefix_lm: bool = False, tiled: bool = False, flat_vision: bool = False,
                           load_processor=None, image_marker: str | None = None) -> Family:
    """A :class:`Family` whose language-model sites come from ``text`` (re-rooted at ``where``)
    and whose ``vision`` (:class:`~workbench.families.base.VisionParts`) says where the vision
    tower and projector are and how the family's tiny model is built (``tiny(make_tokenizer,
    seed) -> (hf, processor)``); the other keywords are the fields of ``VisionParts``.
    ``tiny_config`` stays None: the shared text tests build causal LMs, so VLMs have their own
    tiny models (``workbench.testing.tiny_vlm``).

    A new vision-language family is one file, ``workbench/families/<name>.py``, ending in
    ``FAMILY = vision_language_family(...)`` (see ``llava.py``; ``docs/vision_language.md``)."""
    return Family(name=name, model_types=model_types, layers=where + text.layers,
                  sites=language_model_sites(text.sites, where), final_norm=where + (text.final_norm or ""),
                  pre_norm=text.pre_norm, head=text.head, attn_out_normed=text.attn_out_normed, notes=notes,
                  vision=VisionParts(layers=vision_layers, embed=vision_embed, projector=projector, tiny=tiny,
                                     prefix_lm=prefix_lm, tiled=tiled, flat_vision=flat_vision,
                                     load_processor=load_processor, image_marker=image_marker))


def tiny_text(**extra):
    """The language model part of every tiny VLM: 2 layers, width 32, 4 heads (2 KV heads)."""
    return dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
                pad_token_id=1, **extra)


def tiny_vision(**extra):
    """The vision tower of every tiny VLM: 2 layers, width 32, 32x32 images in 8x8 patches (4x4 grid)."""
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                image_size=32, patch_size=8, **extra)

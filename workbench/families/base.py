"""What an architecture family declares, and the registry that finds it by ``model_type``.

A family is everything the workbench needs to know about one architecture's Hugging Face
modules, in one declarative object: where the layers are, which module each activation site
(:mod:`workbench.inspect.sites`) hooks, whether blocks are pre- or post-norm, how hidden states
become logits (head, final soft-capping), and a tiny config for tests. Scoring, inspection,
verification and the test suite read it; nothing else names an architecture.

Scoring never needs a family: a causal or masked LM of any architecture scores through the
generic head (:data:`GENERIC`). Inspection needs one.

>>> from workbench.families import family_for
>>> family_for("qwen2").name, family_for("qwen2").layers
('llama', 'layers')
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from workbench.errors import InvalidInputError, UnsupportedSiteError


@dataclass(frozen=True)
class HookPoint:
    """Where a site lives: ``module`` path; ``how`` is "out" (module output, first element of
    a tuple), "in" (first input) or "weights" (second element of the output tuple);
    ``view`` reshapes/slices the raw tensor into the site's documented shape."""

    module: str
    how: str
    view: Callable[[torch.Tensor], torch.Tensor] | None = None
    seq_dim: int = 1


def heads(n_heads: int, head_dim: int, part: int | None = None, parts: int = 3, fused: str = "concat"):
    """A view from [b, s, n_heads*head_dim] (or a fused qkv tensor) to [b, s, n_heads, head_dim]."""
    def view(t):
        if part is None:
            return t.unflatten(-1, (n_heads, head_dim))
        if fused == "concat":           # GPT-2: [q | k | v] each n_heads*head_dim wide
            return t.chunk(parts, dim=-1)[part].unflatten(-1, (n_heads, head_dim))
        # GPT-NeoX: per head [q_h | k_h | v_h]
        return t.unflatten(-1, (n_heads, parts * head_dim)).chunk(parts, dim=-1)[part]
    return view


@dataclass(frozen=True)
class Shape:
    """What a family's ``sites`` function is given: the layer path template (``"...{L}"``),
    the base-model prefix, the head geometry and the text config."""

    layer: str
    base: str
    n_heads: int
    n_kv_heads: int
    head_dim: int
    config: object


def softcapped(config, logits: torch.Tensor) -> torch.Tensor:
    """Gemma-style final soft-capping, where the config asks for it."""
    cfg = getattr(config, "text_config", config)
    cap = getattr(cfg, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def causal_head(hf, hidden: torch.Tensor) -> torch.Tensor:
    """The output embeddings on final-norm outputs, soft-capped where the config says."""
    return softcapped(hf.config, hf.get_output_embeddings()(hidden))


def masked_head(hf, hidden: torch.Tensor) -> torch.Tensor:
    """A masked LM's prediction head found by its usual attribute (BERT's ``cls``, RoBERTa's
    ``lm_head``), else the output embeddings."""
    for name in ("cls", "lm_head"):
        head = getattr(hf, name, None)
        if head is not None:
            return head(hidden)
    return causal_head(hf, hidden)


@dataclass(frozen=True)
class VisionParts:
    """What a vision-language family adds to its text family (module paths relative to the base
    model): the vision tower's ``layers`` and ``embed``dings, the ``projector``; ``tiny(
    make_tokenizer, seed) -> (hf, processor)`` builds its tiny test model; ``prefix_lm``: the
    prompt is attended bidirectionally, so a scored continuation must be the processor's suffix
    (PaliGemma); ``tiled``: the processor cuts an image into tiles, each one row of the projector's
    output (Idefics3); ``flat_vision``: all images' patches run as one sequence, the vision sites
    and the projector are ``[all patches, d]`` (Qwen2-VL); ``load_processor(folder,
    trust_remote_code)`` instead of ``AutoProcessor``; ``image_marker``: the text that stands for
    one image in a raw prompt."""

    layers: str = "vision_tower.encoder.layers"
    embed: str = "vision_tower.embeddings"
    projector: str = "multi_modal_projector"
    tiny: Callable | None = None
    prefix_lm: bool = False
    tiled: bool = False
    flat_vision: bool = False
    load_processor: Callable | None = None
    image_marker: str | None = None


@dataclass(frozen=True)
class GraphTensor:
    """One tensor of llama.cpp's compute graph: its ``name`` (``{L}`` stands for the layer) and,
    where llama.cpp gives one name to several nodes (``Qcur-L`` names the projection, its reshape
    and its rotation), the ``op`` of the one meant (``None``: the first node of that name in the
    graph). ``layout`` maps its data to the site's shape: ``"rows"`` (one row per token),
    ``"heads"`` (``[tokens, heads, head_dim]``), ``"heads_interleaved"`` (the same, with each
    head's dimensions in llama.cpp's interleaved rotary order, put back in Hugging Face's) or
    ``"pattern"`` (``[heads, queries, keys]``)."""

    name: str
    op: str | None = None
    layout: str = "rows"


@dataclass(frozen=True)
class GraphSites:
    """Where the activation sites are in the graph one llama.cpp builder makes (``arch``: the
    GGUF's ``general.architecture``, e.g. ``"llama"``, ``"gemma3"``): ``tensors`` maps a site to
    its :class:`GraphTensor`, or to a text saying why the graph has no such tensor.
    ``resid_pre`` is not listed: it is ``embed`` at layer 0 and ``resid_post`` of the layer
    before elsewhere. Read by :class:`workbench.inspect.sites.GraphAdapter`."""

    arch: str
    tensors: dict


@dataclass(frozen=True)
class Family:
    """One architecture family. ``sites(shape) -> {site: HookPoint or why-not text}`` covers the
    sites besides resid_pre/resid_post/logits (which every family has: the layer's input and
    output, the model's output). ``head(hf, hidden)`` maps the base model's last hidden states
    to logits; ``final_norm`` names the module the logit lens applies before it (``None`` for
    post-norm encoders, whose last layer ends normalised). ``tiny_config(model_type,
    vocab_size, **common)`` builds a 2-layer, width-32 config for the shared tests."""

    name: str
    model_types: tuple
    layers: str
    sites: Callable[[Shape], dict]
    final_norm: str | None = None
    pre_norm: bool = True
    head: Callable = causal_head
    tiny_config: Callable | None = None
    masked: bool = False            # its tiny test model is a masked LM (wordpiece tokenizer)
    # for direct logit attribution: GPT-2 adds learned positions after the ``embed`` site;
    # Gemma 3 normalises the attention output (after o_proj) before adding it
    positions_after_embed: bool = False
    attn_out_normed: bool = False
    # the same sites in llama.cpp's compute graph, one entry per llama.cpp architecture whose
    # graph builds this family's network (backend="llama.cpp"; empty: not inspectable there)
    llamacpp: tuple = ()
    notes: str = ""
    # a vision-language family: where its vision tower, projector and language model live, and how
    # its tiny test model is built (families/vlm.py: vision_language_family); None for text families
    vision: VisionParts | None = None

    def graph_sites(self, arch: str) -> GraphSites | None:
        """The :class:`GraphSites` of llama.cpp architecture ``arch``, or None."""
        return next((g for g in self.llamacpp if g.arch == arch), None)

    def unembed(self, hf, hidden: torch.Tensor, final_norm_module=None) -> torch.Tensor:
        """Residual stream -> logits: final norm (pre-norm families) then the head."""
        if final_norm_module is not None:
            hidden = final_norm_module(hidden)
        return self.head(hf, hidden)


GENERIC = Family(name="generic", model_types=(), layers="", sites=lambda shape: {}, head=causal_head,
                 notes="any architecture without a family: scoring only (no activation sites)")

_FAMILIES: dict[str, Family] = {}      # family name -> Family
_BY_TYPE: dict[str, Family] = {}       # model_type -> Family
_builtin_loaded = False


def _load_builtin() -> None:
    """Register every module of this package that defines ``FAMILY`` (in name order), the first
    time the registry is asked: adding a family is adding a file. The modules are found in this
    file's folder and imported by name, here and not at the top, because each of them imports this
    module."""
    global _builtin_loaded
    if not _builtin_loaded:
        _builtin_loaded = True
        package = __name__.rpartition(".")[0]
        for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
            if info.name != "base":
                family = getattr(importlib.import_module(f"{package}.{info.name}"), "FAMILY", None)
                if family is not None:
                    register_family(family, replace=True)


def register_family(family: Family, replace: bool = False) -> Family:
    """Make ``family`` the one the workbench uses for each of its ``model_types``."""
    _load_builtin()  # built-ins first, so a registration is never overwritten by them later
    if not isinstance(family, Family):
        raise InvalidInputError(f"register_family takes a workbench.families.Family, got {type(family).__name__}")
    taken = [t for t in family.model_types if t in _BY_TYPE and _BY_TYPE[t].name != family.name]
    if (family.name in _FAMILIES or taken) and not replace:
        raise InvalidInputError(f"family {family.name!r} (model types {taken or list(family.model_types)}) is "
                                "already registered; pass replace=True to replace it")
    _FAMILIES[family.name] = family
    for t in family.model_types:
        _BY_TYPE[t] = family
    return family


def unregister_family(name: str) -> None:
    """Remove a registered family (its model types then have no activation sites)."""
    family = _FAMILIES.pop(name, None)
    if family is None:
        raise InvalidInputError(f"no family named {name!r} is registered; registered: {sorted(_FAMILIES)}")
    for t in family.model_types:
        if _BY_TYPE.get(t) is family:
            del _BY_TYPE[t]


def family_for(model_type: str, default: Family | None = None) -> Family:
    """The family registered for ``model_type``; ``default`` (or an UnsupportedSiteError) if none."""
    _load_builtin()
    if model_type in _BY_TYPE:
        return _BY_TYPE[model_type]
    if default is not None:
        return default
    raise UnsupportedSiteError(
        f"architecture {model_type!r} has no activation-site adapter (no architecture family is registered for it); supported: "
        f"{sorted(_BY_TYPE)}. Scoring still works. To inspect it, register a family "
        "(docs/architecture.md, 'Add an architecture family') or use hooks on model.hf directly.")


def families() -> dict[str, Family]:
    _load_builtin()
    return dict(_FAMILIES)


def model_types() -> list[str]:
    _load_builtin()
    return sorted(_BY_TYPE)

"""Inspection of vision-language models: capture with images, the vision sites, verification.

Site scheme (documented once in :mod:`workbench.families.vlm`): the language model's sites keep
their text names (``resid_post``, ``attn_pattern``, ``logits``, ... at every position, image
tokens included); ``vision.embed`` / ``vision.resid_pre`` / ``vision.resid_post`` are the
vision tower's patch embeddings and residual stream ``[images, patches, d_vision]``
(``vision_layers`` picks its layers); ``projector`` is the image features that replace the
image tokens' embeddings ``[images, image_tokens, d_text]``.

>>> import workbench as wb
>>> from workbench.testing import tiny_vlm, tiny_image
>>> vlm = tiny_vlm("llava")
>>> cache = wb.capture(vlm, ["Describe the picture."], images=[[tiny_image(0)]], sites=["resid_post", "projector"])
>>> cache["projector"].shape[1] == int(cache.image_tokens.sum())
True
"""
from __future__ import annotations

import contextlib

import torch

from workbench.errors import InvalidInputError, UnsupportedSiteError
from workbench.families import HookPoint
from workbench.inspect.cache import ActivationCache
from workbench.inspect.sites import adapter

VISION_LAYER_SITES = ("vision.resid_pre", "vision.resid_post")
VISION_MODEL_SITES = ("vision.embed", "projector")
VISION_SITES = ("vision.embed",) + VISION_LAYER_SITES + ("projector",)


class VisionParts:
    """Module paths of a vision-language model's vision tower and projector, from its family."""

    def __init__(self, model):
        ad = adapter(model)
        extra = ad.family.extra
        if not extra.get("vision_language"):
            raise UnsupportedSiteError(f"{model.architecture} is not a vision-language family: it has no vision "
                                       f"sites {list(VISION_SITES)}")
        self.model, self.ad = model, ad
        self.layers_path = self._find(ad.base + extra["vision_layers"])
        self.embed_path = self._find(ad.base + extra["vision_embed"])
        self.projector_path = self._find(ad.base + extra["projector"])
        self.n_layers = len(ad.module(self.layers_path))

    def _find(self, path: str) -> str:
        """``path``, or its transformers 4 spelling (CLIP/SigLIP towers wrapped in ``vision_model``)."""
        for p in (path, path.replace("vision_tower.", "vision_tower.vision_model.")):
            try:
                self.ad.module(p)
                return p
            except AttributeError:
                pass
        raise UnsupportedSiteError(f"{self.model.architecture}: no module {path!r}; the family's vision paths do "
                                   "not match this model (a newer or older transformers?)")

    def hook_point(self, site: str, layer: int | None) -> HookPoint:
        if site == "vision.embed":
            return HookPoint(self.embed_path, "out")
        if site == "projector":
            return HookPoint(self.projector_path, "out")
        if site not in VISION_LAYER_SITES:
            raise UnsupportedSiteError(f"unknown vision site {site!r}; vision sites are {list(VISION_SITES)}")
        if not isinstance(layer, int) or not -self.n_layers <= layer < self.n_layers:
            raise UnsupportedSiteError(f"vision layer {layer!r} out of range: the vision tower has {self.n_layers} layers")
        return HookPoint(f"{self.layers_path}.{layer % self.n_layers}", "in" if site.endswith("pre") else "out")

    def keys(self, sites, vision_layers) -> list:
        layers = range(self.n_layers) if vision_layers is None else (
            [vision_layers] if isinstance(vision_layers, int) else list(vision_layers))
        keys = []
        for s in sites:
            if s in VISION_MODEL_SITES:
                keys.append((s, None))
            else:
                for layer in layers:
                    self.hook_point(s, layer)
                    keys.append((s, layer % self.n_layers))
        return keys

    def add_hook(self, site, layer, fn):
        """Call ``fn(tensor)`` (read) or replace the value by ``fn``'s non-None return (edit)."""
        hp = self.hook_point(site, layer)
        mod = self.ad.module(hp.module)
        if hp.how == "in":
            def pre(m, args, kwargs):
                x = args[0] if args else kwargs["hidden_states"]
                new = fn(x)
                if new is None:
                    return None
                return ((new,) + tuple(args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})
            return mod.register_forward_pre_hook(pre, with_kwargs=True)

        def post(m, args, kwargs, out):
            x = out[0] if isinstance(out, tuple) else getattr(out, "last_hidden_state", out)
            new = fn(x)
            if new is None:
                return None
            if isinstance(out, tuple):
                return (new,) + tuple(out[1:])
            if hasattr(out, "last_hidden_state"):
                out.last_hidden_state = new
                return out
            return new
        return mod.register_forward_hook(post, with_kwargs=True)


def image_token_id(model) -> int:
    cfg = model.config
    for attr in ("image_token_id", "image_token_index"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int):
            return v
    raise UnsupportedSiteError(f"{model.architecture}'s config names no image token id")


def prepare(model, texts, images, format: str = "raw"):
    """Texts + images -> (per-text encodings, prompts, checked images)."""
    from workbench.scoring.vision import check_images, check_vlm, process, render
    check_vlm(model, "capture")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise InvalidInputError("texts must be a non-empty list of non-empty strings")
    imgs = check_images(images, len(texts), "capture")
    prompts = [render(model, t, len(im), format) for t, im in zip(texts, imgs)]
    return process(model, prompts, imgs), prompts, imgs


def capture_images(model, texts, images, sites=("resid_post",), layers=None, positions=None, dtype=None,
                   batch_size: int = 8, vision_layers=None, format: str = "raw") -> ActivationCache:
    """``wb.capture`` with ``images=``: language-model and vision sites of a vision-language model
    on texts with their images. The cache's ``image_tokens`` ([texts, seq] bool) marks the image
    tokens' positions; ``cache["projector"]`` has one row per image, in order."""
    from workbench.inspect.capture import Recorder, SiteBlocks, _provenance, _str_tokens, resolve_positions, resolve_sites
    from workbench.inspect.hooks import attention_implementation, hooks_removed_after
    from workbench.scoring.padding import pad_id
    from workbench.scoring.vision import collate, forward, image_hash
    encs, prompts, imgs = prepare(model, texts, images, format)
    sites = [sites] if isinstance(sites, str) else list(sites)
    lm_sites = [s for s in sites if s not in VISION_SITES]
    vis_sites = [s for s in sites if s in VISION_SITES]
    if not sites:
        raise InvalidInputError("sites is empty")
    keys = resolve_sites(model, lm_sites, layers) if lm_sites else []
    parts = VisionParts(model)
    vkeys = parts.keys(vis_sites, vision_layers)
    pad = pad_id(model.tokenizer)
    full = collate(encs, pad)
    ids, mask = full["input_ids"], full["attention_mask"]
    idx = resolve_positions(positions, mask)
    blocks = SiteBlocks(keys, ids.shape[0], ids.shape[1], idx is not None)
    rec = Recorder(model, keys, dtype, into=blocks)
    vis = {k: [] for k in vkeys}
    handles = [parts.add_hook(s, layer, lambda x, k=(s, layer): vis[k].append(
        x.detach().to("cpu", dtype or x.dtype, copy=True))) for s, layer in vkeys]
    needs_eager = "attn_pattern" in lm_sites
    notes = []
    eager = attention_implementation(model) if needs_eager else contextlib.nullcontext()
    with eager as switched, hooks_removed_after(handles), rec.installed(), torch.inference_mode():
        if switched:
            notes.append(f"attention switched from {switched!r} to 'eager' to read attn_pattern, then restored")
        for i in range(0, len(encs), batch_size):
            batch = collate(encs[i:i + batch_size], pad)
            rec.idx = None if idx is None else idx[i:i + batch_size]
            rec.pad, rec.row = ~batch["attention_mask"].bool(), i
            forward(model, batch)
    data = blocks.result()
    data.update({k: torch.cat(v) for k, v in vis.items()})
    prov = _provenance(model, keys + vkeys, dtype, None, images=[[image_hash(im) for im in ims] for ims in imgs],
                       prompts=prompts)
    cache = ActivationCache(data, ids, mask, _str_tokens(model, ids, mask), idx, notes, prov)
    cache.image_tokens = (ids == image_token_id(model)) & mask.bool()
    return cache

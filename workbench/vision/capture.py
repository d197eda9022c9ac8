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
from dataclasses import dataclass, field

import pandas as pd
import torch

from workbench.display import readable, show_token, show_tokens
from workbench.engine.padding import pad_id
from workbench.errors import InvalidInputError, UnsupportedSiteError
from workbench.families import HookPoint
from workbench.inspect.cache import ActivationCache
from workbench.inspect.hooks import attention_implementation, hooks_removed_after, intervention, switch_note
from workbench.inspect.recording import (Recorder, SiteBlocks, capture_provenance, resolve_positions, resolve_sites,
                                         str_tokens)
from workbench.inspect.sites import adapter
from workbench.inspect.verify_result import VerifyResult, check_row as _row
from workbench.provenance import record
from workbench.results import Result, ResultFrame
# a module, not its names: importing vision.layout first runs the inspect package (layout imports
# its sites), whose capture reaches this module while layout is still half read
from workbench.vision import layout as image_layout
from workbench.vision.scoring import check_images, check_vlm, collate, forward, image_hash, process, render

VISION_LAYER_SITES = ("vision.resid_pre", "vision.resid_post")
VISION_MODEL_SITES = ("vision.embed", "projector")
VISION_SITES = ("vision.embed",) + VISION_LAYER_SITES + ("projector",)


class VisionParts:
    """Module paths of a vision-language model's vision tower and projector, from its family."""

    def __init__(self, model):
        ad = adapter(model)
        vision = ad.family.vision
        if vision is None:
            raise UnsupportedSiteError(f"{model.architecture} is not a vision-language family: it has no vision "
                                       f"sites {list(VISION_SITES)}")
        self.model, self.ad = model, ad
        self.layers_path = self._find(ad.base + vision.layers)
        self.embed_path = self._find(ad.base + vision.embed)
        self.projector_path = self._find(ad.base + vision.projector)
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
            notes.append(switch_note(switched))
        for i in range(0, len(encs), batch_size):
            batch = collate(encs[i:i + batch_size], pad)
            rec.idx = None if idx is None else idx[i:i + batch_size]
            rec.pad, rec.row = ~batch["attention_mask"].bool(), i
            forward(model, batch)
    data = blocks.result()
    data.update({k: torch.cat(v) for k, v in vis.items()})
    prov = capture_provenance(model, keys + vkeys, dtype, None, images=[[image_hash(im) for im in ims] for ims in imgs],
                              prompts=prompts)
    cache = ActivationCache(data, ids, mask, str_tokens(model, ids, mask), idx, notes, prov)
    cache.image_tokens = (ids == image_token_id(model)) & mask.bool()
    return cache


def tower_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """The images the vision tower sees: per-image pixels as they are; per-text tiles
    ([texts, tiles, 3, h, w], Idefics3) flattened, without the all-zero padding tiles (which
    the model drops too)."""
    if pixels.dim() != 5:
        return pixels
    flat = pixels.flatten(0, 1)
    return flat[(flat != 0).flatten(1).any(1)]


def _noise_image(seed: int):
    """A seeded 48x40 random RGB image (verification's default input)."""
    import numpy as np
    from PIL import Image
    return Image.fromarray((np.random.RandomState(seed).rand(40, 48, 3) * 255).astype("uint8"))


# -- verification --------------------------------------------------------------------------------

def verify_vision(model, texts=None, images=None, tol: float = 1e-4):
    """``wb.inspect.verify`` for vision-language models, on texts with images (default: two
    short texts, one with two images): logits with read hooks on every site (language model,
    vision tower, projector) equal the plain forward's **bit for bit**; ``resid_pre``/
    ``resid_post``/``final_norm`` equal the language model's ``output_hidden_states`` bit for
    bit; ``vision.resid_pre``/``resid_post`` equal the vision tower's hidden states; the logit
    lens of the last layer matches the logits within ``tol``.

    >>> from workbench.testing import tiny_vlm
    >>> verify_vision(tiny_vlm("paligemma")).ok
    True
    """
    texts = texts or ["Describe the picture.", "Two pictures of a cat"]
    images = images or [[_noise_image(0)], [_noise_image(1), _noise_image(2)]]
    encs, _, _ = prepare(model, texts, images)
    batch = collate(encs, pad_id(model.tokenizer))
    mask = batch["attention_mask"].bool()
    with torch.inference_mode():
        plain = forward(model, batch, output_hidden_states=True)
    hs = [h.cpu() for h in plain.hidden_states]
    ad = adapter(model)
    lm = [s for s in ad.available() if s != "attn_pattern"]
    cache = capture_images(model, texts, images, sites=lm + list(VISION_SITES), batch_size=len(texts))
    rows = [_row("logits with hooks == plain logits", "logits", None, cache["logits"][mask], plain.logits.cpu()[mask], 0)]
    L = ad.n_layers
    for layer in range(L):
        rows.append(_row("resid_pre == hidden_states[L]", "resid_pre", layer, cache["resid_pre", layer][mask], hs[layer][mask], 0))
    for layer in range(L - 1):
        rows.append(_row("resid_post == hidden_states[L+1]", "resid_post", layer, cache["resid_post", layer][mask], hs[layer + 1][mask], 0))
    rows.append(_row("final_norm == hidden_states[-1]", "final_norm", None, cache["final_norm"][mask], hs[-1][mask], 0))
    with torch.inference_mode():
        lens = ad.unembed(cache["resid_post", L - 1].to(model.device, model.dtype)).float().cpu()
    rows.append(_row("logit lens of the last layer == logits", "logits", None, lens[mask], plain.logits.float().cpu()[mask], tol))
    parts = VisionParts(model)
    with torch.inference_mode():
        lp = parts.layers_path
        tower = ad.module(lp.rsplit(".encoder", 1)[0] if ".encoder." in lp else lp.rsplit(".", 1)[0])
        kw = {"grid_thw": batch["image_grid_thw"].to(model.device)} if "image_grid_thw" in batch else {}
        vh = tower(tower_pixels(batch["pixel_values"]).to(model.device, model.dtype), output_hidden_states=True,
                   **kw).hidden_states
    if len(vh) != parts.n_layers + 1:  # one per layer input, plus the last layer's output
        rows.append(_row(f"vision hidden_states count == {parts.n_layers} layers + 1", "vision.resid_post", None,
                         torch.tensor([len(vh)]), torch.tensor([parts.n_layers + 1]), 0))
    for layer in range(min(parts.n_layers, len(vh))):
        rows.append(_row("vision.resid_pre == vision hidden_states[L]", "vision.resid_pre", layer,
                         cache["vision.resid_pre", layer], vh[layer].cpu(), 0))
    # the tower's hidden states are taken before any post-layernorm, so the last layer's output is
    # hidden_states[-1] too (SigLIP's post_layernorm acts on last_hidden_state, not on these)
    for layer in range(min(parts.n_layers, len(vh) - 1)):
        rows.append(_row("vision.resid_post == vision hidden_states[L+1]", "vision.resid_post", layer,
                         cache["vision.resid_post", layer], vh[layer + 1].cpu(), 0))
    img = cache.image_tokens
    n_img = int(img.sum())
    feats = cache["projector"].reshape(-1, cache["projector"].shape[-1])
    rows.append(_row("image-token count == projector rows", "projector", None, torch.tensor([feats.shape[0]]),
                     torch.tensor([n_img]), 0))
    frame = pd.DataFrame(rows)
    return VerifyResult(frame=frame, provenance=record(model, texts=texts), ok=bool(frame["ok"].all()))


# -- edits of image features: ablation and patching ------------------------------------------------

@contextlib.contextmanager
def image_features_replaced(model, fn):
    """Replace the projector's output (the image features, ``[images, tokens, d]``) by
    ``fn(features)`` on every forward inside the block; recorded in ``model.interventions`` so
    scoring caches never mix edited and unedited results."""
    parts = VisionParts(model)
    handles = [parts.add_hook("projector", None, fn)]
    with hooks_removed_after(handles), intervention(model, {"kind": "image-features", "fn": repr(fn)}, handles):
        yield


def _token_mask(features: torch.Tensor, image: int | None, tokens) -> torch.Tensor:
    """[images, tokens] bool: which image tokens an edit touches (``tokens`` None: all)."""
    sel = torch.zeros(features.shape[:2], dtype=torch.bool, device=features.device)
    rows = slice(None) if image is None else slice(image, image + 1)
    if tokens is None:
        sel[rows] = True
    else:
        sel[rows, list(tokens)] = True
    return sel


def edit_image_tokens(model, text, images, *, source_images=None, how: str = "patch", image: int | None = None,
                      tokens=None):
    """Run ``text`` with ``images`` and edit image tokens; returns ``(clean_logits, edited_logits)``
    ([seq, vocab] each, on the CPU).

    ``how``: ``"patch"`` replaces the image features (projector output) of the chosen tokens by
    those of ``source_images`` (same number and size of images), ``"zero"`` zeroes them,
    ``"mean"`` replaces them by their image's mean feature. ``image``: which image (None: all);
    ``tokens``: indices of image tokens within an image (the patch grid in reading order; None: all).
    Tiling families (Idefics3): ``image`` indexes tiles; flat-vision families (Qwen2-VL): all
    images' tokens form one row, so ``image`` must be None or 0 and ``tokens`` index all of them.

    >>> import torch
    >>> from workbench.testing import tiny_vlm, tiny_image
    >>> vlm = tiny_vlm("llava")
    >>> clean, same = edit_image_tokens(vlm, "A picture", [tiny_image(0)], source_images=[tiny_image(0)])
    >>> torch.equal(clean, same)
    True
    """
    if how not in ("patch", "zero", "mean"):
        raise InvalidInputError(f"how must be 'patch', 'zero' or 'mean', got {how!r}")
    if how == "patch" and source_images is None:
        raise InvalidInputError("how='patch' needs source_images (the images whose features are patched in)")
    pad = pad_id(model.tokenizer)
    encs, _, _ = prepare(model, [text], [images])
    batch = collate(encs, pad)
    parts = VisionParts(model)
    source = None
    if how == "patch":
        src, _, _ = prepare(model, [text], [source_images])
        if src[0]["input_ids"].shape != encs[0]["input_ids"].shape:
            raise InvalidInputError("source_images give a different number of image tokens than images: patch "
                                    "images of the same number and size")
        got = []
        h = parts.add_hook("projector", None, lambda x: got.append(x.detach().clone()))
        try:
            with torch.inference_mode():
                forward(model, collate(src, pad))
        finally:
            h.remove()
        source = got[0]

    def fn(flat):
        # [images, tokens, d]; flat-vision families (Qwen2-VL) give [all tokens, d]: one "image"
        x = flat if flat.dim() == 3 else flat[None]
        sel = _token_mask(x, image, tokens)[..., None]
        if how == "patch":
            new = source.to(x.dtype).reshape(x.shape)
        elif how == "zero":
            new = torch.zeros_like(x)
        else:
            new = x.mean(1, keepdim=True).expand_as(x)
        return torch.where(sel, new, x).reshape(flat.shape)

    with torch.inference_mode():
        clean = forward(model, batch).logits[0].cpu()
        with image_features_replaced(model, fn):
            edited = forward(model, batch).logits[0].cpu()
    return clean, edited


# -- attention from text to image patches ----------------------------------------------------------

def image_attention(model, text: str, image, layer: int = -1, head: int | None = None):
    """Attention from each text position after the image to the image's tokens, as a heat map over
    the image: an :class:`ImageAttention` whose ``maps`` ([text positions, rows, cols]) are
    renormalised over the image tokens (each row sums to one over the positions shown) and
    whose frame's ``image_share`` says what fraction of the position's attention went to the
    image at all. ``head`` None averages the heads. Tiling families (Idefics3): ``maps`` is the
    mosaic of the local tiles, ``global_maps`` the global tile's grid, each renormalised over
    its own tokens (:mod:`workbench.vision.layout`).

    >>> from workbench.testing import tiny_vlm, tiny_image
    >>> att = image_attention(tiny_vlm("gemma3_vl"), "What is shown?", tiny_image(0))
    >>> att.maps.shape[1:], float(att.maps[0].sum().round(decimals=5))
    (torch.Size([2, 2]), 1.0)
    """
    ad = adapter(model)
    layer = ad.check_layer(layer)
    cache = capture_images(model, [text], [[image]], sites=["attn_pattern"], layers=[layer])
    pat = cache["attn_pattern", layer][0].float()  # [h, s, s]
    if head is not None:
        if not isinstance(head, int) or not 0 <= head < pat.shape[0]:
            raise InvalidInputError(f"head must be an int in [0, {pat.shape[0]}), got {head!r}")
        pat = pat[head:head + 1]
    pat = pat.mean(0)
    img = cache.image_tokens[0].nonzero()[:, 0]
    n = int(cache.attention_mask[0].sum())
    queries = torch.arange(int(img.max()) + 1, n)
    queries = queries[~cache.image_tokens[0][queries]]
    share = pat[queries][:, img].sum(1)
    # positions that cannot see the image (sliding-window layers) have no heat map to show
    queries = queries[share > 0]
    if not len(queries):
        raise InvalidInputError(f"no text position attends to the image at layer {layer} (a sliding-window layer "
                                "shorter than the text?); pick another layer")
    w = pat[queries][:, img]
    share = w.sum(1)
    layout = image_layout.image_token_layout(model, image, len(img))
    mosaic, glob = layout.grids(w)
    # each grid renormalised over the tokens it shows (tiled: the mosaic and the global tile apart)
    maps = mosaic / mosaic.sum((1, 2), keepdim=True)
    glob = None if glob is None else glob / glob.sum((1, 2), keepdim=True)
    toks = cache.str_tokens[0]
    frame = pd.DataFrame([dict(position=int(q), token=toks[int(q)], row=r, col=c, weight=float(maps[i, r, c]),
                               image_share=float(share[i])) for i, q in enumerate(queries)
                          for r in range(maps.shape[1]) for c in range(maps.shape[2])])
    return ImageAttention(frame=frame, provenance=record(model, layer=layer, head=head, image=image_hash(image),
                                                         text=text, tiles=[layout.rows, layout.cols]),
                          maps=maps, image=image, tokens=[toks[int(q)] for q in queries], share=share,
                          global_maps=glob)


@dataclass
class ImageAttention(Result):
    """Heat maps of attention from text positions to image patches (see :func:`image_attention`)."""

    maps: torch.Tensor = None
    image: object = None
    tokens: list = field(default_factory=list)
    share: torch.Tensor = None
    global_maps: torch.Tensor = None

    def summary(self):
        return readable(self.frame.groupby(["position", "token"], sort=False).image_share.first().reset_index())

    def __repr__(self) -> str:  # the text a notebook shows beside the widget: tokens as text, not the tensors
        w, h = self.image.size if self.image is not None else (0, 0)
        return (f"ImageAttention({len(self.tokens)} text positions, image {w}x{h}, "
                f"tokens={show_tokens(self.tokens)})")

    def plot(self, position: int = -1, ax=None):
        """The image with the heat map of text position ``position`` (index into ``tokens``) over it."""
        import matplotlib.pyplot as plt
        import numpy as np
        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        w, h = self.image.size
        ax.imshow(np.asarray(self.image))
        ax.imshow(self.maps[position].numpy(), extent=(0, w, h, 0), alpha=0.5, cmap="inferno", interpolation="nearest")
        ax.set(title=f"attention from {show_token(self.tokens[position])!r} ({float(self.share[position]):.0%} on the image)",
               xticks=[], yticks=[])
        return ax

    def to_html(self) -> str:
        """A self-contained (offline) HTML widget: click a token to show its heat map over the image."""
        import base64
        import io
        import json
        buf = io.BytesIO()
        self.image.save(buf, format="PNG")
        src = base64.b64encode(buf.getvalue()).decode()
        maps = json.dumps([[[round(float(v), 5) for v in row] for row in m] for m in self.maps])
        toks = json.dumps(show_tokens(self.tokens))
        side = self.maps.shape[2]  # grid columns (a tiled mosaic need not be square)
        return f"""<div class="wb-imgatt"><div style="position:relative;display:inline-block;width:256px;height:256px">
<img src="data:image/png;base64,{src}" style="width:256px;height:256px;image-rendering:pixelated">
<div class="grid" style="position:absolute;top:0;left:0;width:256px;height:256px;display:grid;
grid-template-columns:repeat({side},1fr);grid-template-rows:repeat({self.maps.shape[1]},1fr)"></div></div><div class="toks"></div>
<script>(function(){{var root=document.currentScript.parentElement,maps={maps},toks={toks},g=root.querySelector('.grid'),
t=root.querySelector('.toks');function show(i){{g.innerHTML='';var m=maps[i],mx=Math.max.apply(null,[].concat.apply([],m));
m.forEach(function(r){{r.forEach(function(v){{var d=document.createElement('div');d.style.background='rgba(255,80,0,'+(v/mx*0.8)+')';
d.title=v.toFixed(3);g.appendChild(d);}});}});}}toks.forEach(function(s,i){{var b=document.createElement('button');b.textContent=s;
b.onclick=function(){{show(i);}};t.appendChild(b);}});show(toks.length-1);}})();</script></div>"""

    def _repr_html_(self) -> str:
        return self.to_html()


# -- logit lens at image-token and text positions -------------------------------------------------

def image_logit_lens(model, text: str, images, k: int = 5, layers=None):
    """The logit lens of a vision-language model on ``text`` with ``images``: each layer's
    ``resid_post`` through the language model's final norm and head, at every position, image
    tokens included (``is_image`` marks them; what an image token's residual "says" in vocabulary
    space). One row per (layer, position): layer, position, token, is_image, top_tokens,
    top_probs, next_token, next_prob (probability of the token that comes next; None at the end).
    The last layer reproduces the model's own logits (``verify_vision`` checks it).

    >>> from workbench.testing import tiny_vlm, tiny_image
    >>> df = image_logit_lens(tiny_vlm("llava"), "A cat", [tiny_image(0)], k=2)
    >>> bool(df.is_image.any()), bool((~df.is_image).any())
    (True, True)
    """
    ad = adapter(model)
    cache = capture_images(model, [text], [list(images) if not hasattr(images, "size") else [images]],
                           sites=["resid_post"], layers=layers)
    n = int(cache.attention_mask[0].sum())
    ids = cache.tokens[0, :n]
    toks = cache.str_tokens[0]
    img = cache.image_tokens[0, :n]
    conv = model.tokenizer.convert_ids_to_tokens
    rows = []
    for layer in cache.layers("resid_post"):
        with torch.inference_mode():
            probs = torch.softmax(ad.unembed(cache["resid_post", layer][0, :n].to(model.device, model.dtype)).float(),
                                  -1).cpu()
        top = probs.topk(k, -1)
        for p in range(n):
            nxt = int(ids[p + 1]) if p + 1 < n else None
            rows.append(dict(layer=layer, position=p, token=toks[p], is_image=bool(img[p]),
                             top_tokens=conv(top.indices[p].tolist()), top_probs=top.values[p].tolist(),
                             next_token=conv(nxt) if nxt is not None else None,
                             next_prob=float(probs[p, nxt]) if nxt is not None else None))
    df = ResultFrame(rows)
    df.attrs["provenance"] = cache.provenance
    return df

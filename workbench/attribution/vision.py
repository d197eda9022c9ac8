"""Attribution over image patches: how much each image token (one cell of the patch grid the
language model sees) adds to ``log p(continuation | images, prompt)``.

Features are the image tokens' features (the projector's output; every tile's tokens for
tiling families such as Idefics3, laid out by :mod:`workbench.inspect.vision_layout`); a feature is "removed" by
replacing it with ``baseline`` (zeros by default), as :func:`workbench.inspect.vision.edit_image_tokens`
does. ``method="ablation"`` is captum's ``FeatureAblation`` (one token removed at a time);
``method="shapley"`` captum's ``ShapleyValueSampling`` (``n_samples`` random orders).

Completeness check (as for text attribution, :mod:`workbench.attribution.sanity`): Shapley values
sum to ``logp(all tokens) - logp(all removed)``; the gap is reported (``completeness_gap``)
and judged for Shapley only (ablation is not complete by construction).

>>> from workbench.testing import tiny_vlm, tiny_image
>>> res = image_patch_attribution(tiny_vlm("gemma3_vl"), "A picture of", " a cat", tiny_image(0, pattern="split"))
>>> res.grid.shape, res.frame.columns[:3].tolist()
(torch.Size([2, 2]), ['row', 'col', 'attribution'])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.errors import InvalidInputError
from workbench.results import Result


@dataclass
class ImagePatchAttribution(Result):
    """``grid`` [rows, cols]: attribution of each image token (tiling families: the mosaic of the
    local tiles, ``global_grid`` the global tile's); ``image``: the PIL image. The frame's
    ``token`` is the image token's index in text order, ``grid`` "image" or "global"."""

    grid: torch.Tensor = None
    image: object = None
    global_grid: torch.Tensor = None

    def summary(self):
        return self.frame.sort_values("attribution", ascending=False).head(10)

    def plot(self, ax=None):
        """The image with the attribution grid over it (red adds log-probability, blue removes it)."""
        import matplotlib.pyplot as plt
        import numpy as np
        if ax is None:
            _, ax = plt.subplots(figsize=(4, 4))
        w, h = self.image.size
        lim = float(self.grid.abs().max()) or 1.0
        ax.imshow(np.asarray(self.image))
        ax.imshow(self.grid.numpy(), extent=(0, w, h, 0), alpha=0.55, cmap="bwr", vmin=-lim, vmax=lim,
                  interpolation="nearest")
        ax.set(title=f"{self.provenance.get('method')}: {self.provenance.get('continuation')!r}", xticks=[], yticks=[])
        return ax


def image_patch_attribution(model, context: str, continuation: str, image, *, method: str = "ablation",
                            n_samples: int = 8, baseline: float = 0.0, seed: int = 0) -> ImagePatchAttribution:
    """Attribute ``log p(continuation | image, context)`` to the image's tokens (see module docstring)."""
    from captum.attr import FeatureAblation, ShapleyValueSampling

    from workbench.inspect.vision import VisionParts, image_features_replaced
    from workbench.inspect.vision_layout import image_token_layout
    from workbench.provenance import record
    from workbench.scoring.padding import pad_id
    from workbench.scoring.vision import check_vlm, collate, encode_pairs, forward, image_hash
    check_vlm(model, "image_patch_attribution")
    if method not in ("ablation", "shapley"):
        raise InvalidInputError(f"method must be 'ablation' or 'shapley', got {method!r}")
    (whole, n_ctx, _), = encode_pairs(model, [(context, continuation)], [[image]])
    batch = collate([whole], pad_id(model.tokenizer))
    ids = whole["input_ids"][0]
    parts = VisionParts(model)
    got = []
    h = parts.add_hook("projector", None, lambda x: got.append(x.detach().clone()))
    try:
        with torch.inference_mode():
            forward(model, batch)
    finally:
        h.remove()
    shape = got[0].shape  # [tiles, tokens per tile, d]: one tile unless the family tiles images
    feats = got[0].reshape(1, -1, shape[-1]).clone()  # [1, image tokens, d] in text order

    def logprob(f):  # f: [k, image tokens, d], k perturbations; returns [k]
        out = []
        for one in f:
            with image_features_replaced(model, lambda x, one=one: one.reshape(shape).to(x.dtype)), torch.no_grad():
                logits = forward(model, batch).logits[0].float()
            lp = torch.log_softmax(logits[n_ctx - 1:len(ids) - 1], -1).gather(1, ids[n_ctx:, None].to(logits.device))
            out.append(lp.sum())
        return torch.stack(out).cpu()

    n_tok = feats.shape[1]
    mask = torch.arange(n_tok)[None, :, None].expand_as(feats).contiguous()
    torch.manual_seed(seed)
    algo = FeatureAblation(logprob) if method == "ablation" else ShapleyValueSampling(logprob)
    kw = {} if method == "ablation" else {"n_samples": n_samples}
    attr = algo.attribute(feats, baselines=baseline, feature_mask=mask, **kw)[0, :, 0].detach().cpu()
    full, empty = float(logprob(feats)[0]), float(logprob(torch.full_like(feats, baseline))[0])
    gap = float(attr.sum()) - (full - empty)
    layout = image_token_layout(model, image, n_tok)
    grid, global_grid = layout.grids(attr)
    token_index, _ = layout.grids(torch.arange(n_tok))  # which image token each mosaic cell is
    import pandas as pd
    rows = [dict(row=r, col=c, attribution=float(grid[r, c]), token=int(token_index[r, c]), grid="image")
            for r in range(grid.shape[0]) for c in range(grid.shape[1])]
    if global_grid is not None:
        start = layout.mosaic_tokens()
        rows += [dict(row=r, col=c, attribution=float(global_grid[r, c]), token=start + r * layout.side + c,
                      grid="global") for r in range(layout.side) for c in range(layout.side)]
    frame = pd.DataFrame(rows)
    complete_ok = abs(gap) <= 0.05 * abs(full - empty) + 1e-3 if method == "shapley" else None
    prov = record(model, method=method, n_samples=n_samples if method == "shapley" else None, baseline=baseline,
                  seed=seed, context=context, continuation=continuation, image=image_hash(image),
                  logprob=full, logprob_all_removed=empty, completeness_gap=gap, completeness_ok=complete_ok)
    return ImagePatchAttribution(frame=frame, provenance=prov, grid=grid, image=image, global_grid=global_grid)

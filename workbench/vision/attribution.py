"""Attribution over image patches: how much each image token (one cell of the patch grid the
language model sees) adds to ``log p(continuation | images, prompt)``.

Features are the image tokens' features (the projector's output; every tile's tokens for
tiling families such as Idefics3, laid out by :mod:`workbench.vision.layout`); a feature is "removed" by
replacing it with ``baseline`` (zeros by default), as :func:`workbench.vision.capture.edit_image_tokens`
does. ``method="ablation"`` is captum's ``FeatureAblation`` (one token removed at a time);
``method="shapley"`` captum's ``ShapleyValueSampling`` (``n_samples`` random orders).

Sanity checks (those of text attribution, :mod:`workbench.attribution.sanity`, in ``.sanity``):
completeness (Shapley values sum to ``logp(all tokens) - logp(all removed)``; the gap is reported,
``completeness_gap``, and judged for Shapley only: ablation is not complete by construction) and
the randomised model (the same attribution on a weight-randomised copy; a high rank correlation
means the map explains the input, not the model). Prompt tokens beside the image:
:func:`workbench.vision.prompt.prompt_token_attribution`.

>>> from workbench.testing import tiny_vlm, tiny_image
>>> res = image_patch_attribution(tiny_vlm("gemma3_vl"), "A picture of", " a cat", tiny_image(0, pattern="split"))
>>> res.grid.shape, res.frame.columns[:3].tolist(), res.sanity.check.tolist()
(torch.Size([2, 2]), ['row', 'col', 'attribution'], ['completeness', 'randomised model'])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.attribution.sanity import randomized_copy, sanity_frame
from workbench.engine.padding import pad_id
from workbench.errors import InvalidInputError
from workbench.provenance import record
from workbench.results import Result
from workbench.vision.capture import VisionParts, image_features_replaced
from workbench.vision.layout import image_token_layout
from workbench.vision.loading import from_hf
from workbench.vision.scoring import check_vlm, collate, encode_pairs, forward, image_hash


@dataclass
class ImagePatchAttribution(Result):
    """``grid`` [rows, cols]: attribution of each image token (tiling families: the mosaic of the
    local tiles, ``global_grid`` the global tile's); ``image``: the PIL image. The frame's
    ``token`` is the image token's index in text order, ``grid`` "image" or "global"."""

    grid: torch.Tensor = None
    image: object = None
    global_grid: torch.Tensor = None
    sanity: object = None  # the sanity checks' frame (completeness, randomised model)

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


def random_model(model):
    """The weight-randomised copy of a vision-language model (:func:`workbench.attribution.sanity.randomized_copy`,
    cached per model) wrapped with the same processor, for the randomised-model sanity check."""
    return from_hf(randomized_copy(model.hf, seed=0), model.processor, name=f"{model.name} (randomised)",
                   source="workbench.attribution.sanity.randomized_copy")


def run_captum(objective, inputs: torch.Tensor, mask: torch.Tensor, baseline, method: str, n_samples: int,
               seed: int) -> tuple[torch.Tensor, float, float]:
    """Captum's feature ablation / Shapley sampling of ``objective`` (perturbed inputs [k, ...] ->
    [k]) over the features of ``mask``: (attribution per feature, objective with all features,
    objective with all removed)."""
    from captum.attr import FeatureAblation, ShapleyValueSampling
    torch.manual_seed(seed)
    algo = FeatureAblation(objective) if method == "ablation" else ShapleyValueSampling(objective)
    kw = {} if method == "ablation" else {"n_samples": n_samples}
    attr = algo.attribute(inputs, baselines=baseline, feature_mask=mask, **kw).detach().cpu()
    n = int(mask.max()) + 1
    per_feature = torch.stack([attr[mask == f].flatten()[0] for f in range(n)])
    full = float(objective(inputs)[0])
    empty = float(objective(torch.full_like(inputs, float(baseline)))[0])
    return per_feature, full, empty


def sanity(method: str, attr: torch.Tensor, full: float, empty: float, random_attr):
    """The text attribution's sanity frame (completeness; rank correlation with the randomised model)."""
    name = {"ablation": "feature_ablation", "shapley": "shapley_sampling"}[method]
    return sanity_frame(name, attr.numpy(), full, empty, None if random_attr is None else random_attr.numpy())


def _patch_scores(model, context, continuation, image, method, n_samples, baseline, seed):
    """Attribution of every image token (text order) on ``model``: (attr, full, empty)."""
    (whole, n_ctx, _), = encode_pairs(model, [(context, continuation)], [[image]])
    batch = collate([whole], pad_id(model.tokenizer))
    ids = whole["input_ids"][0]
    got = []
    h = VisionParts(model).add_hook("projector", None, lambda x: got.append(x.detach().clone()))
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

    mask = torch.arange(feats.shape[1])[None, :, None].expand_as(feats).contiguous()
    return run_captum(logprob, feats, mask, baseline, method, n_samples, seed)


def image_patch_attribution(model, context: str, continuation: str, image, *, method: str = "ablation",
                            n_samples: int = 8, baseline: float = 0.0, seed: int = 0,
                            random_check: bool = True) -> ImagePatchAttribution:
    """Attribute ``log p(continuation | image, context)`` to the image's tokens (see module docstring).
    ``random_check``: also attribute on the weight-randomised copy of the model (the frame's
    ``attribution_random``; ``sanity`` has the rank correlation, as for text attribution)."""
    check_vlm(model, "image_patch_attribution")
    if method not in ("ablation", "shapley"):
        raise InvalidInputError(f"method must be 'ablation' or 'shapley', got {method!r}")
    attr, full, empty = _patch_scores(model, context, continuation, image, method, n_samples, baseline, seed)
    rnd = _patch_scores(random_model(model), context, continuation, image, method, n_samples, baseline,
                        seed)[0] if random_check else None
    n_tok = len(attr)
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
    if rnd is not None:
        frame["attribution_random"] = [float(rnd[t]) for t in frame["token"]]
    checks = sanity(method, attr, full, empty, rnd)
    complete_ok = abs(gap) <= 0.05 * abs(full - empty) + 1e-3 if method == "shapley" else None
    prov = record(model, method=method, n_samples=n_samples if method == "shapley" else None, baseline=baseline,
                  seed=seed, context=context, continuation=continuation, image=image_hash(image),
                  logprob=full, logprob_all_removed=empty, completeness_gap=gap, completeness_ok=complete_ok,
                  sanity=checks.to_dict("records"))
    return ImagePatchAttribution(frame=frame, provenance=prov, grid=grid, image=image, global_grid=global_grid,
                                 sanity=checks)

"""Where an image's tokens lie on the image: the patch grid behind heat maps and patch attribution.

Most families give an image one square grid of image tokens (LLaVA 4x4, Gemma 3 2x2 pooled in
the tiny models); Qwen2-VL one grid of the image's aspect ratio (``image_grid_thw`` / merge size). Tiling families (Idefics3 / SmolVLM, ``family.vision.tiled``) cut the resized
image into ``rows x cols`` tiles and add the whole image shrunk to one "global" tile; the text
holds each tile's tokens in that order (local tiles row by row, then the global tile), and each
tile has its own square grid. :meth:`TokenLayout.grids` puts the local tiles' grids side by side
into one mosaic ``[rows * side, cols * side]`` over the (resized) image and returns the global
tile's grid separately; an image too small to be split has its global tile only, shown as the grid.

>>> from workbench.testing import tiny_vlm, tiny_image
>>> layout = image_token_layout(tiny_vlm("idefics3"), tiny_image(0), 20)
>>> layout.rows, layout.cols, layout.side, layout.n_tiles
(2, 2, 2, 5)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workbench.errors import UnsupportedSiteError
from workbench.inspect.sites import adapter


@dataclass(frozen=True)
class TokenLayout:
    """``rows x cols`` local tiles (0 x 0: not tiled) of ``side x side`` image tokens each, plus a
    global tile when tiled; ``n_tiles`` tiles of ``side**2`` tokens in text order."""

    rows: int
    cols: int
    side: int
    n_tiles: int
    shape: tuple | None = None  # a single grid that need not be square (Qwen2-VL keeps the aspect ratio)

    @property
    def tiled(self) -> bool:
        return self.rows * self.cols > 0

    def grids(self, values: torch.Tensor):
        """``values`` [..., n_tokens] (one per image token, text order) -> ``(mosaic, global)``:
        ``mosaic`` [..., rows*side, cols*side] (the single grid when not tiled), ``global``
        [..., side, side] or None."""
        s = self.side
        if not self.tiled:
            return values.reshape(*values.shape[:-1], *(self.shape or (s, s))), None
        lead = values.shape[:-1]
        local = values[..., :self.rows * self.cols * s * s].reshape(*lead, self.rows, self.cols, s, s)
        mosaic = local.movedim(-2, -3).reshape(*lead, self.rows * s, self.cols * s)
        return mosaic, values[..., self.rows * self.cols * s * s:].reshape(*lead, s, s)

    def mosaic_tokens(self) -> int:
        """How many of the image's tokens the mosaic shows (all but the global tile's)."""
        return self.n_tiles * self.side ** 2 - (self.side ** 2 if self.tiled else 0)


def image_token_layout(model, image, n_tokens: int) -> TokenLayout:
    """The layout of ``image``'s ``n_tokens`` image tokens in ``model`` (see the module docstring)."""
    rows = cols = 0
    vision = adapter(model).family.vision
    if vision.flat_vision:  # one grid per image: image_grid_thw (t, h, w) patches, merged
        ip = model.processor.image_processor
        t, h, w = (int(v) for v in ip([image], return_tensors="pt")["image_grid_thw"][0])
        shape = (h // ip.merge_size, w // ip.merge_size)
        if t * shape[0] * shape[1] != n_tokens:
            raise UnsupportedSiteError(f"{n_tokens} image tokens, but the image's grid is {shape}")
        return TokenLayout(0, 0, 0, 1, shape=shape)
    if vision.tiled:
        info = model.processor.image_processor([[image]], return_row_col_info=True)
        rows, cols = int(info["rows"][0][0]), int(info["cols"][0][0])
    n_tiles = rows * cols + 1 if rows * cols else 1
    per = n_tokens // n_tiles
    side = int(round(per ** 0.5))
    if side * side != per or per * n_tiles != n_tokens:
        raise UnsupportedSiteError(f"{n_tokens} image tokens in {n_tiles} tile(s) do not form square grids; the "
                                   "heat map and patch attribution need them")
    return TokenLayout(rows, cols, side, n_tiles)

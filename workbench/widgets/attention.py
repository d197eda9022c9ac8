"""Attention explorer: an overview of every layer and head at once (a grid of thumbnails, one
per head, each with a button that opens it), and the opened head as a heatmap with its tokens
(query rows x key columns). Both share one colour scale, 0..1, shown by a colour bar.

Thumbnails are tiny PNGs inlined as ``data:`` URIs (one pixel per query x key, scaled up
without smoothing), so a 30-layer model's overview stays small and needs no external asset.
"""
from __future__ import annotations

import base64
import io
import json
import uuid

import numpy as np

from workbench.inspect.attention import attention
from workbench.widgets.busy import busy, status_line
from workbench.widgets.html import BLUE, CELL, STICKY_LEFT, STICKY_TOP, TABLE, colorbar_html, esc, shade, tok

THUMB_PX = 64    # the thumbnail's side on screen
BUTTON_PX = 22   # the height of the button under each thumbnail
ROW_GAP_PX = 12  # between a row's buttons and the next layer's thumbnails


def pattern_html(pattern, tokens, title: str = "", anchor: str | None = None) -> str:
    """HTML heatmap of one head's attention probabilities [query, key], with a colour bar.
    ``anchor``: the id of its title (what the explorer scrolls into view when a head is opened)."""
    head = "".join(f'<th style="{CELL}; {STICKY_TOP}; writing-mode: vertical-rl">{tok(t)}</th>' for t in tokens)
    rows = []
    for q, tq in enumerate(tokens):
        tds = "".join(f'<td style="{CELL}; {shade(float(pattern[q, k]))}" title="{tok(tq)} → {tok(tk)}: '
                      f'{float(pattern[q, k]):.3f}">{float(pattern[q, k]):.2f}</td>' for k, tk in enumerate(tokens))
        rows.append(f'<tr><th style="{CELL}; {STICKY_LEFT}; text-align: right">{tok(tq)}</th>{tds}</tr>')
    anchor_attr = f' id="{esc(anchor)}"' if anchor else ""
    return (f'<div{anchor_attr} style="font:12px sans-serif; scroll-margin-top:8px">{esc(title)} '
            '(rows: query, columns: key)</div>'
            f'{colorbar_html(0.0, 1.0, "attention weight")}'
            f'<div style="max-height:480px; overflow:auto"><table style="{TABLE}">'
            f'<tr><th style="{CELL}; {STICKY_TOP}; {STICKY_LEFT}; z-index:2"></th>{head}</tr>{"".join(rows)}</table></div>')


def thumbnail_png(pattern) -> bytes:
    """One head's pattern [query, key] as an RGBA PNG, one pixel per weight: the same blue as
    the heatmap, its opacity (alpha channel) the weight on the 0..1 scale."""
    from PIL import Image

    p = np.clip(np.asarray(pattern, dtype=float), 0.0, 1.0)
    rgba = np.zeros(p.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = BLUE
    rgba[..., 3] = np.round(p * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def thumbnail_html(pattern, layer: int, head: int) -> str:
    """An ``<img>`` of :func:`thumbnail_png` (inline), with the head named in its tooltip."""
    data = base64.b64encode(thumbnail_png(pattern)).decode("ascii")
    return (f'<img src="data:image/png;base64,{data}" alt="L{layer} H{head}" title="layer {layer}, head {head}" '
            f'width="{THUMB_PX}" height="{THUMB_PX}" style="display:block; image-rendering: pixelated; '
            'border:1px solid #ccc; background:white">')


def overview(res, on_open):
    """A grid widget: a row per layer, a column per head, each cell a thumbnail with its button
    right under it that calls ``on_open(layer, head)``. Its ``.buttons[(layer, head)]`` are the buttons.

    Every size is fixed (thumbnail, button, the gap after a row), so a button sits against its
    own thumbnail and a row's gap separates it from the next layer's: a widget's default height
    (an HTML widget is one text line tall) would otherwise let the 64 px image overflow its box
    and push the button down towards the next row."""
    import ipywidgets as W

    layers = sorted(res.patterns)
    n_heads = res.patterns[layers[0]].shape[0]
    cell = W.Layout(width=f"{THUMB_PX + 8}px", margin=f"0 0 {ROW_GAP_PX}px 0", align_items="center")
    thumb = W.Layout(width=f"{THUMB_PX + 2}px", height=f"{THUMB_PX + 2}px", margin="0", overflow="hidden")
    children = [W.HTML("")] + [W.HTML(f'<div style="font:12px sans-serif; text-align:center">H{h}</div>',
                                      layout=W.Layout(width=f"{THUMB_PX + 8}px")) for h in range(n_heads)]
    buttons = {}
    for layer in layers:
        children.append(W.HTML(f'<div style="font:12px sans-serif; line-height:{THUMB_PX}px">L{layer}</div>',
                               layout=W.Layout(margin="0")))
        for h in range(n_heads):
            b = W.Button(description=f"L{layer} H{h}", tooltip=f"open layer {layer}, head {h}",
                         layout=W.Layout(width=f"{THUMB_PX + 2}px", height=f"{BUTTON_PX}px", padding="0", margin="0"))
            b.on_click(lambda _b, layer=layer, h=h: on_open(layer, h))
            buttons[(layer, h)] = b
            children.append(W.VBox([W.HTML(thumbnail_html(res.pattern(layer, h).numpy(), layer, h), layout=thumb), b],
                                   layout=cell))
    grid = W.GridBox(children, layout=W.Layout(
        grid_template_columns=f"40px repeat({n_heads}, {THUMB_PX + 8}px)", grid_gap="0px 0px",
        max_height="520px", overflow="auto"))
    grid.buttons = buttons
    return grid


def scroll_js(anchor: str) -> str:
    """Browser code that scrolls the element ``anchor`` (the opened head's title) into view."""
    return f"document.getElementById({json.dumps(anchor)})?.scrollIntoView({{block: 'start'}});"


def attention_explorer(model, text: str):
    """A widget over the attention patterns of ``text`` (computed once; eager attention is
    switched on for that call only): layer/head sliders and the opened head's heatmap on top,
    then an overview of all heads (click a head's button to open it: the page scrolls to the
    opened head's title, in JupyterLab and Notebook). Returns an ``ipywidgets.VBox``;
    ``.result`` is the :class:`~workbench.inspect.attention.AttentionResult`,
    ``.overview.buttons[(layer, head)]`` the overview's buttons."""
    import ipywidgets as W

    res = attention(model, text)
    n_layers, n_heads = len(res.patterns), next(iter(res.patterns.values())).shape[0]
    # continuous_update=False: one redraw when the slider is let go, not one per step queued behind
    layer = W.IntSlider(0, 0, n_layers - 1, description="layer", continuous_update=False)
    head = W.IntSlider(0, 0, n_heads - 1, description="head", continuous_update=False)
    out, status = W.HTML(), status_line()
    anchor = f"wb-attention-{uuid.uuid4().hex[:12]}"  # the opened head's title, unique per explorer
    # an output that only ever holds the scroll instruction (a live output runs its script; a
    # saved notebook or a front end without JavaScript just does not scroll)
    scroller = W.Output(layout=W.Layout(height="0px", margin="0", overflow="hidden"))

    quiet = []  # set while open_head moves both sliders: one redraw, not three

    def refresh(*_):
        if quiet:
            return
        with busy(status, [layer, head], "drawing the head"):
            out.value = pattern_html(res.pattern(layer.value, head.value), res.tokens,
                                     f"layer {layer.value}, head {head.value}", anchor=anchor)
            for (lay, h), b in grid.buttons.items():
                b.button_style = "info" if (lay, h) == (layer.value, head.value) else ""

    def open_head(lay, h):
        quiet.append(True)
        try:
            layer.value, head.value = lay, h
        finally:
            quiet.clear()
        refresh()
        # the heatmap is above the overview: bring the opened head's title into view
        scroller.outputs = ()
        scroller.outputs = ({"output_type": "display_data", "metadata": {},
                             "data": {"application/javascript": scroll_js(anchor), "text/plain": ""}},)

    grid = overview(res, open_head)
    layer.observe(refresh, names="value")
    head.observe(refresh, names="value")
    refresh()
    notes = W.HTML(f'<div style="font:11px sans-serif; color:#666">{esc("; ".join(res.notes))}</div>') if res.notes else W.HTML()
    caption = W.HTML('<div style="font:12px sans-serif; margin-top:8px"><b>all heads</b> (rows: layer, columns: '
                     'head; each thumbnail: query down, key across, same 0..1 scale); click a head to open it</div>')
    w = W.VBox([W.HBox([layer, head]), out, notes, status, caption, grid, scroller])
    w.result, w.overview, w.scroller, w.anchor = res, grid, scroller, anchor
    return w

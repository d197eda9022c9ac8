"""The widgets' all-heads overview, busy indicators, the lens explorer's default shading and
bounded table, colour bars, and the one token display (␣, ↵) in every table, plot and widget."""
import base64
import io
import re

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ipywidgets")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import workbench as wb  # noqa: E402
from workbench.display import readable, show_token  # noqa: E402
from workbench.widgets import attention_explorer, logit_lens_explorer  # noqa: E402
from workbench.widgets.attention import pattern_html  # noqa: E402
from workbench.widgets.html import colorbar_html  # noqa: E402

TEXT = "The cat\nsat on the mat"
RAW = re.compile("[ĠĊ▁]")  # the tokenizers' own whitespace stand-ins must never be shown


def _png_alpha(html):
    from PIL import Image
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))[..., 3]


def test_overview_has_every_head_with_its_own_pattern_and_opens_the_clicked_one(tiny):
    m = tiny("gpt2")
    w = attention_explorer(m, TEXT)
    res, grid = w.result, w.overview
    n_heads = res.patterns[0].shape[0]
    assert sorted(grid.buttons) == [(layer, h) for layer in range(m.n_layers) for h in range(n_heads)]
    cells = [c for c in grid.children if hasattr(c, "children")]
    assert len(cells) == m.n_layers * n_heads
    for (layer, h), cell in zip(sorted(grid.buttons), cells):
        thumb, button = cell.children
        assert button is grid.buttons[(layer, h)]
        alpha = _png_alpha(thumb.value)          # one pixel per query x key, opacity = weight
        want = np.round(res.pattern(layer, h).numpy() * 255)
        assert alpha.shape == want.shape and np.abs(alpha - want).max() <= 1
    # heads differ, so the thumbnails do: the overview is not one image repeated
    assert grid.children[n_heads + 2].children[0].value != cells[-1].children[0].value
    grid.buttons[(1, 2)].click()
    layer, head = w.children[0].children
    assert (layer.value, head.value) == (1, 2) and "layer 1, head 2" in w.children[1].value
    assert [k for k, b in grid.buttons.items() if b.button_style == "info"] == [(1, 2)]
    assert not re.search(r"https?://|<script|<link", "".join(c.children[0].value for c in cells))


def _stripe(html, row):
    """The opacities of one row of an HTML heatmap, in column order."""
    tr = html.split("<tr>")[row + 2]
    return [float(a) for a in re.findall(r"<td[^>]*rgba\(\d+,\d+,\d+,([0-9.]+)\)", tr)]


def test_heatmaps_carry_a_colour_bar_and_shade_on_its_scale(tiny):
    res = wb.inspect.attention(tiny("gpt2"), TEXT)
    html = pattern_html(res.pattern(1, 0), res.tokens, "L1 H0")
    bar = re.search(r'class="wb-colorbar" data-vmin="([^"]+)" data-vmax="([^"]+)"', html)
    assert bar and (float(bar.group(1)), float(bar.group(2))) == (0.0, 1.0)
    last = len(res.tokens) - 1
    np.testing.assert_allclose(_stripe(html, last), res.pattern(1, 0)[last].numpy(), atol=1e-3)
    other = colorbar_html(-2.5, 3.0, "effect")
    assert 'data-vmin="-2.5" data-vmax="3.0"' in other and ">-2.5<" in other and ">3<" in other
    lens = logit_lens_explorer(tiny("llama"), TEXT)
    assert 'class="wb-colorbar" data-vmin="0.0" data-vmax="1.0"' in lens.children[1].value
    fig = res.plot(layer=0)  # the matplotlib grid gets a colour bar too
    assert any(a.get_label() == "<colorbar>" for a in fig.axes)


def test_lens_explorer_shades_the_models_answer_by_default_and_keeps_controls_in_view(tiny):
    m = tiny("llama")
    w = logit_lens_explorer(m, TEXT)
    html = w.children[1].value
    frame = next(iter(w.frames.values()))
    top = frame[frame["layer"] == m.n_layers - 1]
    end = top[top["position"] == top["position"].max()].iloc[0]
    # the default target is what the model says after the text: top-1 (rank 0) at the last layer's end
    assert end["rank"] == 0 and end["target"] == end["top_tokens"][0]
    assert f"the model's answer {show_token(end['target'])}" in html
    # every cell is shaded by P(answer), the answer position included, and the end column gives rank and P
    assert _stripe(html, 0)[-1] == pytest.approx(end["prob"], abs=1e-3)
    assert f"0, {end['prob']:.3f}</td>" in html.split("<tr>")[2]
    assert "max-height:" in html and "position: sticky" in html
    box, choice = w.children[0].children
    choice.value = "(next token)"  # the old view is still one click away; its end has no target
    assert "P(next token)" in w.children[1].value and "–</td>" in w.children[1].value


def test_every_recompute_shows_a_busy_line_and_disables_the_controls(tiny):
    w = logit_lens_explorer(tiny("llama"), "The cat sat")
    box, choice = w.children[0].children
    status = w.children[2]
    seen = []
    status.observe(lambda ch: seen.append((ch["new"], box.disabled, choice.disabled)), names="value")
    box.value = "A dog ran"
    assert "computing" in seen[0][0] and seen[0][1:] == (True, True)
    assert seen[-1] == ("", False, False) and not box.disabled
    a = attention_explorer(tiny("gpt2"), "The cat sat")
    layer, head = a.children[0].children
    assert not layer.continuous_update and not head.continuous_update  # no queue of redraws per step
    busy_seen = []
    a.children[3].observe(lambda ch: busy_seen.append(ch["new"]), names="value")
    head.value = 1
    assert "drawing" in busy_seen[0] and busy_seen[-1] == ""


def test_one_token_display_in_tables_plots_and_widgets(tiny):
    m = tiny("gpt2")
    assert show_token("Ġcat") == show_token(" cat") == show_token("▁cat") == "␣cat" and show_token("Ċ") == "↵"
    lens = wb.logit_lens(m, TEXT)
    assert lens["token"].str.contains("Ġ").any()  # the data keep the tokenizer's pieces ...
    shown = readable(lens)                       # ... and what is shown does not
    assert not shown["token"].str.contains(RAW).any() and "↵" in set(shown["token"])
    assert all(not RAW.search(t) for tops in shown["top_tokens"] for t in tops)
    w = attention_explorer(m, TEXT)
    lw = logit_lens_explorer(m, TEXT, targets=[" mat"])
    for html in (w.children[1].value, lw.children[1].value):
        assert "␣the" in html
        assert not RAW.search(html) and "↵" in html
    assert ("␣mat", " mat") in lw.children[0].children[1].options
    fig = wb.inspect.attention(m, TEXT).plot(layer=0, head=0)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "↵" in ticks and not any(RAW.search(t) for t in ticks)
    ax = wb.inspect.plot_logit_lens(lens)
    ticks = [t.get_text() for t in ax.get_xticklabels()] + [t.get_text() for t in ax.texts]
    assert "↵" in ticks and not any(RAW.search(t) for t in ticks)
    assert not RAW.search(wb.inspect.attention(m, TEXT)._repr_html_())
    matplotlib.pyplot.close("all")


def test_tables_derived_from_results_show_tokens_as_text(tiny):
    """`lens.tail(8)` in a notebook showed 76 raw `Ġ` markers: a frame derived from a result is
    data (no longer the result), but its display follows the one token rule; the values do not change."""
    m = tiny("gpt2")
    lens = wb.logit_lens(m, TEXT, targets=[" mat"])
    ll = wb.loglikelihood(m, [("The cat", " sat on")], cache=False)
    attr = wb.attribute(m, "The cat sat on the", " mat", random_check=False)
    shown = [lens, lens.tail(8), lens[lens.layer == 0][["layer", "token", "top_tokens"]], lens["token"],
             lens.tail(3)["top_tokens"], ll, ll[["tokens"]], attr, attr.sort_values("attribution")]
    for frame in shown:
        for text in (repr(frame), frame.to_string(), getattr(frame, "_repr_html_", lambda: "")() or ""):
            assert not RAW.search(text), (type(frame).__name__, text[:200])
    assert "␣" in repr(lens.tail(8)) and "␣" in lens.tail(8)._repr_html_()
    assert lens.tail(8)["token"].str.contains("Ġ").any()          # the data keep the tokenizer's pieces
    assert RAW.search(pd.DataFrame(lens.tail(8)).to_string())      # (what a plain frame would have shown)
    assert list(lens.tail(8)["token"]) == list(pd.DataFrame(lens)["token"].tail(8))


def test_opening_a_head_scrolls_its_title_into_view_and_buttons_sit_under_their_thumbnails(tiny):
    """The opened heatmap is above the overview: a click sends the browser the instruction to
    scroll to the heatmap's title (the browser test checks the title lands in the viewport). Each
    button is sized against its own thumbnail, with the row gap after it."""
    from workbench.widgets.attention import BUTTON_PX, ROW_GAP_PX, THUMB_PX
    w = attention_explorer(tiny("gpt2"), TEXT)
    assert w.scroller.outputs == ()                         # nothing scrolls until a head is opened
    w.overview.buttons[(1, 3)].click()
    (shown,) = w.scroller.outputs
    js = shown["data"]["application/javascript"]
    assert f'getElementById("{w.anchor}")' in js and "scrollIntoView" in js
    assert f'id="{w.anchor}"' in w.children[1].value and "layer 1, head 3" in w.children[1].value
    cell = next(c for c in w.overview.children if hasattr(c, "children"))
    thumb, button = cell.children
    assert thumb.layout.height == f"{THUMB_PX + 2}px" and button.layout.height == f"{BUTTON_PX}px"
    assert button.layout.margin == "0" and cell.layout.margin == f"0 0 {ROW_GAP_PX}px 0"
    assert attention_explorer(tiny("gpt2"), TEXT).anchor != w.anchor   # two explorers, two titles

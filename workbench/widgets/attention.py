"""Attention-head explorer: pick layer and head with sliders; the pattern is an inline HTML
heatmap (query rows x key columns)."""
from __future__ import annotations

from workbench.widgets.html import CELL, TABLE, esc, shade


def pattern_html(pattern, tokens, title: str = "") -> str:
    """HTML heatmap of one head's attention probabilities [query, key]."""
    head = "".join(f'<th style="{CELL}; writing-mode: vertical-rl">{esc(t)}</th>' for t in tokens)
    rows = []
    for q, tq in enumerate(tokens):
        tds = "".join(f'<td style="{CELL}; {shade(float(pattern[q, k]))}" title="{esc(tq)} → {esc(tk)}: '
                      f'{float(pattern[q, k]):.3f}">{float(pattern[q, k]):.2f}</td>' for k, tk in enumerate(tokens))
        rows.append(f'<tr><th style="{CELL}; text-align: right">{esc(tq)}</th>{tds}</tr>')
    return (f'<div style="font:12px sans-serif">{esc(title)} (rows: query, columns: key)</div>'
            f'<div style="overflow:auto"><table style="{TABLE}"><tr><th></th>{head}</tr>{"".join(rows)}</table></div>')


def attention_explorer(model, text: str):
    """A widget with layer/head sliders over the attention patterns of ``text`` (computed once;
    eager attention is switched on for that call only). Returns an ``ipywidgets.VBox``."""
    import ipywidgets as W

    from workbench.inspect.attention import attention

    res = attention(model, text)
    n_layers, n_heads = len(res.patterns), next(iter(res.patterns.values())).shape[0]
    layer = W.IntSlider(0, 0, n_layers - 1, description="layer")
    head = W.IntSlider(0, 0, n_heads - 1, description="head")
    out = W.HTML()

    def refresh(*_):
        out.value = pattern_html(res.pattern(layer.value, head.value), res.tokens, f"layer {layer.value}, head {head.value}")

    layer.observe(refresh, names="value")
    head.observe(refresh, names="value")
    refresh()
    notes = W.HTML(f'<div style="font:11px sans-serif; color:#666">{esc("; ".join(res.notes))}</div>') if res.notes else W.HTML()
    w = W.VBox([W.HBox([layer, head]), out, notes])
    w.result = res
    return w

"""Logit-lens explorer: a layer x position grid of top-1 predictions, shaded by the probability
of the chosen target; pick a cell's top-k from the dropdowns."""
from __future__ import annotations

from workbench.widgets.html import CELL, TABLE, esc, shade


def lens_table_html(frame, target=None) -> str:
    """HTML table: rows = layers (last at the top), columns = positions; each cell the top-1
    token, shaded by the target's probability (default: each position's next token)."""
    df = frame if target is None else frame[frame["target"] == target]
    cells = df.drop_duplicates(["layer", "position"]).set_index(["layer", "position"])
    layers = sorted(df["layer"].unique(), reverse=True)
    positions = sorted(df["position"].unique())
    tokens = cells.reset_index().drop_duplicates("position").set_index("position")["token"]
    head = "".join(f'<th style="{CELL}">{esc(tokens[p])}</th>' for p in positions)
    rows = []
    for layer in layers:
        tds = []
        for p in positions:
            r = cells.loc[(layer, p)]
            prob = r["prob"] if r["prob"] == r["prob"] and r["prob"] is not None else 0.0
            title = esc(", ".join(f"{t} {q:.3f}" for t, q in zip(r["top_tokens"], r["top_probs"])))
            tds.append(f'<td style="{CELL}; {shade(prob)}" title="{title}">{esc(r["top_tokens"][0])}</td>')
        rows.append(f'<tr><th style="{CELL}">L{layer}</th>{"".join(tds)}</tr>')
    what = f"P({esc(target)})" if target is not None else "P(next token)"
    return (f'<div style="overflow-x:auto"><div style="font:12px sans-serif">top-1 per layer; shade = {what}; '
            f'hover a cell for the top-k</div><table style="{TABLE}"><tr><th style="{CELL}"></th>{head}</tr>'
            f'{"".join(rows)}</table></div>')


def logit_lens_explorer(model, text: str, targets=None, k: int = 5):
    """A widget: text box + target dropdown + the lens table; edit the text and press Enter to
    recompute. Returns an ``ipywidgets.VBox`` (display it in JupyterLab)."""
    import ipywidgets as W

    from workbench.inspect.lens import logit_lens

    box = W.Text(value=text, description="text", continuous_update=False, layout=W.Layout(width="90%"))
    choice = W.Dropdown(options=["(next token)"] + list(targets or []), description="target")
    out = W.HTML()
    state = {}

    def refresh(*_):
        tgt = None if choice.value == "(next token)" else choice.value
        key = (box.value, tgt)
        if key not in state:
            state[key] = logit_lens(model, box.value, targets=[tgt] if tgt else None, k=k)
        out.value = lens_table_html(state[key], tgt)

    box.observe(refresh, names="value")
    choice.observe(refresh, names="value")
    refresh()
    w = W.VBox([W.HBox([box, choice]), out])
    w.frames = state  # the lens frames computed so far, for inspection
    return w

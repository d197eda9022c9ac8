"""Logit-lens explorer: a layer x position grid of top-1 predictions, shaded by the probability
of a target token. By default the target is the model's answer (its top-1 prediction after the
text), so the grid shows at which layer, and where, that answer emerges; the last column gives
the answer's rank and probability at each layer. The table scrolls inside a box of bounded
height under sticky headers, so the controls above it never scroll away.
"""
from __future__ import annotations

from workbench.display import show_token
from workbench.inspect.lens import logit_lens
from workbench.widgets.busy import busy, status_line
from workbench.widgets.html import CELL, STICKY_LEFT, STICKY_TOP, TABLE, colorbar_html, esc, shade, tok

ANSWER = "(the model's answer)"
NEXT = "(next token)"
MAX_HEIGHT = "420px"


def _cell_title(r) -> str:
    tops = ", ".join(f"{tok(t)} {q:.3f}" for t, q in zip(r["top_tokens"], r["top_probs"]))
    if r["target"] is None or r["prob"] != r["prob"]:
        return f"top-{len(r['top_tokens'])}: {tops}; no target here (the text ends)"
    return f"top-{len(r['top_tokens'])}: {tops}; {tok(r['target'])}: rank {int(r['rank'])}, P={r['prob']:.3f}"


def lens_table_html(frame, target=None, caption: str | None = None) -> str:
    """HTML table: rows = layers (last at the top), columns = positions; each cell the top-1
    token, shaded by the target's probability on a 0..1 colour bar (default target: each
    position's next token); hover a cell for its top-k and the target's rank. A last column
    gives the target's rank and probability at the last position."""
    df = frame if target is None else frame[frame["target"] == target]
    cells = df.drop_duplicates(["layer", "position"]).set_index(["layer", "position"])
    layers = sorted(df["layer"].unique(), reverse=True)
    positions = sorted(df["position"].unique())
    tokens = cells.reset_index().drop_duplicates("position").set_index("position")["token"]
    head = "".join(f'<th style="{CELL}; {STICKY_TOP}">{tok(tokens[p])}</th>' for p in positions)
    head += f'<th style="{CELL}; {STICKY_TOP}">rank, P at the end</th>'
    rows = []
    for layer in layers:
        tds = []
        for p in positions:
            r = cells.loc[(layer, p)]
            prob = r["prob"] if r["prob"] is not None and r["prob"] == r["prob"] else None
            style = shade(prob) if prob is not None else "background: repeating-linear-gradient(45deg,#fff,#fff 3px,#eee 3px,#eee 6px)"
            hit = prob is not None and r["rank"] == 0  # the target is this cell's top-1
            word = f"<b><u>{tok(r['top_tokens'][0])}</u></b>" if hit else tok(r["top_tokens"][0])
            tds.append(f'<td style="{CELL}; {style}" title="{_cell_title(r)}">{word}</td>')
        end = cells.loc[(layer, positions[-1])]
        rank = "–" if end["prob"] is None or end["prob"] != end["prob"] else f"{int(end['rank'])}, {end['prob']:.3f}"
        tds.append(f'<td style="{CELL}">{rank}</td>')
        rows.append(f'<tr><th style="{CELL}; {STICKY_LEFT}">L{layer}</th>{"".join(tds)}</tr>')
    what = caption or (f"P({esc(target)})" if target is not None else "P(next token)")
    return (f'<div style="font:12px sans-serif">top-1 per layer; shade = {what}; bold = the target is the '
            f'top-1; hover a cell for the top-k</div>{colorbar_html(0.0, 1.0, "probability of the target")}'
            f'<div style="max-height:{MAX_HEIGHT}; overflow:auto"><table style="{TABLE}">'
            f'<tr><th style="{CELL}; {STICKY_TOP}; {STICKY_LEFT}; z-index:2"></th>{head}</tr>'
            f'{"".join(rows)}</table></div>')


def model_answer(model, text: str) -> int:
    """The token id the model predicts after ``text`` (its final layer's top-1 at the end)."""
    last = logit_lens(model, text, k=1, layers=[model.n_layers - 1])
    tokens = last.sort_values("position")["top_tokens"].iloc[-1]
    return model.tokenizer.convert_tokens_to_ids(tokens[0])


def logit_lens_explorer(model, text: str, targets=None, k: int = 5):
    """A widget: text box + target dropdown + the lens table; edit the text and press Enter to
    recompute. The default target is the model's answer; ``(next token)`` shades each position
    by the token that follows it in the text; ``targets`` adds strings to choose. A status line
    shows while it computes. Returns an ``ipywidgets.VBox`` (display it in JupyterLab);
    ``.frames`` holds the lens frames computed so far, by (text, target)."""
    import ipywidgets as W

    box = W.Text(value=text, description="text", continuous_update=False, layout=W.Layout(width="70%"))
    options = [(ANSWER, ANSWER), (NEXT, NEXT)] + [(show_token(t), t) for t in (targets or [])]
    choice = W.Dropdown(options=options, value=ANSWER, description="target")
    out, status = W.HTML(), status_line()
    state, answers = {}, {}

    def refresh(*_):
        tgt = None if choice.value in (ANSWER, NEXT) else choice.value
        key = (box.value, choice.value if tgt is None else tgt)
        with busy(status, [box, choice], "computing the logit lens"):
            if key not in state:
                if choice.value == ANSWER:
                    answers[box.value] = model_answer(model, box.value)
                    state[key] = logit_lens(model, box.value, targets=[answers[box.value]], k=k)
                else:
                    state[key] = logit_lens(model, box.value, targets=[tgt] if tgt else None, k=k)
            frame = state[key]
            if choice.value == ANSWER:
                piece = frame["target"].dropna().iloc[0]
                out.value = lens_table_html(frame, piece, caption=f"P(the model's answer {tok(piece)})")
            else:
                out.value = lens_table_html(frame, tgt)

    box.observe(refresh, names="value")
    choice.observe(refresh, names="value")
    refresh()
    w = W.VBox([W.HBox([box, choice]), out, status])
    w.frames = state  # the lens frames computed so far, for inspection
    return w

"""Highlighted-token HTML: self-contained (inline styles only, no scripts, no CDN), so it renders
in JupyterLab, in exported HTML and in a browser with no internet."""
from __future__ import annotations

import html

import numpy as np

POS = (214, 39, 40)    # red: the token raises the target's log-probability
NEG = (31, 119, 180)   # blue: it lowers it


def _span(text: str, value: float | None, scale: float, role: str) -> str:
    shown = html.escape(text).replace("\n", "&#8629;\n")
    if role == "target":
        return (f'<span style="font-weight:bold;text-decoration:underline;padding:1px 0" '
                f'title="target">{shown}</span>')
    if role == "special" or value is None:
        return f'<span style="color:#888" title="not attributed (special token)">{shown}</span>'
    alpha = 0.0 if scale == 0 else min(1.0, abs(value) / scale) * 0.85
    r, g, b = POS if value >= 0 else NEG
    return (f'<span style="background:rgba({r},{g},{b},{alpha:.3f});border-radius:3px;padding:1px 0" '
            f'title="{value:+.4g}">{shown}</span>')


def _sanity_table(rows: list) -> str:
    if not rows:
        return ""
    mark = {True: "&#10003;", False: "&#10007; check", None: "&ndash;"}
    body = "".join(
        f"<tr><td>{html.escape(str(r['check']))}</td><td>{r['value']:.4g}</td>"
        f"<td>{r['reference']:.4g}</td><td>{mark[r['ok']]}</td>"
        f"<td style='text-align:left'>{html.escape(str(r['note']))}</td></tr>" for r in rows)
    return ("<table style='font-size:85%;border-collapse:collapse;margin-top:6px'>"
            "<tr><th>sanity check</th><th>value</th><th>reference</th><th>ok</th><th>note</th></tr>"
            f"{body}</table>")


def render_tokens(sequence: list, attribution, header: str = "", sanity: list | None = None) -> str:
    """HTML for one attribution.

    ``sequence``: ``[(text, role, feature_index)]`` in input order, role one of ``feature``,
    ``special``, ``target``; ``attribution``: one value per feature.
    """
    values = np.asarray(attribution, dtype=float)
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    spans = "".join(_span(text, values[i] if role == "feature" else None, scale, role)
                    for text, role, i in sequence)
    legend = (f"<div style='font-size:80%;color:#555'>red raises, blue lowers the target's log-probability; "
              f"full colour = {scale:.3g} nats; hover a token for its value</div>")
    return ("<div class='workbench-attribution' style='font-family:sans-serif;line-height:1.9'>"
            f"<div style='font-size:90%'>{header}</div>"
            f"<div style='font-family:monospace;white-space:pre-wrap;margin:4px 0'>{spans}</div>"
            f"{legend}{_sanity_table(sanity or [])}</div>")


def page(fragment: str, title: str = "attribution") -> str:
    """A complete HTML document around a fragment (for saving to a file)."""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body>{fragment}</body></html>")

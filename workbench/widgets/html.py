"""Small inline-HTML helpers shared by the explorers (no external assets): escaping, the one
token display (:func:`workbench.display.show_token`), cell shading and colour bars.

>>> tok("Ġcat"), esc("a < b")
('␣cat', 'a &lt; b')
>>> "0" in colorbar_html(0, 1, "attention") and "1" in colorbar_html(0, 1, "attention")
True
"""
from __future__ import annotations

import html

from workbench.display import show_token

BLUE = (33, 102, 172)


def esc(s) -> str:
    """HTML-escape text (a caption, a title); tokens go through :func:`tok`."""
    return html.escape(str(s))


def tok(t) -> str:
    """A token in its display form (``␣`` for a space, ``↵`` for a newline), HTML-escaped."""
    return html.escape(show_token(t))


def shade(value: float, vmin: float = 0.0, vmax: float = 1.0, rgb=BLUE) -> str:
    """Background colour for ``value`` on the scale [``vmin``, ``vmax``] (opacity 0 to 1, clipped),
    with the text colour that stays readable on it."""
    span = (vmax - vmin) or 1.0
    v = max(0.0, min(1.0, (float(value) - vmin) / span))
    return f"background: rgba({rgb[0]},{rgb[1]},{rgb[2]},{v:.3f}); color: {'white' if v > 0.55 else 'black'}"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def colorbar_html(vmin: float, vmax: float, label: str, rgb=BLUE) -> str:
    """A horizontal colour bar (the legend of a heatmap shaded by :func:`shade`): the gradient
    from ``vmin`` to ``vmax`` with both ends labelled."""
    r, g, b = rgb
    return (f'<div class="wb-colorbar" data-vmin="{vmin!r}" data-vmax="{vmax!r}" '
            f'style="display:flex; align-items:center; gap:6px; font:12px sans-serif; margin:4px 0">'
            f'<span>{esc(label)}:</span><span>{_fmt(vmin)}</span>'
            f'<span style="display:inline-block; width:160px; height:12px; border:1px solid #999; '
            f'background: linear-gradient(to right, rgba({r},{g},{b},0), rgba({r},{g},{b},1))"></span>'
            f'<span>{_fmt(vmax)}</span></div>')


TABLE = "border-collapse: collapse; font-family: monospace; font-size: 12px"
CELL = "border: 1px solid #ddd; padding: 2px 4px; text-align: center; white-space: nowrap"
# header cells that stay in view while the table scrolls under them
STICKY_TOP = "position: sticky; top: 0; background: white; z-index: 1"
STICKY_LEFT = "position: sticky; left: 0; background: white; z-index: 1"

"""Small inline-HTML helpers shared by the explorers (no external assets)."""
from __future__ import annotations

import html


def esc(s) -> str:
    return html.escape(str(s).replace("Ġ", "␣").replace("Ċ", "↵").replace("▁", "␣"))


def shade(value: float, rgb=(33, 102, 172)) -> str:
    """Background colour with opacity ``value`` in [0, 1]."""
    v = max(0.0, min(1.0, float(value)))
    return f"background: rgba({rgb[0]},{rgb[1]},{rgb[2]},{v:.3f}); color: {'white' if v > 0.55 else 'black'}"


TABLE = "border-collapse: collapse; font-family: monospace; font-size: 11px"
CELL = "border: 1px solid #ddd; padding: 2px 4px; text-align: center; white-space: nowrap"

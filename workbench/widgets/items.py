"""A browser for the items behind a probe's (or benchmark's) number: filter by category, search
the text, sort by any score, page through. Renders as inline HTML (no CDN assets).

>>> import pandas as pd
>>> from workbench.widgets.items import item_browser
>>> items = pd.DataFrame({"sent": ["a b", "c d", "e f"], "bias_type": ["x", "y", "x"], "diff": [0.1, 2.0, -1.0]})
>>> w = item_browser(items, category="bias_type", sort_by="diff")
>>> w.category.value = "x"
>>> w.view()["sent"].tolist()
['a b', 'e f']
"""
from __future__ import annotations

import html

import pandas as pd

from workbench.display import readable
from workbench.errors import InvalidInputError

ALL = "(all)"


def _items_of(result) -> tuple[pd.DataFrame, str | None]:
    if isinstance(result, pd.DataFrame):
        return result, None
    items = getattr(result, "items", None)
    if isinstance(items, pd.DataFrame):
        spec = getattr(result, "spec", None)
        cats = list(getattr(spec, "categories", ()) or ())
        return items, (cats[0] if cats else None)
    raise InvalidInputError(f"item_browser takes a probe result (with .items) or a DataFrame, "
                            f"got {type(result).__name__}")


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 6px'>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for v in row:
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"<td style='padding:2px 6px;border-top:1px solid #ddd;vertical-align:top'>"
                         f"{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table style='border-collapse:collapse;font:12px sans-serif'><tr>{head}</tr>"
            + "".join(rows) + "</table>")


def item_browser(result, category: str | None = None, sort_by: str | None = None, columns=None,
                 page_size: int = 10):
    """An ``ipywidgets.VBox`` to browse ``result.items`` (or a DataFrame).

    ``category``: column to filter on (default: the probe's main category); ``sort_by``: a numeric
    column to sort by (default: the first numeric one, largest first); ``columns``: the columns to
    show (default: all but list-valued ones). ``.view()`` returns the rows currently selected.
    """
    import ipywidgets as W

    items, default_category = _items_of(result)
    if items.empty:
        raise InvalidInputError("there are no items to browse (the result has no rows)")
    if not isinstance(page_size, int) or page_size < 1:
        raise InvalidInputError(f"page_size must be a positive int, got {page_size!r}")
    category = category or default_category
    numeric = [c for c in items.columns if pd.api.types.is_numeric_dtype(items[c])]
    for name, col in (("category", category), ("sort_by", sort_by)):
        if col is not None and col not in items.columns:
            raise InvalidInputError(f"{name}={col!r} is not a column; columns: {list(items.columns)}")
    if columns is None:
        columns = [c for c in items.columns if not items[c].map(lambda v: isinstance(v, (list, dict))).any()]
    cat = W.Dropdown(options=[ALL] + (sorted(items[category].astype(str).unique()) if category else []),
                     description=category or "category", disabled=category is None)
    sort = W.Dropdown(options=["(data order)"] + numeric, value=sort_by or (numeric[0] if numeric else "(data order)"),
                      description="sort by")
    descending = W.Checkbox(value=True, description="largest first")
    search = W.Text(value="", placeholder="search the text", description="search", continuous_update=False)
    page = W.BoundedIntText(value=1, min=1, max=1, description="page")
    info, table = W.HTML(), W.HTML()

    def view() -> pd.DataFrame:
        rows = items
        if category and cat.value != ALL:
            rows = rows[rows[category].astype(str) == cat.value]
        if search.value.strip():
            needle = search.value.strip().lower()
            text_cols = [c for c in columns if not pd.api.types.is_numeric_dtype(items[c])]
            hit = rows[text_cols].apply(lambda col: col.astype(str).str.lower().str.contains(needle, regex=False))
            rows = rows[hit.any(axis=1)] if text_cols else rows.iloc[0:0]
        if sort.value != "(data order)":
            rows = rows.sort_values(sort.value, ascending=not descending.value, kind="stable")
        return rows[columns]

    def refresh(*_):
        rows = view()
        n_pages = max(1, -(-len(rows) // page_size))
        page.max = n_pages
        start = (min(page.value, n_pages) - 1) * page_size
        info.value = f"<span style='font:12px sans-serif'>{len(rows)} of {len(items)} items; page {min(page.value, n_pages)} of {n_pages}</span>"
        table.value = _table_html(readable(rows.iloc[start:start + page_size]))

    for w in (cat, sort, descending, search, page):
        w.observe(refresh, names="value")
    refresh()
    box = W.VBox([W.HBox([cat, sort, descending]), W.HBox([search, page]), info, table])
    box.category, box.sort, box.descending, box.search, box.page, box.table = cat, sort, descending, search, page, table
    box.view = view
    return box

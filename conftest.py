"""Checks on every notebook that pytest runs through nbval (``bash run.sh test`` runs
``pytest --nbval-lax`` over ``notebooks/`` and ``audits/``): nbval-lax compares no outputs, so
what a reader must never see is checked here, cell by cell, on the outputs just produced.

* No tokenizer's byte-level markers (``Ġ`` for a space, ``Ċ`` for a newline, SentencePiece's
  ``▁``): every table and plot shows tokens as text (``workbench.display``).
"""
from __future__ import annotations

import pytest

RAW_TOKEN_MARKERS = "ĠĊ▁"


def output_texts(outputs) -> list[str]:
    """The text of each output (streams, text/* and JSON data; images are skipped)."""
    texts = []
    for out in outputs or []:
        out = dict(out)
        if out.get("text"):
            texts.append(str(out["text"]))
        for mime, value in (out.get("data") or {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                texts.append(str(value))
        if out.get("output_type") == "error":
            texts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return texts


def raw_token_markers(outputs) -> list[str]:
    """The outputs that show a tokenizer's own whitespace markers (a short excerpt of each)."""
    found = []
    for text in output_texts(outputs):
        at = next((text.index(c) for c in RAW_TOKEN_MARKERS if c in text), None)
        if at is not None:
            found.append(text[max(0, at - 60):at + 60])
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if type(item).__name__ == "IPyNbCell":   # an nbval cell: its fresh outputs are item.test_outputs
        shown = raw_token_markers(getattr(item, "test_outputs", None))
        if shown:
            raise AssertionError(f"the cell's output shows a tokenizer's byte-level markers ({RAW_TOKEN_MARKERS}) where "
                                 f"tokens should read as text (workbench.display): {shown[0]!r}")
    return result

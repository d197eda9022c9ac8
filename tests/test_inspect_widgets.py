"""The explorers build, react to their controls, and reference no external assets."""
import re

import pytest

pytest.importorskip("ipywidgets")
from workbench.widgets import attention_explorer, logit_lens_explorer  # noqa: E402


def _html(widget):
    return [c.value for c in widget.children if hasattr(c, "value") and isinstance(c.value, str)]


def test_logit_lens_explorer(tiny):
    m = tiny("llama")
    w = logit_lens_explorer(m, "The cat sat on the", targets=[" mat"])
    table = w.children[1].value
    assert table.count("<tr>") == m.n_layers + 1
    assert "␣the" in table  # the input tokens label the columns
    box, choice = w.children[0].children
    choice.value = " mat"
    assert "P( mat)" in w.children[1].value
    box.value = "A dog"
    assert "dog" in w.children[1].value and len(w.frames) == 3
    assert not re.search(r"https?://|<script|<link", w.children[1].value)


def test_attention_explorer(tiny):
    w = attention_explorer(tiny("gpt2"), "The cat sat")
    layer, head = w.children[0].children
    first = w.children[1].value
    head.value = 3
    layer.value = 1
    assert w.children[1].value != first and "layer 1, head 3" in w.children[1].value
    assert "eager" in w.children[2].value
    assert not re.search(r"https?://|<script|<link", w.children[1].value)

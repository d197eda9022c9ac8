"""Notebook 08 says what it prints: every number its prose quotes about a result is written by
the code from the run's variables (a `say(f"...")` cell), never typed into a markdown cell, where
it drifted from the outputs (the markdown said some clean items were flagged by 8-grams while the
cell above printed "clean items flagged 0/12")."""
import ast
import re
from pathlib import Path

import pytest

from notebooks.build import build

ROOT = Path(__file__).resolve().parents[1]
NB08 = ROOT / "notebooks" / "src" / "08_how_was_it_made.py"

# numbers the markdown may hold because they are definitions, not results: chance (0.5), the
# false-positive rates and the share of tokens that define a metric, the non-members a TPR at 1%
# FPR needs, the n-gram lengths of the tests, and the years of the papers cited
DEFINITIONS = {"0.5", "1%", "5%", "20%", "100", "13", "8", "2023", "2024"}
NAMES = re.compile(r"`[^`]*`|GPT-3|SmolLM2|section \d+|^#+ \d+\.", re.M)   # code, names and section numbers hold digits too
NUMBER = re.compile(r"\d+(?:\.\d+)?%?")


def _typed_text(node) -> list[str]:
    """The literal text of a string expression (f-strings' format specs such as `.3f` left out)."""
    if isinstance(node, ast.FormattedValue):
        return _typed_text(node.value)
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    return [t for child in ast.iter_child_nodes(node) for t in _typed_text(child)]


def _cells():
    return build(NB08).cells


def test_the_markdown_quotes_no_result_by_hand():
    quoted = {}
    for cell in _cells():
        if cell.cell_type == "markdown":
            for number in NUMBER.findall(NAMES.sub("", cell.source)):
                if number not in DEFINITIONS:
                    quoted.setdefault(number, cell.source[:80])
    assert not quoted, f"numbers typed into the markdown (write them from variables with say(f'...')): {quoted}"


def test_every_sentence_about_a_result_is_written_from_variables():
    said = []
    for cell in _cells():
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "say":
                said.append(node)
    assert len(said) >= 8
    for call in said:   # each sentence interpolates the run's values ...
        values = [n for n in ast.walk(call.args[0]) if isinstance(n, ast.FormattedValue)]
        assert values, ast.unparse(call)[:120]
        # ... and types no number of its own beyond the definitions above
        typed = _typed_text(call.args[0])
        for number in NUMBER.findall(NAMES.sub("", " ".join(typed))):
            assert number in DEFINITIONS, (number, ast.unparse(call)[:160])


@pytest.mark.parametrize("p, shown", [(0.0, "< 1e-4"), (1.44e-05, "< 1e-4"), (0.0001, "0.0001"), (0.31, "0.31")])
def test_p_values_are_shown_with_their_precision(p, shown):
    from workbench.display import format_p
    assert format_p(p) == shown

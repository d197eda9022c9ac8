"""The probe item browser: filters, search, sorting and paging change what it shows."""
import pandas as pd
import pytest

from workbench.errors import InvalidInputError
from workbench.widgets.items import item_browser

ITEMS = pd.DataFrame({
    "sent_more": ["Women are bad at maths.", "Old people can't use phones.", "Men don't cry.", "Poor people are lazy."],
    "bias_type": ["gender", "age", "gender", "socioeconomic"],
    "likelihood_diff": [0.5, 3.0, 1.5, 0.1],
    "token_logprobs": [[-1.0], [-2.0], [-3.0], [-4.0]],  # list-valued: hidden by default
})


def test_filter_search_sort_and_page():
    w = item_browser(ITEMS, category="bias_type", page_size=2)
    assert w.sort.value == "likelihood_diff"  # the first numeric column, largest first
    assert w.view()["likelihood_diff"].tolist() == [3.0, 1.5, 0.5, 0.1]
    assert "token_logprobs" not in w.view().columns
    assert "Old people" in w.table.value and "Poor people" not in w.table.value  # page 1 of 2
    w.page.value = 2
    assert "Poor people" in w.table.value and "Old people" not in w.table.value
    w.category.value = "gender"
    assert w.view()["sent_more"].tolist() == ["Men don't cry.", "Women are bad at maths."]
    w.descending.value = False
    assert w.view()["likelihood_diff"].tolist() == [0.5, 1.5]
    w.category.value = "(all)"
    w.search.value = "PEOPLE"
    assert len(w.view()) == 2


def test_html_is_escaped():
    w = item_browser(pd.DataFrame({"text": ["<script>x</script>"], "v": [1.0]}))
    assert "<script>" not in w.table.value and "&lt;script&gt;" in w.table.value


def test_a_probe_result_is_browsed_by_its_main_category(tiny):
    from workbench.probes import api
    res = api.run_probe("occupations_pronouns", tiny("gpt2"), limit=12, n_boot=50)
    w = item_browser(res)
    assert w.category.description == res.spec.categories[0]
    assert len(w.view()) == len(res.items)


def test_bad_input():
    with pytest.raises(InvalidInputError, match="column"):
        item_browser(ITEMS, sort_by="nope")
    with pytest.raises(InvalidInputError, match="no rows"):
        item_browser(ITEMS.iloc[0:0])
    with pytest.raises(InvalidInputError, match="probe result"):
        item_browser([1, 2, 3])

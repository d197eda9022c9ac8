"""Dataset inference (Maini et al. 2024) on the tiny testbed: it finds a collection a model was
lightly fine-tuned on where single-text attacks show nothing beyond the blind baseline, and it is
calibrated on pairs of unseen collections from one distribution."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

import workbench as wb
from workbench.display import format_p
from workbench.errors import InvalidInputError
from workbench.testing import tiny_model
from workbench.training_data.testbed import finetune, synthetic_texts


@pytest.fixture(scope="module")
def light():
    """A copy of a tiny model fine-tuned lightly (2 epochs) on 120 of 240 same-source texts."""
    base = tiny_model("gpt2")
    texts = synthetic_texts(240, "a", seed=0)
    mem, non = texts[:120], texts[120:]
    return base, finetune(base, mem, epochs=2, lr=2e-3, seed=0), mem, non


def test_detects_a_trained_on_collection_where_single_texts_are_weak(light):
    _, tuned, mem, non = light
    mia = wb.membership(tuned, mem, non, methods=("loss", "min_k", "min_k_pp"), n_boot=200, cache=False)
    s = mia.summary()
    assert (s[(s.metric == "auroc") & (s.method != "blind")].value < 0.7).all()     # single texts: weak
    assert not mia.findings().beyond_blind.any()
    ps = [wb.dataset_inference(tuned, suspect=mem, validation=non, seed=sd).p_value for sd in range(6)]
    assert np.median(ps) < 0.05                                                  # the collection: found


def test_result_shape_and_the_test_it_reports(light):
    _, tuned, mem, non = light
    di = wb.dataset_inference(tuned, suspect=mem, validation=non, seed=3)
    s = di.summary()
    assert list(s.columns) == ["test", "statistic", "p_value", "n"] and s.test[0] == "dataset_inference"
    items = di.items
    assert len(items) == 240 and (items.half == "test").sum() == 120 == s.n[0]
    assert {"loss", "zlib", "min_k@0.2", "min_k_pp@0.2", "combined"} <= set(items.columns)
    assert items[items.half == "train"].combined.isna().all()
    # the reported p-value is the one-sided Welch test on the held-out halves' combined scores
    test = items[items.half == "test"]
    a, b = (test[test.collection == c].combined for c in ("suspect", "validation"))
    r = sps.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert di.p_value == pytest.approx(r.pvalue) and s.statistic[0] == pytest.approx(r.statistic)
    # seeded: the same seed gives the same halves and p; features do not depend on the seed
    again = wb.dataset_inference(tuned, suspect=mem, validation=non, seed=3)
    assert again.p_value == di.p_value
    assert (items.groupby("collection").half.apply(lambda h: (h == "train").sum()) == 60).all()


def test_calibrated_on_unseen_collections_of_one_distribution():
    base = tiny_model("gpt2")
    ps = []
    for sd in range(10):
        tx = synthetic_texts(160, "a", seed=100 + sd)
        ps.append(wb.dataset_inference(base, suspect=tx[:80], validation=tx[80:], seed=sd, cache=False).p_value)
    ps = np.array(ps)
    assert (ps < 0.05).sum() <= 2           # false positives: about 1 in 20 expected
    assert ps.mean() > 0.3                  # not systematically small (uniform: mean 0.5)


def test_bad_inputs():
    m = tiny_model("gpt2")
    tx = synthetic_texts(12, "a", seed=0)
    with pytest.raises(InvalidInputError, match="at least 4"):
        wb.dataset_inference(m, suspect=tx[:3], validation=tx[3:], cache=False)
    with pytest.raises(InvalidInputError, match="both the suspect and the validation"):
        wb.dataset_inference(m, suspect=tx[:6], validation=tx[5:], cache=False)


def test_repeated_texts_count_once_and_are_said():
    """A text repeated within a collection could sit in both halves (fitted on, then tested)."""
    m = tiny_model("gpt2")
    texts = synthetic_texts(16, "a", seed=2)
    with pytest.warns(UserWarning, match="3 repeated suspect text"):
        di = wb.dataset_inference(m, suspect=texts[:8] + texts[:3], validation=texts[8:], cache=False)
    assert len(di.items) == 16 and di.details["duplicates_dropped"] == {"suspect": 3, "validation": 0}
    assert di.details["n_suspect"] == 8


def test_the_histogram_uses_the_same_bins_for_both_collections_and_a_p_value_is_never_zero(light):
    """The two collections' histograms had bins of different widths (15 bins over each one's own
    range), so their heights did not compare; and the title printed p-values that the notebook's
    table showed as 0.0."""
    import matplotlib
    matplotlib.use("Agg")
    _, tuned, mem, non = light
    di = wb.dataset_inference(tuned, suspect=mem, validation=non[:60], seed=3)
    ax = di.plot()
    edges = {}
    for container, label in zip(ax.containers, ("suspect", "validation")):
        edges[label] = np.round([patch.get_x() for patch in container.patches] + [container.patches[-1].get_x()
                                 + container.patches[-1].get_width()], 9)
    assert len(edges) == 2 and np.array_equal(edges["suspect"], edges["validation"])
    title = ax.get_title()
    shown = format_p(di.p_value)
    assert title.endswith(shown if shown.startswith("<") else f"p = {shown}") and not title.endswith(("p = 0.0", "p = 0"))
    matplotlib.pyplot.close("all")

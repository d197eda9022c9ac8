"""One result shape: every result answers ``.to_frame()``, ``.summary()``, ``.plot()`` and carries
the same provenance keys, and the results that are tables (scoring frames, the logit lens,
paired comparisons, attributions) stay pandas DataFrames that behave exactly as before."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.results import ResultFrame  # noqa: E402
from workbench.testing import tiny_model  # noqa: E402

COMMON = {"model", "backend", "versions"}


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def _results(model):
    """One of each kind of result, on the same tiny model."""
    pairs = [("The cat", " sat"), ("The dog", " ran"), ("A bird", " flew")]
    return {
        "loglikelihood": wb.loglikelihood(model, pairs, cache=False),
        "perplexity": wb.perplexity(model, ["The cat sat on the mat.", "A dog ran."], cache=False),
        "generate": wb.generate(model, ["The cat"], max_new_tokens=3, cache=False),
        "logit_lens": wb.logit_lens(model, "The cat sat on the", targets=[" mat"], k=3),
        "capture": wb.capture(model, ["The cat sat", "A dog"], sites=["resid_post"]),
        "attention": wb.inspect.attention(model, "The cat sat on the mat"),
        "attribute": wb.attribute(model, "The cat sat on the", " mat", method="feature_ablation", random_check=False),
    }


def test_every_result_has_the_shape_and_the_common_provenance(model):
    for name, res in _results(model).items():
        frame, summary = res.to_frame(), res.summary()
        assert type(frame) is pd.DataFrame and len(frame), name
        assert isinstance(summary, pd.DataFrame) and len(summary), name
        assert COMMON <= set(res.provenance), (name, sorted(res.provenance))
        model_rec = res.provenance["model"]
        assert isinstance(model_rec, dict) and model_rec["fingerprint_id"] == model.fingerprint_id, name
        assert isinstance(res.plot(), (Axes, Figure)), name   # a Figure where the view has several panels
        matplotlib.pyplot.close("all")


def test_table_results_stay_dataframes_with_the_same_numbers(model):
    """`df.logprob`, `lens["prob"]`, pandas' plot accessor and derived frames work as before; the
    data are the plain frame's, bit for bit."""
    res = _results(model)
    ll, lens = res["loglikelihood"], res["logit_lens"]
    assert res["perplexity"].plot().get_xlabel() == "ppl"      # each score frame plots its main score
    matplotlib.pyplot.close("all")
    for df in (ll, lens, res["attribute"], res["perplexity"]):
        assert isinstance(df, ResultFrame) and isinstance(df, pd.DataFrame)
        plain = df.to_frame()
        pd.testing.assert_frame_equal(plain, pd.DataFrame(df))
        derived = df.iloc[:1]                               # derived frames are data, not the result
        assert isinstance(derived, pd.DataFrame) and not isinstance(derived, ResultFrame)
        pd.testing.assert_frame_equal(pd.DataFrame(derived), plain.iloc[:1])   # the same values
    np.testing.assert_array_equal(ll.logprob.to_numpy(), ll.to_frame()["logprob"].to_numpy())
    assert lens["prob"].dtype == float and ll.attrs["provenance"] is ll.provenance
    # pandas' own plotting is still reachable, with its arguments
    assert isinstance(ll.plot(x="n_tokens", y="logprob", kind="scatter"), Axes)
    assert isinstance(ll.plot.bar(y="logprob"), Axes)
    matplotlib.pyplot.close("all")
    # the summaries say something about the rows
    s = ll.summary()
    assert s.loc["logprob", "n"] == 3 and s.loc["logprob", "max"] == ll.logprob.max()
    by_layer = lens.summary()
    assert by_layer.layer.tolist() == sorted(lens.layer.unique())
    last = lens[lens.layer == lens.layer.max()]
    assert by_layer.mean_prob.iloc[-1] == pytest.approx(last.prob.mean())


def test_comparison_frame(model):
    from workbench.testing import tiny_model as tm
    other = tm("llama", seed=1)
    a = wb.run_probe("occupations_pronouns", model, limit=12, n_boot=200, cache=False)
    b = wb.run_probe("occupations_pronouns", other, limit=12, n_boot=200, cache=False)
    cmp = wb.compare(a, b)
    assert isinstance(cmp, ResultFrame) and {"diff", "p_adjusted"} <= set(cmp.columns)
    assert cmp.provenance["model_a"]["fingerprint_id"] == model.fingerprint_id
    assert cmp.provenance["model_b"]["fingerprint_id"] == other.fingerprint_id
    overall = cmp.summary()
    assert len(overall) == cmp[cmp.category == "all"].shape[0] and overall.significant.dtype == bool
    loose = wb.compare(a, b, level=0.5).summary()     # significance at the level compare was asked for
    assert (loose.significant == (loose.p_adjusted < 0.5)).all()
    assert isinstance(cmp.plot(), Axes)
    matplotlib.pyplot.close("all")


def test_a_capture_summary_leaves_padding_out(model):
    """The mean norm per token counts real tokens only: the short text's padding (zeros) would
    pull it down."""
    both = wb.capture(model, ["The cat sat on the mat", "A dog"], sites=["resid_post"])
    frame = both.to_frame().set_index("layer")
    t, mask = both["resid_post", 1], both.attention_mask.bool()
    assert frame.loc[1, "mean_norm"] == pytest.approx(float(t.norm(dim=-1)[mask].mean()))
    assert frame.loc[1, "mean_norm"] > float(t.norm(dim=-1).mean())   # padding would have lowered it
    assert both.plot(site="resid_post").get_lines()[0].get_ydata()[1] == pytest.approx(frame.loc[1, "mean_norm"])
    matplotlib.pyplot.close("all")
    s = both.summary().set_index("site")
    assert s.loc["resid_post", "n_layers"] == len(both.layers("resid_post"))

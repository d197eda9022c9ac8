"""Statistics with known answers: hand-computed tests, coverage on simulated data (fixed seeds)."""
from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from workbench.errors import InvalidInputError
from workbench.stats import (Comparable, Metric, benjamini_hochberg, bootstrap_ci, bootstrap_frame, compare,
                             mcnemar_exact, mean_metric, minimum_detectable_effect, paired_bootstrap, summarise)


def test_mcnemar_matches_hand_computed_binomial():
    # 3 items only A gets right, 10 only B: exact two-sided p = 2 * P(X <= 3), X ~ Bin(13, 1/2)
    a = np.r_[np.ones(3), np.zeros(10), np.ones(20), np.zeros(7)]
    b = np.r_[np.zeros(3), np.ones(10), np.ones(20), np.zeros(7)]
    expected = 2 * sum(comb(13, k) for k in range(4)) / 2 ** 13
    res = mcnemar_exact(a, b)
    assert res.p_value == pytest.approx(expected, rel=1e-12)
    assert (res.n_a_only, res.n_b_only, res.n) == (3, 10, 40)


def test_mcnemar_no_discordant_pairs_and_bad_input():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]).p_value == 1.0
    with pytest.raises(InvalidInputError, match="0/1"):
        mcnemar_exact([0.5, 1], [1, 0])
    with pytest.raises(InvalidInputError, match="same items"):
        mcnemar_exact([1, 0, 1], [1, 0])


def test_bootstrap_is_seeded_and_percentile_matches_quantiles():
    x = np.random.default_rng(3).normal(size=100)   # MIN_N_BOOTSTRAP: an interval is given
    assert bootstrap_ci(x, seed=7) == bootstrap_ci(x, seed=7)
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)
    # the frame-function path draws the same resamples: identical interval for the mean
    framed = bootstrap_frame(pd.DataFrame({"x": x}), lambda f: f.x.mean(), n_boot=300, seed=5)
    vector = bootstrap_ci(x, n_boot=300, seed=5)
    assert framed.low == pytest.approx(vector.low, abs=1e-12)
    assert framed.high == pytest.approx(vector.high, abs=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage_on_simulated_proportions(method):
    rng = np.random.default_rng(0)
    true_p, hits, n_sim = 0.3, 0, 150
    for i in range(n_sim):
        x = rng.random(120) < true_p
        ci = bootstrap_ci(x, n_boot=400, method=method, seed=i)
        hits += ci.low <= true_p <= ci.high
    assert 0.88 <= hits / n_sim <= 0.99


def test_bca_close_to_scipy_on_skewed_data():
    x = np.random.default_rng(1).exponential(size=120)
    ours = bootstrap_ci(x, method="bca", n_boot=4000, seed=0)
    ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method="BCa", random_state=0).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.03)
    assert ours.high == pytest.approx(ref.high, abs=0.03)
    # skewed data: BCa moves the interval right compared with the percentile one
    pct = bootstrap_ci(x, method="percentile", n_boot=4000, seed=0)
    assert ours.high > pct.high


def test_bootstrap_gives_no_interval_below_min_n_and_says_why():
    # a percentile bootstrap of 2 items is [min, max]: its "95%" interval of the mean covered the
    # true mean about half the time; below MIN_N_BOOTSTRAP the raw tools give none, like summarise
    rng = np.random.default_rng(2)
    for data, call in ((rng.normal(size=2), bootstrap_ci), (rng.normal(size=40), bootstrap_ci),
                       (pd.DataFrame({"x": rng.normal(size=2)}), lambda f: bootstrap_frame(f, lambda g: g.x.mean()))):
        with pytest.warns(UserWarning, match="MIN_N_BOOTSTRAP"):
            ci = call(data)
        assert np.isnan(ci.low) and np.isnan(ci.high) and np.isfinite(ci.estimate)
    covered = n_sim = 0   # what min_n=2 still gives, to study it: the under-coverage it guards against
    for i in range(400):
        ci = bootstrap_ci(rng.normal(size=2), n_boot=200, seed=i, min_n=2)
        covered += ci.low <= 0 <= ci.high
        n_sim += 1
    assert covered / n_sim < 0.6
    with pytest.raises(InvalidInputError, match="min_n"):
        bootstrap_ci([1.0, 2.0], min_n=0)


def test_bootstrap_rejects_bad_parameters():
    with pytest.raises(InvalidInputError, match="n_boot"):
        bootstrap_ci([1, 2, 3], n_boot=10)
    with pytest.raises(InvalidInputError, match="method"):
        bootstrap_ci([1, 2, 3], method="studentized")
    with pytest.raises(InvalidInputError, match="zero items"):
        bootstrap_ci([])


def test_benjamini_hochberg_hand_computed_and_nan():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted 0.005, 0.01, 0.03, 0.04 over m=4: 0.02, 0.02, 0.04, 0.04 (monotone step-up)
    np.testing.assert_allclose(benjamini_hochberg(p)[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(benjamini_hochberg(p)[4])


def test_minimum_detectable_effect_matches_normal_approximation():
    n = 1508
    approx = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * 0.5 / np.sqrt(n)
    assert minimum_detectable_effect(n) == pytest.approx(approx, rel=2e-3)
    assert minimum_detectable_effect(100) > minimum_detectable_effect(400)
    assert minimum_detectable_effect(400, sd=2.0) == pytest.approx(4 * minimum_detectable_effect(400), rel=1e-9)


def test_paired_bootstrap_exact_shift_and_null_calibration():
    a = np.random.default_rng(2).normal(size=60)
    res = paired_bootstrap(a, a - 0.25, n_boot=500)
    # 60 items < MIN_N_BOOTSTRAP: no bootstrap interval (it was a zero-width [0.25, 0.25]); p from the
    # exact paired permutation test
    assert res.diff == pytest.approx(0.25) and np.isnan(res.ci_low) and np.isnan(res.ci_high)
    assert res.p_value < 0.01
    rng = np.random.default_rng(4)
    rejections = sum(paired_bootstrap(rng.normal(size=40), rng.normal(size=40), n_boot=400, seed=i).p_value < 0.05
                     for i in range(100))
    assert rejections <= 12  # nominal 5 of 100 under the null


def _toy(label, correct, fp, cats=None, ids=None):
    items = pd.DataFrame({"id": ids if ids is not None else range(len(correct)), "correct": correct,
                          "score": np.asarray(correct, float) * 2.0,
                          "cat": cats if cats is not None else ["x"] * len(correct)})
    metrics = [mean_metric("accuracy", "correct", kind="binary", scale=100),
               mean_metric("mean_score", "score", kind="continuous"),
               Metric("odds", lambda c: c["correct"].mean(-1) / (1 - c["correct"].mean(-1) + 1e-9),
                      ("correct",))]
    return Comparable(items, metrics, "id", "cat", fp, label, "toy")


def test_compare_uses_mcnemar_for_binary_and_bh_across_categories():
    rng = np.random.default_rng(0)
    ca, cb = (rng.random(200) < 0.8).astype(int), (rng.random(200) < 0.6).astype(int)
    cats = np.where(np.arange(200) % 2, "odd", "even")
    out = compare(_toy("A", ca, "fa", cats), _toy("B", cb, "fb", cats), n_boot=300)
    assert list(out.columns[:7]) == ["metric", "category", "diff", "ci_low", "ci_high", "p_value", "p_adjusted"]
    acc = out[out.metric == "accuracy"].set_index("category")
    assert acc.loc["all", "diff"] == pytest.approx(100 * (ca.mean() - cb.mean()))
    assert acc.loc["all", "p_value"] == pytest.approx(mcnemar_exact(ca, cb).p_value)
    assert set(out[out.metric == "odds"].test) == {"paired_permutation"}   # derived metric: exact permutation
    per_cat = acc.drop("all")
    np.testing.assert_allclose(per_cat.p_adjusted, benjamini_hochberg(per_cat.p_value.to_numpy()))


def test_compare_aligns_items_by_key_not_order():
    ca = np.array([1, 0, 1, 1, 0, 1])
    a = _toy("A", ca, "fa")
    shuffled = _toy("B", ca[::-1], "fb", ids=list(range(6))[::-1])
    out = compare(a, shuffled, n_boot=200)
    assert out.loc[out.metric == "accuracy", "diff"].iloc[0] == 0


def test_compare_refuses_different_items_and_same_model():
    a = _toy("A", [1, 0, 1], "fa")
    with pytest.raises(InvalidInputError, match="same items"):
        compare(a, _toy("B", [1, 0, 1], "fb", ids=[0, 1, 7]))
    with pytest.raises(InvalidInputError, match="same model state"):
        compare(a, _toy("B", [1, 1, 1], "fa"))
    assert len(compare(a, _toy("B", [1, 1, 1], "fa"), allow_same_model=True, n_boot=200))
    with pytest.raises(InvalidInputError, match="unknown metric"):
        compare(a, _toy("B", [1, 1, 1], "fb"), metrics=["nope"])
    with pytest.raises(TypeError, match="comparable"):
        compare(a, object())


def test_summarise_overall_and_per_category():
    items = pd.DataFrame({"correct": [1, 1, 0, 0, 1, 0], "cat": list("aabbbb")})
    out = summarise(items, [mean_metric("acc", "correct", scale=100)], by="cat", n_boot=200)
    got = out.set_index("category")
    assert got.loc["all", "value"] == pytest.approx(50) and got.loc["all", "n"] == 6
    # 2 of 2 correct: the exact Clopper-Pearson interval [100 * 0.025 ** (1/2), 100], not [100, 100]
    assert got.loc["a", "value"] == 100 and got.loc["a", "ci_high"] == 100
    assert got.loc["a", "ci_low"] == pytest.approx(100 * 0.025 ** 0.5)
    assert got.loc["b", "n"] == 4
    assert (out.ci_low <= out.value).all() and (out.value <= out.ci_high).all()


def test_a_mean_over_a_subset_counts_only_that_subset():
    m = mean_metric("acc_ambig", "correct", scale=100, where={"is_ambig": 1})
    cols = {"correct": np.array([1, 0, 1, 1, np.nan]), "is_ambig": np.array([1, 1, 0, 0, 1])}
    assert float(m(cols)) == 50 and m.n_counted(cols) == 2   # the NaN outcome is not counted
    assert m.columns == ("correct", "is_ambig") and m.where == (("is_ambig", 1.0),)
    resampled = {k: np.stack([v, v[::-1]]) for k, v in cols.items()}   # vectorised over resamples
    np.testing.assert_allclose(m(resampled), [50, 50])
    with pytest.raises(ValueError, match="derived metric"):
        Metric("x", lambda c: c["a"].mean(-1), ("a", "b"), where={"b": 1})
    with pytest.raises(ValueError, match="among the metric's columns"):
        Metric("x", lambda c: c["a"].mean(-1), ("a",), kind="binary", outcome="a", where={"b": 1})
    with pytest.raises(ValueError, match="map column names to numbers"):
        mean_metric("x", "a", where={"b": "yes"})


def test_compare_of_a_subset_mean_whose_subset_depends_on_the_model_falls_back_to_permutation():
    # s_dis counts the answers that name a person: a model output, so the two models count
    # different items and McNemar on a common subset would test another quantity
    from workbench.probes import bbq
    rng = np.random.default_rng(3)
    n = 40
    base = pd.DataFrame({"id": range(n), "is_ambig": np.arange(n) % 2, "correct": rng.integers(0, 2, n),
                         "pred_biased": rng.integers(0, 2, n), "pred_unknown": 0})
    a = base.assign(pred_biased=base.pred_biased * (np.arange(n) % 3 > 0), pred_unknown=(np.arange(n) % 3 == 0) * 1)
    b = base.assign(pred_unknown=(np.arange(n) % 5 == 0) * 1)
    b["pred_biased"] *= 1 - b.pred_unknown
    out = compare(Comparable(a, bbq.metrics({}), "id", None, "fa", "A", "bbq"),
                  Comparable(b, bbq.metrics({}), "id", None, "fb", "B", "bbq"))
    rows = out.set_index("metric")
    notes = {r["metric"]: r["note"] for r in out.attrs["rows"]}
    assert rows.loc["s_dis", "test"] == "paired_permutation" and "differ between the models" in notes["s_dis"]
    assert rows.loc["acc_ambig", "test"] == "mcnemar_exact" and rows.loc["acc_ambig", "n"] == n // 2
    assert rows.loc["s_dis", "diff"] == pytest.approx(rows.loc["s_dis", "value_a"] - rows.loc["s_dis", "value_b"])


@pytest.mark.parametrize("bad, match", [(dict(n_boot=0), "n_boot must be at least 100"),
                                        (dict(n_boot=-5), "n_boot must be at least 100"),
                                        (dict(n_boot=2.5), "n_boot must be an int"),
                                        (dict(level=5), r"level must be in \(0, 1\)"),
                                        (dict(level=0), r"level must be in \(0, 1\)"),
                                        (dict(level="0.95"), "level must be a number"),
                                        (dict(n_perm=5), "n_perm must be at least 99"),
                                        (dict(allow_same_model="yes"), "allow_same_model must be True or False")])
def test_compare_refuses_bad_settings_at_the_door_for_every_metric_kind(bad, match):
    # n_boot and level were passed on unchecked to scipy for derived metrics: n_boot=0 was a raw
    # scipy ValueError, level=5 NaN intervals with a "degenerate bootstrap" note
    rng = np.random.default_rng(0)
    n = 120   # enough items for the bootstrap interval of the derived metric to be computed
    ca, cb = rng.integers(0, 2, n), rng.integers(0, 2, n)
    for metric in (None, ["odds"], ["accuracy"]):
        with pytest.raises(InvalidInputError, match=match):
            compare(_toy("A", ca, "fa"), _toy("B", cb, "fb"), metrics=metric, **bad)


def test_level_and_shares_are_refused_alike_across_the_statistics():
    from workbench.stats import paired_proportion_ci, proportion_ci, sign_flip
    for call in (lambda lv: proportion_ci(1, 2, level=lv), lambda lv: paired_proportion_ci([1, 0], [0, 1], level=lv),
                 lambda lv: bootstrap_ci([1.0, 2.0, 3.0], level=lv), lambda lv: sign_flip([1.0, 2.0], level=lv),
                 lambda lv: summarise(pd.DataFrame({"x": [1, 0]}), [mean_metric("a", "x")], level=lv)):
        for bad in (5, 1, 0, -0.5, "0.95", True):
            with pytest.raises(InvalidInputError, match="level must be"):
                call(bad)
    with pytest.raises(InvalidInputError, match="got 5"):   # not the 3.0 it was split into
        paired_proportion_ci([1, 0], [0, 1], level=5)
    for bad in (dict(alpha=5), dict(power=0), dict(p=1.5), dict(sd=-1.0)):
        with pytest.raises(InvalidInputError):   # was scipy's "f(a) and f(b) must have different signs"
            minimum_detectable_effect(100, **bad)

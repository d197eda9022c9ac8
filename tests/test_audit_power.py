"""The audit's statistics, checked by simulation: the exact McNemar power against the test itself,
the sample size it plans, the flip counts and their intervals, the margin test under the null, and
the "same model" verdict against a counter-example built to fool it."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from workbench.audit import deployment as dep
from workbench.audit import power as pw
from workbench.stats import mcnemar_exact


def _simulated_power(n, psi, delta, sims, rng) -> float:
    """Share of simulated paired samples on which workbench.stats.mcnemar_exact rejects at 0.05."""
    p_a, p_b = (psi + delta) / 2, (psi - delta) / 2
    counts = rng.multinomial(n, [p_a, p_b, 1 - p_a - p_b], size=sims)
    rejected = 0
    for a_only, b_only, _ in counts:
        a = np.r_[np.ones(a_only), np.zeros(b_only)]
        b = np.r_[np.zeros(a_only), np.ones(b_only)]
        if len(a) == 0:
            a = b = np.zeros(1)      # no discordant item: p = 1 (concordant items do not change the test)
        rejected += mcnemar_exact(a, b).p_value <= 0.05
    return rejected / sims


@pytest.mark.parametrize("n,psi,delta", [(1, 0.5, 0.5), (2, 0.6, 0.4), (6, 1.0, 1.0), (12, 0.5, 0.3),
                                         (40, 0.3, 0.15), (150, 0.25, 0.08)])
def test_exact_power_agrees_with_simulating_the_test(n, psi, delta):
    rng = np.random.default_rng(n)
    sims = 4000
    simulated = _simulated_power(n, psi, delta, sims, rng)
    exact = pw.mcnemar_power(n, psi, delta)
    assert abs(simulated - exact) <= 4 * np.sqrt(max(exact * (1 - exact), 1e-4) / sims) + 1e-3, (simulated, exact)


def test_under_the_null_the_power_is_the_test_size_at_most():
    for n in (1, 2, 5, 30, 200):
        assert pw.mcnemar_power(n, 0.4, 0.0) <= 0.05 + 1e-12
    assert pw.mcnemar_power(5, 1.0, 1.0) == 0.0      # five discordant items can never give p <= 0.05 (2/32 > 0.05)
    assert pw.mcnemar_power(6, 1.0, 1.0) == 1.0      # six all one way always do (2/64)


def test_planned_n_is_the_first_with_enough_power_and_detectable_inverts_it():
    n = pw.mcnemar_n(0.3, 0.1)
    assert pw.mcnemar_power(n, 0.3, 0.1) >= 0.8 > pw.mcnemar_power(n - 1, 0.3, 0.1)
    d = pw.mcnemar_detectable(n, 0.3)
    assert d == pytest.approx(0.1, abs=0.005) and pw.mcnemar_power(n, 0.3, d) >= 0.8
    assert pw.mcnemar_detectable(5, 0.5) is None                 # nothing is detectable on 5 items
    assert pw.mcnemar_n(0.001, 0.0005, n_max=10_000) is None     # beyond the search: said, not invented
    with pytest.raises(Exception, match="discordance of at least"):
        pw.mcnemar_power(100, 0.05, 0.1)                         # a 10-point difference needs 10 points of flips


def test_continuous_plans_come_from_statsmodels_ttest_power():
    from statsmodels.stats.power import TTestPower
    n = pw.ttest_n(sd=2.0, difference=0.5)
    assert TTestPower().power(0.25, n, 0.05) >= 0.8 > TTestPower().power(0.25, n - 1, 0.05)
    assert pw.ttest_n(sd=0.1, difference=5.0) == 6        # a huge effect: the fewest items the sign-flip test
    #                                                      can reject on (2 / 2**6 < 0.05), not "none"


def test_flip_counts_rates_and_intervals():
    a = np.array([1, 1, 0, 0, 1, 0, np.nan, 1])
    b = np.array([1, 0, 0, 1, 1, 0, 1, 0])
    r = dep.flips(a, b)
    assert (r["n"], r["flips"], r["a_only"], r["b_only"]) == (7, 3, 2, 1)
    assert r["flip_rate"] == pytest.approx(3 / 7)
    low, high = stats.binomtest(3, 7).proportion_ci(method="exact")
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high))
    assert r["p_value"] == pytest.approx(1.0)
    none = dep.flips(np.array([1.0]), np.array([1.0]))
    assert none["flips"] == 0 and none["ci_low"] == 0 and none["p_value"] == 1.0


def test_flip_rate_intervals_cover_at_every_n():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 20):
        for rate in (0.05, 0.3):
            covered = 0
            for _ in range(800):
                a = rng.integers(0, 2, n).astype(float)
                flip = rng.random(n) < rate
                r = dep.flips(a, np.where(flip, 1 - a, a))
                covered += r["ci_low"] <= rate <= r["ci_high"]
            assert covered / 800 >= 0.95 - 3 * np.sqrt(0.05 * 0.95 / 800), (n, rate, covered)


def test_the_margin_test_is_valid_under_the_null_at_small_n():
    """Flips placed at random, whatever the margins: the one-sided p rejects at most 5% of the time."""
    rng = np.random.default_rng(1)
    for n in (2, 3, 8, 40):
        rejected, tests = 0, 0
        for _ in range(1500):
            margin = rng.exponential(size=n)
            flipped = rng.random(n) < 0.3
            p = dep.margin_test(margin, flipped)["p_value"]
            if p is not None:
                tests += 1
                rejected += p <= 0.05
        assert tests == 0 or rejected / tests <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / tests), (n, rejected, tests)


def test_the_margin_test_finds_flips_on_small_margins():
    margin = np.linspace(0.01, 5, 200)
    flipped = margin < 0.4
    r = dep.margin_test(margin, flipped)
    assert r["p_value"] < 1e-6 and r["median_flipped"] < r["median_other"]
    assert r["quarters"][0]["flips"] == int(flipped.sum()) and r["quarters"][3]["flips"] == 0


FP = {"weights_sha256": "w1", "tokenizer_sha256": "t1", "config_sha256": "c1"}


def test_same_model_needs_the_same_weights_or_lineage_not_a_shared_tokenizer_and_config():
    assert "same weight file" in dep.same_model(FP, dict(FP, config_sha256="c2"))     # one GGUF, two backends
    # a fine-tune and its base: same tokenizer and config, other weights -> not one model
    assert dep.same_model(FP, dict(FP, weights_sha256="w2")) is None
    assert dep.same_model(FP, dict(FP, weights_sha256="w2"), "fine-tuned from, or both from one base") is None
    assert dep.same_model(FP, dict(FP, weights_sha256=None), "unrelated") is None
    # another precision of one model: lineage reads it so, with the same tokenizer
    assert "same function" in dep.same_model(FP, dict(FP, weights_sha256="w2"), "same function")
    assert dep.same_model(FP, dict(FP, weights_sha256="w2", tokenizer_sha256="t2"), "same function") is None


def test_the_reference_of_a_deployment_pair_is_the_published_weights():
    backends = {"m@llama.cpp": "llama.cpp", "m": "hf"}
    assert dep.reference_of("m@llama.cpp", "m", backends) == ("m", "m@llama.cpp")
    assert dep.reference_of("m", "m@llama.cpp", backends, reference="m@llama.cpp") == ("m@llama.cpp", "m")

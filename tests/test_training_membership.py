"""Membership inference: the engine's token-stats request kind, the attack scores, the metrics
and their intervals, the blind baseline and the paired test (tiny random models; the testbed
with known truth is in test_training_testbed.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

import workbench as wb
from workbench.errors import ContextWindowError, InvalidInputError
from workbench.engine.causal import score_token_requests
from workbench.scoring.token_stats import token_stats
from workbench.training_data import metrics as M
from workbench.training_data.attacks import min_k_pp_values, min_k_score, zlib_bytes
from workbench.training_data.blind import blind_scores

TEXTS = ["The cat sat on the mat.", "Paris is the capital of France.",
         "The doctor said that she would arrive soon because the patient was waiting.",
         "One two three four five six seven eight nine ten."]
MORE = ["A small bird sang in the old tree.", "We walked to the station after the rain.",
        "Her brother cooked rice and beans.", "The library closes early on Sundays.",
        "Green tea is served without sugar.", "The river froze during the long winter.",
        "My aunt repairs bicycles in her garage.", "The museum opens at nine every day."]


def test_moments_do_not_change_the_log_probs(tiny):
    m = tiny("llama")
    reqs = [([0], m.tokenizer(t)["input_ids"]) for t in TEXTS] + [([0, 5, 6, 7, 8], [9, 10])] * 2
    plain = score_token_requests(m, reqs)
    both = score_token_requests(m, reqs, moments=True)
    assert [r["token_logprobs"] for r in plain] == [r["token_logprobs"] for r in both]   # bit for bit
    assert [r["greedy"] for r in plain] == [r["greedy"] for r in both]
    assert set(plain[0]) == {"token_logprobs", "greedy"}
    assert all(len(r["logp_mean"]) == len(r["logp_var"]) == len(r["token_logprobs"]) for r in both)


def test_token_stats_matches_loglikelihood_and_brute_force_moments(tiny):
    m = tiny("gpt2")
    ts = token_stats(m, TEXTS, cache=False)
    ll = wb.loglikelihood(m, [("", t) for t in TEXTS], cache=False)
    assert list(ts.token_logprobs) == list(ll.token_logprobs)
    ids = torch.tensor([[m.tokenizer.bos_token_id] + m.tokenizer(TEXTS[2])["input_ids"]])
    with torch.no_grad():
        lp = torch.log_softmax(m.hf(ids).logits.float(), -1)[0, :-1]
    p = lp.exp()
    mu = (p * lp).sum(-1)
    var = (p * (lp - mu[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(ts.logp_mean[2], mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(ts.logp_var[2], var.numpy(), rtol=1e-4, atol=1e-7)


def test_token_stats_cache_keys_hold_the_kind_and_options(tiny, isolated_cache):
    m = tiny("gpt2")
    wb.loglikelihood(m, [("", t) for t in TEXTS])            # an entry of another kind
    first = token_stats(m, TEXTS, moments=False)
    assert all(v == [] for v in first.logp_var)             # not served as if it had moments
    second = token_stats(m, TEXTS)
    assert all(len(v) == n for v, n in zip(second.logp_var, second.n_tokens))
    again = token_stats(m, TEXTS)                           # from the cache, same numbers
    assert list(again.logp_var) == list(second.logp_var)


def test_token_stats_refuses_long_texts_unless_max_tokens(tiny):
    m = tiny("gpt2")   # window 256
    long = " ".join(["the cat sat on the mat"] * 80)
    with pytest.raises(ContextWindowError, match="max_tokens"):
        token_stats(m, [long], cache=False)
    ts = token_stats(m, [long], max_tokens=50, cache=False)
    assert ts.n_tokens[0] == 50 and ts.truncated_tokens[0] > 0


def test_attack_score_definitions():
    assert min_k_score(np.array([-1.0, -5.0, -2.0, -0.5]), 0.5) == -3.5
    assert min_k_score(np.array([-1.0, -5.0]), 0.2) == -5.0      # at least one token
    z = min_k_pp_values([-1.0, -2.0, -3.0], [-1.5, -2.0, -3.0], [0.25, 1.0, 0.0])
    np.testing.assert_allclose(z, [1.0, 0.0])                     # sigma = 0 left out
    assert zlib_bytes("aaaa" * 50) < zlib_bytes("The quick brown fox jumps over the lazy dog twice.")


def test_membership_columns_match_the_engine_scores(tiny):
    m = tiny("gpt2")
    mia = wb.membership(m, TEXTS[:2], TEXTS[2:], methods=("loss", "zlib", "min_k", "min_k_pp", "lowercase"),
                        k=0.5, cache=False)
    ts = token_stats(m, TEXTS, cache=False)
    it = mia.items
    assert list(it.columns) == ["text", "is_member", "loss", "zlib", "min_k", "min_k_pp", "lowercase", "blind"]
    assert it.is_member.tolist() == [True, True, False, False]
    np.testing.assert_allclose(it.loss, ts.mean_logprob)
    np.testing.assert_allclose(it.zlib, ts.mean_logprob / [zlib_bytes(t) for t in TEXTS])
    np.testing.assert_allclose(it.min_k, [min_k_score(lp, 0.5) for lp in ts.token_logprobs])
    low = token_stats(m, [t.lower() for t in TEXTS], cache=False).mean_logprob
    np.testing.assert_allclose(it.lowercase, -(ts.mean_logprob / low))


def test_membership_reference_model_and_bad_inputs(tiny, tmp_path):
    m, ref = tiny("gpt2"), tiny("gpt2", seed=1)
    mia = wb.membership(m, TEXTS[:2], TEXTS[2:], methods=("loss",), reference=ref, cache=False)
    assert mia.methods == ("loss", "reference")
    expect = token_stats(m, TEXTS, cache=False).mean_logprob - token_stats(ref, TEXTS, cache=False).mean_logprob
    np.testing.assert_allclose(mia.items.reference, expect)
    with pytest.raises(InvalidInputError, match="reference model"):
        wb.membership(m, TEXTS[:2], TEXTS[2:], methods=("reference",))
    with pytest.raises(InvalidInputError, match="always included"):
        wb.membership(m, TEXTS[:2], TEXTS[2:], methods=("loss", "blind"))
    with pytest.raises(InvalidInputError, match="both members and non-members"):
        wb.membership(m, TEXTS[:2], TEXTS[1:])
    with pytest.raises(InvalidInputError, match="text_column"):
        wb.membership(m, pd.DataFrame({"sentence": TEXTS[:2]}), TEXTS[2:])
    path = tmp_path / "non.jsonl"
    path.write_text("".join(f'{{"sentence": "{t}"}}\n' for t in TEXTS[2:]))
    mia = wb.membership(m, pd.DataFrame({"sentence": TEXTS[:2]}), path, text_column="sentence", methods="loss",
                        cache=False)
    assert mia.items.text.tolist() == TEXTS


def test_auroc_and_tpr_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(150, bool), np.zeros(200, bool)]
    s = np.round(rng.normal(size=350) + 0.8 * y, 1)               # rounded: ties
    assert M.auroc(s, y) == pytest.approx(roc_auc_score(y, s))
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    for alpha in (0.01, 0.05):
        assert M.tpr_at_fpr(s, y, alpha) == pytest.approx(tpr[fpr <= alpha].max())
    pos, neg = s[y][None], s[~y][None]
    assert M._auroc_rows(pos, neg)[0] == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(M.tpr_at_fpr(s[:249], y[:249], 0.01))         # 100 non-members are needed for 1%


def test_intervals_are_stratified_and_follow_the_minimum():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(60, bool), np.zeros(60, bool)]
    s = rng.normal(size=120) + y
    rows = {r["metric"]: r for r in M.metric_rows(s, y, seed=0)}
    assert rows["auroc"]["ci_low"] < rows["auroc"]["value"] < rows["auroc"]["ci_high"]
    assert np.isnan(rows["tpr@1%fpr"]["value"]) and "100" in rows["tpr@1%fpr"]["note"]
    few = {r["metric"]: r for r in M.metric_rows(s[20:70], y[20:70])}   # 40 members, 10 non-members
    # the AUROC's interval holds at every n (it was NaN below 50 per class: test_auroc_interval_*)
    assert few["auroc"]["ci_low"] < few["auroc"]["value"] < few["auroc"]["ci_high"]
    d = M.difference_row(s[20:70], -s[20:70], y[20:70])                 # the bootstrap keeps its minimum
    assert np.isnan(d["ci_low"]) and "at least 50" in d["note"]
    pd.testing.assert_frame_equal(pd.DataFrame(M.metric_rows(s, y, seed=0)), pd.DataFrame(rows.values()))  # seeded


def test_delong_is_calibrated_under_the_null_and_finds_a_difference():
    rng = np.random.default_rng(2)
    y = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    pvals = []
    for _ in range(300):
        shared = rng.normal(size=80) + 0.7 * y
        a, b = shared + rng.normal(size=80), shared + rng.normal(size=80)   # same AUROC, correlated
        pvals.append(M.delong(a, b, y)[1])
    assert 0.02 <= np.mean(np.array(pvals) < 0.05) <= 0.09
    good, bad = y + 0.3 * rng.normal(size=80), rng.normal(size=80)
    diff, p = M.delong(good, bad, y)
    assert diff == pytest.approx(M.auroc(good, y) - M.auroc(bad, y)) and p < 1e-4


def test_blind_baseline_is_cross_fitted_and_seeded():
    rng = np.random.default_rng(3)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    texts = [" ".join(rng.choice(words, 8)) for _ in range(60)]
    y = np.r_[np.ones(30, bool), np.zeros(30, bool)]
    s = blind_scores(texts, y, seed=0)
    assert np.array_equal(s, blind_scores(texts, y, seed=0))
    assert 0.25 < M.auroc(s, y) < 0.75                     # same distribution: no signal to find
    shifted = texts[:30] + [t.upper() for t in texts[30:]]
    assert M.auroc(blind_scores(shifted, y), y) > 0.95     # a shift in style: found
    assert np.isnan(blind_scores(texts[:3], [True, False, False])).all()


def test_summary_shape_findings_and_plot(tiny):
    import matplotlib
    matplotlib.use("Agg")
    m = tiny("gpt2")
    mia = wb.membership(m, TEXTS[:2] + MORE[:4], TEXTS[2:] + MORE[4:8], cache=False)
    s = mia.summary()
    assert list(s.columns) == ["method", "metric", "value", "ci_low", "ci_high", "n"]
    attack = s[s.method == "loss"].metric.tolist()
    assert attack == ["auroc", "tpr@1%fpr", "tpr@5%fpr", "p_vs_chance", "auroc_minus_blind", "p_vs_blind"]
    assert "auroc_minus_blind" not in s[s.method == "blind"].metric.tolist()
    f = mia.findings()
    assert list(f.method) == ["loss", "zlib", "min_k", "min_k_pp"]
    assert list(f.columns[:5]) == ["method", "auroc", "auroc_ci_low", "auroc_ci_high", "p_vs_chance_holm"]
    auc = s[(s.method == "loss") & (s.metric == "auroc")].iloc[0]
    assert (f.auroc[0], f.auroc_ci_low[0], f.auroc_ci_high[0]) == pytest.approx((auc.value, auc.ci_low, auc.ci_high))
    assert "ci_low" not in f.columns and {"diff_ci_low", "diff_ci_high"} <= set(f.columns)
    assert "control=" in f.attrs["note"] and f.beyond_control.isna().all()
    assert mia.plot() is not None


# --- small-n statistics (issue 28, item 6) ---------------------------------------------------

def _coverage_cases():
    """(name, draw(rng, R, n, is_member) -> (R, n) scores, true AUROC): normal shifts, an extreme
    two-point case (each member above or below every non-member: the AUROC is a binomial
    proportion, the interval's worst case) and tied discrete scores."""
    from scipy import stats as sps
    cases = [(f"normal d={d}", lambda g, R, n, c, d=d: g.normal(size=(R, n)) + d * c, sps.norm.cdf(d / np.sqrt(2)))
             for d in (0.0, 1.0, 3.0, 6.0)]
    cases += [(f"extreme p={p}", lambda g, R, n, c, p=p: (np.where(g.random((R, n)) < p, 9.0, -9.0) if c
                                                          else g.random((R, n))), p) for p in (0.5, 0.9)]
    pa, pb = np.array([0.2, 0.5, 0.3]), np.array([0.4, 0.5, 0.1])
    cases.append(("ties", lambda g, R, n, c: g.choice(3, size=(R, n), p=pa if c else pb).astype(float),
                  sum(pa[i] * (pb[:i].sum() + 0.5 * pb[i]) for i in range(3))))
    return cases


def test_auroc_interval_covers_at_every_n_and_at_perfect_separation():
    """Simulation at the true AUROC: n from 1 to 64 per class, AUROC from 0.5 to 1 - 1e-5.
    The stratified bootstrap gave no interval below 50 per class and none at an AUROC of 1."""
    rng = np.random.default_rng(0)
    reps = 2000
    worst = []
    for name, draw, truth in _coverage_cases():
        for n1, n0 in [(1, 1), (2, 2), (1, 6), (6, 1), (3, 3), (5, 12), (64, 64)]:
            pos, neg = draw(rng, reps, n1, 1), draw(rng, reps, n0, 0)
            hits = 0
            for u in M._auroc_rows(pos, neg):
                low, high = M.auroc_interval(u, n1, n0)
                hits += low <= truth <= high
            worst.append((hits / reps, name, n1, n0))
    # valid: coverage at least 95% up to Monte-Carlo error (3 standard errors of 2000 draws)
    assert min(worst)[0] >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / reps), min(worst)
    y = np.r_[np.ones(64, bool), np.zeros(64, bool)]
    perfect = {r["metric"]: r for r in M.metric_rows(np.r_[np.arange(64) + 100.0, np.arange(64.0)], y)}["auroc"]
    assert perfect["value"] == 1.0 and perfect["ci_high"] == 1.0
    assert perfect["ci_low"] == pytest.approx(0.025 ** (1 / 64))   # Clopper-Pearson at 64 of 64
    one = M.metric_rows([2.0, 1.0], [True, False])[0]               # one member, one non-member
    assert (one["ci_low"], one["ci_high"]) == pytest.approx((0.025, 1.0))


def test_auroc_comparison_never_returns_zero_and_is_valid_at_small_n():
    """DeLong's variance collapses with perfect separation (p was exactly 0) and its normal
    approximation rejects too often with 2 texts per class: the interval-overlap test takes over."""
    y8 = np.r_[np.ones(4, bool), np.zeros(4, bool)]
    diff, p, test = M.compare_aurocs(np.arange(8.0)[::-1], np.ones(8), y8)
    assert (diff, test) == (0.5, "interval overlap") and 0 < p <= 1
    y64 = np.r_[np.ones(64, bool), np.zeros(64, bool)]
    diff, p, test = M.compare_aurocs(np.arange(128.0)[::-1], np.ones(128), y64)  # 64 a class, variance 0
    assert diff == 0.5 and test == "interval overlap" and 0 < p < 1e-4
    assert M.delong(np.arange(8.0)[::-1], np.ones(8), y8)[1] > 0
    assert 0 < M.compare_aurocs(np.arange(3000.0)[::-1], np.arange(3000.0), np.arange(3000) < 1500)[1] < 1e-300
    # under the null (two scores of the same texts with equal AUROC, on different scales), P(p <= a) <= a
    rng = np.random.default_rng(4)
    for n in (1, 2, 3, 5, 12, 30):
        y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
        ps, tests = [], set()
        for _ in range(600):
            shared = rng.normal(size=2 * n) + 0.7 * y
            d, p, test = M.compare_aurocs(shared + rng.normal(size=2 * n), np.exp(shared + rng.normal(size=2 * n)), y)
            ps.append(p)
            tests.add(test)
        ps = np.array(ps)
        assert tests == ({"delong"} if n >= M.MIN_PER_CLASS_DELONG else {"interval overlap"})
        assert ps.min() > 0 and ps.max() <= 1
        for a in (0.01, 0.05, 0.2, 0.5):
            assert np.mean(ps <= a) <= a + 3 * np.sqrt(a * (1 - a) / len(ps)), (n, a, np.mean(ps <= a))


# --- inputs (issue 28, items 9 and bad input) --------------------------------------------------

def test_repeated_texts_are_scored_once_and_said(tiny):
    m = tiny("gpt2")
    with pytest.warns(UserWarning, match="2 repeated member text.*1 repeated non-member"):
        mia = wb.membership(m, TEXTS[:2] + TEXTS[:1] * 2, TEXTS[2:] + TEXTS[2:3], methods="loss", cache=False)
    assert mia.items.text.tolist() == TEXTS                       # each text once, first-seen order
    assert mia.provenance["duplicates_dropped"] == {"members": 2, "nonmembers": 1}
    assert mia.provenance["n_members"] == 2 and mia.findings().attrs["duplicates_dropped"]["members"] == 2


def test_a_missing_file_is_named_as_missing(tiny, tmp_path, monkeypatch):
    m = tiny("gpt2")
    monkeypatch.chdir(tmp_path)
    for bad in ("missing.jsonl", "data/members.csv", tmp_path / "nowhere.txt"):
        with pytest.raises(InvalidInputError, match="does not exist") as e:
            wb.membership(m, members=bad, nonmembers=TEXTS[2:])
        assert "wrap" not in str(e.value)
    with pytest.raises(InvalidInputError, match="is a folder"):
        wb.membership(m, members=tmp_path, nonmembers=TEXTS[2:])
    with pytest.raises(InvalidInputError, match="wrap a single string"):   # a text is still a text
        wb.membership(m, members="The cat sat on the mat.", nonmembers=TEXTS[2:])


# --- reading the result (issue 28, item 10) ----------------------------------------------------

def _result(attack, blind, n=60, control=None):
    """A MembershipResult from fixed scores: members first, then non-members (n each)."""
    from workbench.training_data.membership import MembershipResult
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(2 * n)], "is_member": np.r_[np.ones(n, bool),
                                                                                      np.zeros(n, bool)],
                          "loss": attack, "blind": blind, **({"control_loss": control} if control is not None
                                                             else {})})
    return MembershipResult(frame=frame, methods=("loss",), n_boot=500)


def _scores_with_auroc(target: float, n: int, seed: int) -> np.ndarray:
    """2n scores (members first) whose AUROC is close to ``target`` (a normal shift)."""
    from scipy import stats as sps
    g = np.random.default_rng(seed)
    return g.normal(size=2 * n) + np.sqrt(2) * sps.norm.ppf(target) * np.r_[np.ones(n), np.zeros(n)]


def test_a_blind_baseline_below_chance_never_flatters_an_attack():
    """The original model of notebook 08: an attack near chance, the blind baseline at 0.35.
    Before, "attack minus blind" read +0.2 with an interval clear of 0 (the column read first)."""
    y = np.r_[np.ones(60, bool), np.zeros(60, bool)]
    attack, blind = _scores_with_auroc(0.55, 60, 1), _scores_with_auroc(0.3, 60, 2)
    f = _result(attack, blind).findings().iloc[0]
    assert M.auroc(attack, y) - M.auroc(blind, y) > 0.15           # the flattering number exists ...
    assert np.isnan(f.auroc_minus_blind) and np.isnan(f.diff_ci_low)   # ... and is not shown as a comparison
    assert f.blind_ci_high < 0.5 and "below chance" in f.blind_reading
    assert not f.beyond_blind and f.verdict.startswith("no evidence") and "chance" in f.verdict
    assert f.auroc_ci_low < f.auroc < f.auroc_ci_high


def test_a_blind_baseline_above_chance_voids_the_verdict_even_for_an_attack_that_beats_it():
    """Counter-example: the sets differ (blind 0.75) and the attack, which measures the shift
    better (0.95), beats the blind baseline. The old verdict said "evidence"."""
    attack, blind = _scores_with_auroc(0.95, 60, 3), _scores_with_auroc(0.75, 60, 4)
    f = _result(attack, blind).findings().iloc[0]
    assert f.blind_ci_low > 0.5 and f.verdict.startswith("no verdict") and not f.beyond_blind


def test_evidence_needs_chance_the_blind_bar_and_a_control_when_given():
    attack = _scores_with_auroc(0.75, 60, 5)                       # AUROC 0.76
    bar = _result(attack, _scores_with_auroc(0.52, 60, 6)).findings().iloc[0]   # blind 0.62 [0.48, 0.74]
    assert bar.blind_ci_low < 0.5 < bar.blind_auroc and bar.p_vs_chance_holm < 1e-4
    assert not bar.beyond_blind and bar.verdict.startswith("no evidence beyond the blind baseline")
    blind = _scores_with_auroc(0.52, 60, 16)                      # blind 0.53: a bar the attack beats
    alone = _result(attack, blind).findings().iloc[0]
    assert alone.auroc_minus_blind > 0 and alone.p_vs_blind_holm < 0.05
    assert alone.beyond_blind and alone.verdict.startswith("evidence on this model alone")
    # the attack scores the same on a model that never saw the texts: no evidence beyond it
    same = _result(attack, blind, control=attack + np.random.default_rng(7).normal(0, 0.05, 120)).findings().iloc[0]
    assert same.beyond_blind and same.beyond_control is not None and not same.beyond_control
    assert same.verdict.startswith("no evidence beyond the control model")
    assert same.control_ci_low < same.control_auroc < same.control_ci_high
    clean = _result(attack, blind, control=_scores_with_auroc(0.5, 60, 8)).findings().iloc[0]
    assert clean.beyond_control and clean.auroc_minus_control > 0 and clean.verdict.startswith("evidence:")


def test_control_model_scores_every_attack_on_the_same_texts(tiny):
    m, c = tiny("gpt2"), tiny("gpt2", seed=1)
    mia = wb.membership(m, TEXTS[:2] + MORE[:4], TEXTS[2:] + MORE[4:8], methods=("loss", "min_k"), control=c,
                        cache=False)
    assert [col for col in mia.items.columns if col.startswith("control_")] == ["control_loss", "control_min_k"]
    on_control = token_stats(c, mia.items.text.tolist(), cache=False).mean_logprob
    np.testing.assert_allclose(mia.items.control_loss, on_control)
    s = mia.summary()
    assert {"control_auroc", "auroc_minus_control", "p_vs_control"} <= set(s[s.method == "loss"].metric)
    f = mia.findings()
    assert f.beyond_control.notna().all() and mia.provenance["control"]["fingerprint_id"] == c.fingerprint_id
    with pytest.raises(InvalidInputError, match="model under test itself"):
        wb.membership(m, TEXTS[:2], TEXTS[2:], control=m)


def test_p_vs_chance_is_valid_at_every_n_with_ties():
    """The one-sided test of AUROC > 0.5 under the null (members and non-members from one
    distribution of tied scores): P(p <= a) <= a from 1 text a class up. (A guard: scipy's
    Mann-Whitney test, unchanged, already holds here; findings() now lead with it.)"""
    from workbench.training_data.membership import _p_vs_chance
    rng = np.random.default_rng(5)
    for n1, n0 in [(1, 1), (1, 5), (4, 1), (2, 2), (3, 6), (12, 12)]:
        y = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
        ps = np.array([_p_vs_chance(rng.integers(0, 3, n1 + n0).astype(float), y) for r in range(400)])
        assert ps.min() > 0 and ps.max() <= 1
        for a in (0.05, 0.2, 0.5):
            assert np.mean(ps <= a) <= a + 3 * np.sqrt(a * (1 - a) / len(ps)), (n1, n0, a, np.mean(ps <= a))


def test_beating_chance_needs_the_test_and_the_interval_to_agree():
    """AUROC 0.63 on 60 + 60 texts: the Mann-Whitney test rejects (p = 0.007) but the AUROC's own
    interval [0.496, 0.751] holds 0.5. A verdict must agree with every row it rests on: no evidence."""
    f = _result(_scores_with_auroc(0.6, 60, 39), _scores_with_auroc(0.5, 60, 8)).findings().iloc[0]
    assert f.p_vs_chance_holm < 0.05 and f.auroc_ci_low < 0.5
    assert not f.beyond_blind and "interval holds 0.5" in f.verdict


def test_a_control_that_is_the_reference_model_gives_the_reference_attack_no_comparison(tiny):
    m, base = tiny("gpt2"), tiny("gpt2", seed=1)
    mia = wb.membership(m, TEXTS[:2] + MORE[:4], TEXTS[2:] + MORE[4:8], methods=("loss",), reference=base,
                        control=base, cache=False)
    assert mia.items.control_reference.isna().all() and mia.items.control_loss.notna().all()
    f = mia.findings().set_index("method")
    assert np.isnan(f.loc["reference", "control_auroc"]) and f.loc["reference", "beyond_control"] is None
    assert f.loc["loss", "beyond_control"] is not None


def test_a_log_scale_roc_shows_the_low_false_positive_region(tiny):
    """The ROC curve's linear axes hid the region the notebook says matters (FPR of 1% and below):
    the log view starts at one false positive among the non-members."""
    import matplotlib
    matplotlib.use("Agg")
    mia = wb.membership(tiny("gpt2"), TEXTS[:2] + MORE[:4], TEXTS[2:] + MORE[4:8], cache=False)
    ax = mia.plot(log=True)
    n0 = int((~mia.items.is_member).sum())
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlim()[0] == pytest.approx(1 / n0) and "non-members" in ax.get_title()
    assert all(np.all(line.get_xdata() >= 1 / n0 - 1e-12) for line in ax.lines)   # nothing drawn at FPR 0
    linear = mia.plot()
    assert linear.get_xscale() == "linear" and len(linear.get_lines()) == len(ax.get_lines()) - sum(
        1 for line in ax.get_lines() if line.get_linestyle() == "-" and line.get_color() == "grey")
    matplotlib.pyplot.close("all")

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
    assert np.isnan(few["auroc"]["ci_low"]) and "at least 50" in few["auroc"]["note"]
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
    mia = wb.membership(m, TEXTS[:2] * 3, TEXTS[2:] * 3, cache=False)
    s = mia.summary()
    assert list(s.columns) == ["method", "metric", "value", "ci_low", "ci_high", "n"]
    attack = s[s.method == "loss"].metric.tolist()
    assert attack == ["auroc", "tpr@1%fpr", "tpr@5%fpr", "p_vs_chance", "auroc_minus_blind", "p_vs_blind"]
    assert "auroc_minus_blind" not in s[s.method == "blind"].metric.tolist()
    f = mia.findings()
    assert list(f.method) == ["loss", "zlib", "min_k", "min_k_pp"]
    diff = s[(s.method == "loss") & (s.metric == "auroc_minus_blind")].value.iloc[0]
    assert f.auroc_minus_blind[0] == pytest.approx(diff)
    assert mia.plot() is not None

"""Pair-scoring probes (CrowS-Pairs, WinoBias, StereoSet) on tiny models and real data subsets:
exact properties of the scores, the metrics' definitions, and bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import DataError, InvalidInputError, WrongModelKindError

N_BOOT = 200


pytestmark = pytest.mark.usefixtures("isolated_cache")   # every test scores into its own cache


def test_crows_pairs_causal_scores_are_full_sentence_loglikelihoods(tiny, shared_data):
    m = tiny("gpt2")
    res = wb.run_probe("crows_pairs", m, data=shared_data / "crows_pairs", limit=12, n_boot=N_BOOT)
    it = res.items
    assert {"sent_more", "sent_less", "bias_type", "score_more", "score_less"} <= set(it.columns)
    ll = wb.loglikelihood(m, [("", s) for s in it.sent_more])
    np.testing.assert_allclose(it.score_more, ll.logprob, rtol=0, atol=1e-9)
    assert (it.stereotyped == (it.score_more > it.score_less)).all()
    s = res.summary().set_index(["metric", "category"])
    assert s.loc[("pct_stereotype", "all"), "value"] == pytest.approx(100 * it.stereotyped.mean())
    assert s.loc[("likelihood_diff", "all"), "value"] == pytest.approx((it.score_more - it.score_less).abs().mean())
    assert {"stereo", "antistereo"} & set(s.loc["pct_stereotype"].index)
    assert res.provenance["data"]["licence"] == "CC BY-SA 4.0" and res.provenance["data"]["sha256"]


def _swapped_copy(shared_data, tmp_path, n=10):
    df = pd.read_csv(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv", index_col=0).head(n)
    orig, swapped = tmp_path / "orig.csv", tmp_path / "swapped.csv"
    df.to_csv(orig)
    df.rename(columns={"sent_more": "sent_less", "sent_less": "sent_more"}).to_csv(swapped)
    return orig, swapped


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_crows_pairs_swapped_pairs_give_100_minus_pct(tiny, shared_data, tmp_path, arch):
    m = tiny(arch)
    orig, swapped = _swapped_copy(shared_data, tmp_path, n=6 if arch == "bert" else 10)
    a = wb.run_probe("crows_pairs", m, data=orig, n_boot=N_BOOT)
    b = wb.run_probe("crows_pairs", m, data=swapped, n_boot=N_BOOT)
    assert (a.items.score_more != a.items.score_less).all()  # no ties, so the identity is exact
    pa = a.summary().query("metric == 'pct_stereotype' and category == 'all'").value.item()
    pb = b.summary().query("metric == 'pct_stereotype' and category == 'all'").value.item()
    assert pb == pytest.approx(100 - pa)
    np.testing.assert_allclose(a.items.score_more, b.items.score_less, atol=1e-9)


def test_crows_pairs_masked_is_pll_over_shared_tokens(tiny, shared_data):
    from workbench.engine.masked import shared_token_positions
    m = tiny("bert")
    res = wb.run_probe("crows_pairs", m, data=shared_data / "crows_pairs", limit=4, n_boot=N_BOOT)
    it = res.items
    assert set(it.method) == {"pll"}
    pos = [shared_token_positions(m, a, b)[0] for a, b in zip(it.sent_more, it.sent_less)]
    pll = wb.pseudo_loglikelihood(m, list(it.sent_more), positions=pos)
    np.testing.assert_allclose(it.score_more, pll.pll, atol=1e-9)
    # the unmodified tokens only: fewer than all tokens of the sentence
    full = wb.pseudo_loglikelihood(m, list(it.sent_more))
    assert (it.n_tokens_more <= full.n_tokens).all() and (it.n_tokens_more < full.n_tokens).any()


def test_crows_pairs_bad_rows_are_counted_skips(tiny, tmp_path):
    bad = pd.DataFrame({
        "sent_more": ["Good pair one here.", None, "", "Same sentence.", "Fine sentence.", "Another fine one."],
        "sent_less": ["Good pair two here.", "x", "y", "Same sentence.", "Fine sentences.", "Another fine two."],
        "stereo_antistereo": ["stereo", "stereo", "stereo", "stereo", "stereo", "sideways"],
        "bias_type": ["gender", "gender", "gender", "gender", "alien", "gender"]})
    path = tmp_path / "bad.csv"
    bad.to_csv(path)
    res = wb.run_probe("crows_pairs", tiny("gpt2"), data=path, n_boot=N_BOOT)
    assert len(res.items) == 1
    reasons = " | ".join(res.skipped.reason)
    for expected in ("missing or empty", "identical", "unknown bias_type 'alien'", "unknown stereo_antistereo"):
        assert expected in reasons
    assert len(res.skipped) == 5 == len(res.provenance["skipped"])
    s = res.summary()
    assert s.loc[s.metric == "n_skipped", "value"].item() == 5


def test_run_probe_errors_say_what_to_do(tiny, shared_data):
    g, b = tiny("gpt2"), tiny("bert")
    data = shared_data / "crows_pairs"
    with pytest.raises(WrongModelKindError, match="needs a masked LM"):
        wb.run_probe("crows_pairs", g, data=data, limit=2, method="pll")
    with pytest.raises(WrongModelKindError, match="needs a causal model"):
        wb.run_probe("bbq", b, data=shared_data / "bbq", limit=2)
    with pytest.raises(InvalidInputError, match="unknown bias_type value"):
        wb.run_probe("crows_pairs", g, data=data, categories=["martian"])
    with pytest.raises(InvalidInputError, match="unknown option"):
        wb.run_probe("crows_pairs", g, data=data, limit=2, agregate="sum")
    with pytest.raises(InvalidInputError, match="unknown probe"):
        wb.run_probe("crowspairs", g, data=data)
    with pytest.raises(InvalidInputError, match="needs data=PATH"):
        wb.run_probe("crows_pairs", g)
    with pytest.raises(DataError, match="does not exist"):
        wb.run_probe("crows_pairs", g, data="./no/such/folder")
    with pytest.raises(InvalidInputError, match="limit"):
        wb.run_probe("crows_pairs", g, data=data, limit=0)


def test_limit_is_a_seeded_sample_and_categories_select(tiny, shared_data):
    g = tiny("gpt2")
    data = shared_data / "crows_pairs"
    a = wb.run_probe("crows_pairs", g, data=data, limit=5, seed=1, n_boot=N_BOOT)
    b = wb.run_probe("crows_pairs", g, data=data, limit=5, seed=1, n_boot=N_BOOT)
    c = wb.run_probe("crows_pairs", g, data=data, limit=5, seed=2, n_boot=N_BOOT)
    assert list(a.items.item_id) == list(b.items.item_id) != list(c.items.item_id)
    d = wb.run_probe("crows_pairs", g, data=data, limit=4, categories=["age"], n_boot=N_BOOT)
    assert set(d.items.bias_type) == {"age"}


def test_winobias_pairs_and_scoring_rules(tiny, shared_data):
    g = tiny("gpt2")
    res = wb.run_probe("winobias", g, data=shared_data / "winobias", limit=16, n_boot=N_BOOT)
    assert len(res.skipped) == 0  # every WinoBias line parses (some mark two pronouns)
    assert res.provenance["data"]["n_loaded"] == 1584
    it = res.items
    assert (it.sent_pro != it.sent_anti).all() and not it.sent_pro.str.contains(r"\[").any()
    ll = wb.loglikelihood(g, [("", s) for s in it.sent_anti])
    np.testing.assert_allclose(it.score_anti, ll.logprob, atol=1e-9)
    assert set(res.summary().category) >= {"all", "type1", "type2"}
    co = wb.run_probe("winobias", g, data=shared_data / "winobias", limit=8, scoring="coreference", n_boot=N_BOOT)
    s = co.summary().set_index(["metric", "category"])
    assert s.loc[("gap", "all"), "value"] == pytest.approx(
        s.loc[("acc_pro", "all"), "value"] - s.loc[("acc_anti", "all"), "value"])
    with pytest.raises(WrongModelKindError):
        wb.run_probe("winobias", tiny("bert"), data=shared_data / "winobias", limit=2, scoring="coreference")


def test_stereoset_metrics_follow_the_definitions(tiny, shared_data):
    res = wb.run_probe("stereoset", tiny("gpt2"), data=shared_data / "stereoset_intrasentence", limit=30, n_boot=N_BOOT)
    it = res.items
    s = res.summary().set_index(["metric", "category"])
    lms = 100 * ((it.score_stereotype > it.score_unrelated).mean() + (it.score_anti > it.score_unrelated).mean()) / 2
    ss = 100 * (it.score_stereotype > it.score_anti).mean()
    assert s.loc[("lms", "all"), "value"] == pytest.approx(lms)
    assert s.loc[("ss", "all"), "value"] == pytest.approx(ss)
    assert s.loc[("icat", "all"), "value"] == pytest.approx(lms * min(ss, 100 - ss) / 50)
    assert set(it.bias_type) <= {"gender", "race", "religion"}


def test_stereoset_masked_scores_filler_tokens(tiny, shared_data):
    res = wb.run_probe("stereoset", tiny("bert"), data=shared_data / "stereoset_intrasentence", limit=3, n_boot=N_BOOT)
    assert res.items.score_stereotype.notna().all()
    alltok = wb.run_probe("stereoset", tiny("bert"), data=shared_data / "stereoset_intrasentence", limit=3,
                          positions="all", n_boot=N_BOOT)
    assert not np.allclose(res.items.score_unrelated, alltok.items.score_unrelated)


def test_compare_two_models_on_crows_pairs(tiny, shared_data):
    data = shared_data / "crows_pairs"
    a = wb.run_probe("crows_pairs", tiny("gpt2"), data=data, limit=20, n_boot=N_BOOT)
    b = wb.run_probe("crows_pairs", tiny("llama"), data=data, limit=20, n_boot=N_BOOT)
    out = wb.compare(a, b, n_boot=N_BOOT)
    assert list(out.columns[:7]) == ["metric", "category", "diff", "ci_low", "ci_high", "p_value", "p_adjusted"]
    row = out[(out.metric == "pct_stereotype") & (out.category == "all")].iloc[0]
    assert row["diff"] == pytest.approx(100 * (a.items.stereotyped.mean() - b.items.stereotyped.mean()))
    assert row.test == "mcnemar_exact"
    with pytest.raises(InvalidInputError, match="same model state"):
        wb.compare(a, a)
    c = wb.run_probe("crows_pairs", tiny("llama"), data=data, limit=20, seed=5, n_boot=N_BOOT)
    with pytest.raises(InvalidInputError, match="same items"):
        wb.compare(a, c)


def test_multiverse_default_universe_equals_run_probe(tiny, shared_data):
    from workbench.probes.multiverse import multiverse
    g = tiny("gpt2")
    data = shared_data / "crows_pairs"
    mv = multiverse("crows_pairs", g, data=data, limit=8, n_boot=N_BOOT)
    f = mv.to_frame()
    assert set(f.scoring) == {"aggregate=sum, start=bos", "aggregate=mean, start=bos",
                              "aggregate=sum, start=first_word", "aggregate=mean, start=first_word"}
    base = wb.run_probe("crows_pairs", g, data=data, limit=8, n_boot=N_BOOT).summary()
    got = f[(f.scoring == "aggregate=sum, start=bos") & (f.metric == "pct_stereotype")].value.item()
    assert got == base.query("metric == 'pct_stereotype' and category == 'all'").value.item()
    assert mv.plot() is not None

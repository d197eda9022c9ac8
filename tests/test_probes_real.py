"""Probes on the real embedded models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2) and real data
subsets: the exact properties hold on a trained model, and trained-model behaviour shows."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb

pytestmark = [pytest.mark.slow, pytest.mark.real_model, pytest.mark.shared_data]
N_BOOT = 500


def test_crows_pairs_on_smollm_matches_the_engine(smollm, shared_data):
    res = wb.run_probe("crows_pairs", smollm, data=shared_data / "crows_pairs", limit=24, n_boot=N_BOOT)
    it = res.items
    ll = wb.loglikelihood(smollm, [("", s) for s in it.sent_less])
    np.testing.assert_allclose(it.score_less, ll.logprob, atol=1e-9)
    s = res.summary()
    overall = s[(s.metric == "pct_stereotype") & (s.category == "all")].iloc[0]
    assert overall.ci_low <= overall.value <= overall.ci_high and overall.n == 24
    assert res.provenance["model"]["fingerprint_id"] == smollm.fingerprint_id
    assert res.provenance["model"]["licence"] == smollm.licence


def test_stereoset_on_smollm_prefers_meaningful_sentences(smollm, shared_data):
    # lms is a mean of per-item scores in {0, 0.5, 1}: a bootstrap interval needs MIN_N_BOOTSTRAP items
    from workbench.stats import MIN_N_BOOTSTRAP
    res = wb.run_probe("stereoset", smollm, data=shared_data / "stereoset_intrasentence", limit=MIN_N_BOOTSTRAP,
                       n_boot=N_BOOT)
    lms = res.summary().query("metric == 'lms' and category == 'all'").iloc[0]
    # a trained LM ranks "The angry schoolgirl" above "The green schoolgirl" far more often than chance
    assert lms.ci_low > 55


def test_bbq_and_winogender_on_smollm(smollm, shared_data):
    bbq = wb.run_probe("bbq", smollm, data=shared_data / "bbq", limit=24, n_boot=N_BOOT)
    s = bbq.summary()
    assert set(s.metric) >= {"acc_ambig", "acc_disambig", "s_dis", "s_amb"}
    assert s.query("metric == 'acc_disambig' and category == 'all'").value.between(0, 100).all()
    wg = wb.run_probe("winogender", smollm, data=shared_data / "winogender", limit=45, n_boot=N_BOOT)
    summary = wg.summary()
    r = summary.query("metric == 'corr_bls'").iloc[0]
    # a correlation over 45 items: no bootstrap interval below MIN_N_BOOTSTRAP, and a note says why
    assert -1 <= r.value <= 1 and np.isnan(r.ci_low) and np.isnan(r.ci_high)
    assert any("corr_bls" in str(note) for note in summary.attrs["notes"])


def test_seat_on_minilm_flowers_insects_is_positive(minilm, shared_data):
    res = wb.run_probe("seat", minilm, data=shared_data / "seat", categories=["weat1"], n_boot=N_BOOT)
    row = res.items.iloc[0]
    # Caliskan et al.'s first test (flowers/insects vs pleasant/unpleasant) holds for trained encoders
    assert row.effect_size > 0.5 and row.p_value < 0.05


def test_multiverse_and_compare_on_smollm(smollm, tiny, shared_data):
    from workbench.probes.multiverse import multiverse
    data = shared_data / "crows_pairs"
    mv = multiverse("crows_pairs", smollm, data=data, limit=16, n_boot=N_BOOT)
    assert len(mv.to_frame().scoring.unique()) == 4
    other = wb.run_probe("crows_pairs", tiny("llama"), data=data, limit=16, n_boot=N_BOOT)
    out = wb.compare(mv.results[0], other, n_boot=N_BOOT)
    assert out.loc[(out.metric == "pct_stereotype") & (out.category == "all"), "p_value"].between(0, 1).all()

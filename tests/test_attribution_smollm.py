"""Attribution and the audit's steps on the embedded SmolLM2-135M-Instruct (integration)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.attribution.audit import PAIR_PROBES
from workbench.attribution.mechanisms import patch_pairs
from workbench.attribution.pairs import decompose

pytestmark = [pytest.mark.slow, pytest.mark.real_model]


def test_feature_ablation_finds_the_country(smollm):
    df = wb.attribute(smollm, "The capital of France is the city of", " Paris", method="feature_ablation")
    # the last token dominates (ablating it breaks the phrase); of the others, the country does
    before_last = df.iloc[:-1]
    assert before_last.loc[before_last["attribution"].idxmax(), "token"].strip() == "France"
    ll = wb.loglikelihood(smollm, [("The capital of France is the city of", " Paris")])
    assert df.attrs["logprob_target"] == pytest.approx(float(ll.logprob.iloc[0]), abs=1e-4)
    checks = df.summary().set_index("check")
    assert {"completeness", "randomised model"} <= set(checks.index)
    assert checks.loc["randomised model", "value"] < 0.9     # a trained model is not a random one


def test_integrated_gradients_completeness_is_reported_honestly_on_smollm(smollm):
    # On SmolLM2 the target's log-probability along the straight path from the baseline embeddings
    # is rough (it jumps by several nats between nearby points), so IG with few steps is far from
    # complete; the check must say so rather than pass.
    from workbench.attribution.sanity import COMPLETENESS_RTOL
    df = wb.attribute(smollm, "The capital of France is", " Paris", method="integrated_gradients",
                      n_steps=16, random_check=False)
    c = df.summary().set_index("check").loc["completeness"]
    assert c["value"] == pytest.approx(df["attribution"].sum())
    assert c["reference"] == pytest.approx(df.attrs["logprob_target"] - df.attrs["logprob_baseline"])
    gap = abs(c["value"] - c["reference"])
    assert c["ok"] == (gap <= COMPLETENESS_RTOL * abs(c["reference"]) + 1e-3)
    assert df.attrs["convergence_delta"] == pytest.approx(c["value"] - c["reference"], abs=1e-2)


def test_winobias_pair_split_and_patching_on_smollm(smollm, shared_data):
    res = wb.run_probe("winobias", smollm, data=shared_data / "winobias", limit=6, n_boot=200)
    items = res.items
    dec = decompose(smollm, items, "sent_pro", "sent_anti")
    np.testing.assert_allclose(dec.diff_total, items["diff"], atol=1e-4)   # the probe's own numbers
    assert np.abs(dec.diff_shared_before).max() < 1e-3
    # Patching the clean residual stream into the corrupted run at layer 0 at the one differing position
    # makes the runs identical: the effect there is exactly 1 (0 at shared positions).
    by_pos, _, skipped = patch_pairs(smollm, items.head(2), PAIR_PROBES["winobias"], layers=[0])
    assert len(skipped) < 2
    got = by_pos.set_index("role")["normalized"]
    assert got.loc["differing"].min() == pytest.approx(1.0, abs=1e-3)
    assert np.abs(got.loc["shared"]).max() < 1e-3

"""Mechanistic bias audit: exact properties of each step on tiny models, and the whole chain on a
real WinoBias subset."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.attribution.mechanisms import ablated_heads, head_effects, top_heads
from workbench.attribution.pairs import decompose, split_pair
from workbench.errors import InvalidInputError, WrongModelKindError

PAIRS = pd.DataFrame({
    "a": ["The developer argued with the designer because he did not like the design.",
          "The man was angry at his wife.", "Poor people are lazy."],
    "b": ["The developer argued with the designer because she did not like the design.",
          "The man was angry at her husband.", "Rich people are lazy."],
})


def test_split_pair_reassembles_both_sentences():
    for a, b in zip(PAIRS.a, PAIRS.b):
        s = split_pair(a, b)
        assert s["prefix"] + s["rest_a"] == a and s["prefix"] + s["rest_b"] == b
        assert s["clean"] + s["suffix"] == a and s["corrupted"] + s["suffix"] == b
    s = split_pair(PAIRS.a[0], PAIRS.b[0])
    assert s["prefix"] == "The developer argued with the designer because"
    assert s["suffix"] == " did not like the design."


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_decomposition_is_exact(tiny, arch):
    m = tiny(arch)
    dec = decompose(m, PAIRS, "a", "b", cache=False)
    ll = wb.loglikelihood(m, [("", s) for s in list(PAIRS.a) + list(PAIRS.b)], cache=False)["logprob"].to_numpy()
    np.testing.assert_allclose(dec.diff_total, ll[:3] - ll[3:], atol=1e-6)
    parts = dec.diff_differing + dec.diff_shared_before + dec.diff_shared_after
    np.testing.assert_allclose(parts, dec.diff_total, atol=1e-5)
    # identical contexts give identical log-probabilities: the shared prefix contributes nothing
    assert np.abs(dec.diff_shared_before).max() < 1e-5
    assert dec.differing_a.iloc[2] == "Poor" and dec.differing_b.iloc[2] == "Rich"


def test_ablated_heads_changes_scores_only_while_active(tiny, isolated_cache):
    m = tiny("llama")
    text = [("", PAIRS.a[0])]
    before = wb.loglikelihood(m, text, cache=False).logprob[0]
    with ablated_heads(m, [(0, 1), (1, 2)]) as desc:
        assert m.interventions == [desc]
        during = wb.loglikelihood(m, text).logprob[0]      # cache keyed on state_id: recomputed
    assert m.interventions == []
    assert during != pytest.approx(before, abs=1e-6)
    assert wb.loglikelihood(m, text).logprob[0] == pytest.approx(before, abs=1e-6)


def test_zero_ablating_every_head_of_a_layer_equals_removing_its_attention(tiny):
    # exact property: with all heads of layer 0 zeroed, attention output of layer 0 is its o_proj bias (none
    # for llama) -> same logits as zeroing the attention block with a direct hook on o_proj's input
    m = tiny("llama")
    ids = m.tokenizer(PAIRS.a[0], return_tensors="pt")["input_ids"]
    n_heads = m.hf.config.num_attention_heads
    with ablated_heads(m, [(0, h) for h in range(n_heads)]), torch.no_grad():
        ablated = m.hf(ids).logits
    o_proj = m.hf.model.layers[0].self_attn.o_proj
    handle = o_proj.register_forward_pre_hook(lambda mod, args: (torch.zeros_like(args[0]),))
    try:
        with torch.no_grad():
            reference = m.hf(ids).logits
    finally:
        handle.remove()
    torch.testing.assert_close(ablated, reference)


def test_head_effects_and_top_heads(tiny):
    m = tiny("llama")
    eff, skipped = head_effects(m, PAIRS, "a", "b")
    assert set(skipped["item"]) == {2}                    # "Poor/Rich ...": no shared prefix
    n_heads = m.hf.config.num_attention_heads
    assert len(eff) == 2 * m.n_layers * n_heads
    heads = top_heads(eff, 3)
    means = eff.groupby(["layer", "head"]).effect.mean()
    assert all(means[h] < 0 for h in heads)
    assert heads == [h for h in means.sort_values().index[:len(heads)]]


def test_audit_refuses_what_it_cannot_do(tiny):
    with pytest.raises(InvalidInputError, match="minimal-pair probes"):
        wb.mechanistic_audit(tiny("gpt2"), "bbq", data="x")
    with pytest.raises(WrongModelKindError, match="causal"):
        wb.mechanistic_audit(tiny("bert"), "winobias", data="x")
    with pytest.raises(InvalidInputError, match="interventions"):
        wb.mechanistic_audit(tiny("gpt2"), "winobias", data="x", interventions=("magic",))


@pytest.mark.slow
def test_whole_chain_on_winobias(tiny, shared_data):
    m = tiny("llama")
    a = wb.mechanistic_audit(m, "winobias", data=shared_data / "winobias", limit=30, n_fit=4, n_boot=200,
                             progress=False)
    assert a.provenance["decomposition_vs_probe_max_abs"] < 1e-6       # step 1 reproduces the probe exactly
    assert set(a.to_frame().condition) == {"before", "steering", "head_ablation"}
    overall = a.to_frame()[lambda f: f.category == "all"]
    assert (overall.n == 26).all()                                       # held-out items only
    s = a.summary()
    assert set(s.condition) == {"steering", "head_ablation"} and {"before", "after", "ci_low", "ci_high"} <= set(s.columns)
    assert (s.ci_low <= s.change).all() and (s.change <= s.ci_high).all()
    assert len(a.heads) <= 3 and a.capability.set_index("condition").loc["before", "ppl"] > 1
    assert m.interventions == []                                        # nothing left installed
    import matplotlib
    matplotlib.use("Agg")
    assert len(a.plot().axes) >= 4
    assert "Mechanistic audit" in a._repr_html_()

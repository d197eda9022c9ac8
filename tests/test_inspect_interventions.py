"""Ablation, patching, steering and CKA: exact properties on tiny random-initialised models."""
import copy

import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.inspect.metrics import LogprobDiff, baseline

CLEAN, CORRUPT = "The dog sat on the", "The the sat on the"   # differ in one token (position 1)
PAIR = (" mat", " he")


def test_single_token_difference_patched_at_layer0_restores_clean_exactly(tiny):
    m = tiny("llama")
    res = wb.inspect.patch(m, CLEAN, CORRUPT, PAIR, site="resid_pre")
    f = res.to_frame()
    diff = f[(f.token != f.corrupted_token) & (f.layer == 0)]
    assert diff.position.tolist() == [1]  # precondition: one differing token
    l0 = f[f.layer == 0].set_index("position")
    # resid_pre of layer 0 is the token embedding: patching the differing one gives the clean run,
    # patching any identical one changes nothing
    assert l0.loc[1, "normalized"] == pytest.approx(1.0, abs=1e-4)
    assert (l0.drop(index=1)["value"] == res.provenance["metric_corrupted"]).all()
    assert res.provenance["metric_clean"] != res.provenance["metric_corrupted"]


def test_patching_batched_equals_one_at_a_time(tiny):
    m = tiny("gpt2")
    a = wb.inspect.patch(m, CLEAN, CORRUPT, PAIR, by="head", max_rows=2).to_frame()
    b = wb.inspect.patch(m, CLEAN, CORRUPT, PAIR, by="head", max_rows=64).to_frame()
    torch.testing.assert_close(torch.tensor(a["value"].values), torch.tensor(b["value"].values), atol=1e-5, rtol=0)
    assert len(a) == 2 * 4


def test_patching_refuses_misaligned_prompts(tiny):
    with pytest.raises(InvalidInputError, match="tokenise to 8 and 7 tokens"):
        wb.inspect.patch(tiny("llama"), "The cat sat on the", "The dog sat on the", PAIR)


def test_zero_head_ablation_equals_zeroed_weights(tiny):
    """Zero-ablating head h = zeroing the input columns of the output projection for head h."""
    m = tiny("llama")
    res = wb.inspect.ablate(m, "The doctor said that", (" he", " she"), component="head", method="zero")
    metric = LogprobDiff(" he", " she")
    for layer, head in [(0, 1), (1, 3)]:
        hf = copy.deepcopy(m.hf)
        with torch.no_grad():
            hf.model.layers[layer].self_attn.o_proj.weight[:, head * 8:(head + 1) * 8] = 0
        m2 = wb.Model.from_hf(hf, m.tokenizer)
        expected = baseline(m2, metric, metric.unit(m2, "The doctor said that"))
        got = res.frame.query("layer == @layer and unit == @head")["metric_ablated"].item()
        assert got == pytest.approx(expected, abs=1e-5)


def test_zero_layer_ablation_equals_zeroed_blocks(tiny):
    m = tiny("gpt2")
    res = wb.inspect.ablate(m, "The doctor said that", (" he", " she"), component="layer", method="zero")
    hf = copy.deepcopy(m.hf)
    with torch.no_grad():
        for mod in (hf.transformer.h[1].attn.c_proj, hf.transformer.h[1].mlp.c_proj):
            mod.weight.zero_()
            mod.bias.zero_()
    metric = LogprobDiff(" he", " she")
    m2 = wb.Model.from_hf(hf, m.tokenizer)
    assert res.frame.query("layer == 1")["metric_ablated"].item() == pytest.approx(
        baseline(m2, metric, metric.unit(m2, "The doctor said that")), abs=1e-5)


def test_mean_and_resample_ablation(tiny):
    m = tiny("qwen2")
    ref = ["The cat sat on the mat.", "Paris is the capital of France.", "One two three four."]
    mean = wb.inspect.ablate(m, "The doctor said", " he", component="neuron", units=[(0, 3), (1, 7)], method="mean", reference=ref)
    r1 = wb.inspect.ablate(m, "The doctor said", " he", component="mlp", method="resample", reference=ref, seed=1)
    r2 = wb.inspect.ablate(m, "The doctor said", " he", component="mlp", method="resample", reference=ref, seed=1)
    assert len(mean.to_frame()) == 2 and mean.frame["effect"].abs().max() > 0
    assert r1.frame["effect"].tolist() == r2.frame["effect"].tolist()  # seeded
    with pytest.raises(InvalidInputError, match="needs reference"):
        wb.inspect.ablate(m, "The doctor said", " he", method="mean")
    with pytest.raises(InvalidInputError, match="neuron ablation needs units"):
        wb.inspect.ablate(m, "The doctor said", " he", component="neuron")
    with pytest.raises(WrongModelKindError):
        wb.inspect.ablate(tiny("bert"), "The doctor said", " he")


def test_steering_is_registered_exact_and_removed(tiny):
    m = tiny("llama")
    v = wb.inspect.steering_vector(m, ["He is a doctor.", "He said hello."], ["She is a doctor.", "She said hello."], layer=0)
    texts = ["The doctor said that"]
    base = wb.capture(m, texts, sites=["resid_post", "logits"])
    sid = m.state_id
    with wb.inspect.steer(m, v, strength=3.0) as desc:
        assert m.interventions == [desc] and m.state_id != sid
        steered = wb.capture(m, texts, sites=["resid_post", "logits"])
        gen = m.hf.generate(**m.tokenizer(texts, return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert m.interventions == [] and m.state_id == sid
    torch.testing.assert_close(steered["resid_post", 0], base["resid_post", 0] + 3.0 * v.direction, atol=1e-6, rtol=0)
    assert not torch.equal(steered["logits"], base["logits"])
    assert gen.shape[1] == base.tokens.shape[1] + 3
    after = wb.capture(m, texts, sites=["logits"])
    assert torch.equal(after["logits"], base["logits"])  # hook removed
    with pytest.raises(RuntimeError), wb.inspect.steer(m, v, strength=1.0):
        raise RuntimeError("boom")
    assert m.interventions == []
    with wb.inspect.steer(m, v, strength=0.0):
        assert torch.equal(wb.capture(m, texts, sites=["logits"])["logits"], base["logits"])


def test_steering_applies_to_scoring_engine(tiny):
    from workbench.scoring import api
    m = tiny("llama")
    v = wb.inspect.steering_vector(m, ["He is a doctor."], ["She is a doctor."], layer=1)
    req = [("The doctor said that", " he")]
    base = api.loglikelihood(m, req)["logprob"].item()
    with wb.inspect.steer(m, v, strength=8.0):
        steered = api.loglikelihood(m, req)["logprob"].item()
    assert steered != base
    assert api.loglikelihood(m, req)["logprob"].item() == base


def test_metric_agrees_with_the_scoring_engine(tiny):
    from workbench.scoring import api
    m = tiny("llama")
    metric = LogprobDiff(" he", " she")
    mine = baseline(m, metric, metric.unit(m, "The doctor said that"))
    lp = api.loglikelihood(m, [("The doctor said that", " he"), ("The doctor said that", " she")], cache=False)["logprob"]
    assert mine == pytest.approx(lp[0] - lp[1], abs=1e-4)


def test_cka_properties(tiny):
    from workbench.inspect.similarity import linear_cka
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1)))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0, abs=1e-9)   # rotation and scale invariant
    assert linear_cka(x, torch.randn(50, 8, generator=torch.Generator().manual_seed(2))) < 0.6
    m, g = tiny("llama"), tiny("gpt2")
    texts = ["The cat sat.", "A dog ran home.", "Paris is big.", "One two three.", "The nurse said hello."]
    self_sim = wb.inspect.cka(m, m, texts).to_frame()
    assert self_sim.query("layer_a == layer_b")["cka"].tolist() == pytest.approx([1.0, 1.0])
    cross = wb.inspect.cka(m, g, texts, pooling="tokens")   # same tokenizer: token-level works
    assert cross.frame.shape == (4, 3) and cross.frame["cka"].between(0, 1).all()
    with pytest.raises(InvalidInputError, match="tokenise the texts identically"):
        wb.inspect.cka(m, tiny("bert"), texts, pooling="tokens")


def test_result_plots(tiny):
    import matplotlib
    matplotlib.use("Agg")
    m = tiny("gpt2")
    assert wb.inspect.patch(m, CLEAN, CORRUPT, PAIR).plot() is not None
    assert wb.inspect.ablate(m, "The doctor said", PAIR).plot() is not None
    assert wb.inspect.ablate(m, "The doctor said", PAIR, component="layer").plot() is not None
    assert wb.inspect.cka(m, m, ["a b", "c d e", "The cat"]).plot() is not None
    assert len(wb.inspect.patch(m, CLEAN, CORRUPT, PAIR).summary()) == 10

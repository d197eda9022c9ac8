"""Inspection on the real embedded models (SmolLM2 = Llama, Gemma 3, MiniLM = BERT encoder)."""
import warnings

import pytest
import torch

import workbench as wb

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fixture", ["smollm", "gemma", "minilm"])
def test_verify_on_embedded_models(request, fixture):
    model = request.getfixturevalue(fixture)
    res = wb.inspect.verify(model, texts=["The doctor said that she would arrive soon.", "Paris is lovely."])
    assert res.ok, res.report[~res.report["ok"]]
    assert res.report.loc[0, "check"] == ("logits with hooks == plain logits" if model.kind == "causal"
                                          else "resid_pre == hidden_states[L]")


@pytest.mark.parametrize("fixture", ["smollm", "gemma", "minilm"])
def test_every_site_on_embedded_models(request, fixture):
    model = request.getfixturevalue(fixture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cache = wb.capture(model, ["The nurse said hello.", "A cat."], sites="all", layers=[0, -1], dtype=torch.float16)
    ad = wb.inspect.adapter(model)
    assert cache["resid_post", -1].shape == (2, cache.tokens.shape[1], ad.d_model)
    assert cache["attn_pattern", 0].shape[1] == ad.n_heads
    assert all(t.dtype == torch.float16 for t in cache.data.values())
    expected_missing = {"final_norm", "logits"} if fixture == "minilm" else set()
    assert set(wb.inspect.SITES) - set(cache.sites) == expected_missing


def test_logit_lens_finds_paris(smollm):
    df = wb.logit_lens(smollm, "The capital of France is", targets=[" Paris"], positions="last")
    last = df[df.layer == smollm.n_layers - 1].iloc[0]
    assert last["rank"] == 0 and last["prob"] > 0.3
    early = df[df.layer == 0].iloc[0]
    assert early["rank"] > 100  # the answer emerges in late layers, not in the embedding


def test_patching_and_ablation_on_smollm(smollm):
    res = wb.inspect.patch(smollm, "The doctor said that", "The nurse said that", (" he", " she"),
                           layers=[0, 15, 29])
    f = res.to_frame()
    assert res.provenance["metric_clean"] > res.provenance["metric_corrupted"]  # "doctor" -> more " he"
    # patching the differing token's residual stream at the first layer restores the clean run
    assert f.query("layer == 0 and token != corrupted_token")["normalized"].max() == pytest.approx(1.0, abs=1e-3)
    ab = wb.inspect.ablate(smollm, "The doctor said that", (" he", " she"), component="attn", layers=[0, 29])
    assert len(ab.to_frame()) == 2 and ab.frame["effect"].abs().max() > 0


def test_cka_smollm_vs_gemma(smollm, gemma):
    texts = ["The cat sat on the mat.", "Paris is the capital of France.", "She works as a nurse.",
             "One two three four five.", "The weather is nice today.", "He fixed the old car."]
    res = wb.inspect.cka(smollm, gemma, texts)
    assert res.frame.shape[0] == smollm.n_layers * gemma.n_layers
    assert res.frame["cka"].between(-1e-6, 1 + 1e-6).all()


def test_steering_changes_generation_through_the_scoring_engine(smollm):
    from workbench.scoring import api
    v = wb.inspect.steering_vector(smollm, ["He is a man.", "The man said he was tired."],
                                   ["She is a woman.", "The woman said she was tired."], layer=15)
    req = [("The doctor said that", " he"), ("The doctor said that", " she")]
    base = api.loglikelihood(smollm, req)["logprob"].to_numpy()
    with wb.inspect.steer(smollm, v, strength=4.0):
        steered = api.loglikelihood(smollm, req)["logprob"].to_numpy()
        gen = api.generate(smollm, ["The doctor said that"], max_new_tokens=5, seed=0)
    assert (steered[0] - steered[1]) > (base[0] - base[1])  # the "he" direction raises he over she
    assert len(gen) == 1
    assert (api.loglikelihood(smollm, req)["logprob"].to_numpy() == base).all()

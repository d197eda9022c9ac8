"""Inspection on backend="llama.cpp": capture through llama.cpp's graph callback, the logit lens
and direct logit attribution from the GGUF's weights, steering with control vectors, against
the Hugging Face float32 model (the same GGUF de-quantised by transformers).

Tolerances, measured on SmolLM2-135M (resid_post, relative error ||a - b|| / ||b|| over all real
tokens of 4 texts, per layer; benchmarks/conformance.py prints the whole table):
* GGUF F32 (the Q4_1 weights de-quantised exactly): 2e-5 to 3.5e-4. llama.cpp keeps K and V in
  float16 and its flash attention rounds queries to float16: that is the whole difference.
* GGUF F16 (the weights rounded to float16): 3e-4 to 1.6e-3.
The bounds below leave about 2x headroom. The shipped Q4_1 through llama.cpp is 1-5% off per
token (its matrix products quantise activations to 8 bits): deployment, not an error.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import (BackendCapabilityError, ContextWindowError, InvalidInputError, UnsupportedSiteError)

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed: pip install '.[llamacpp]'")
pytestmark = pytest.mark.real_model

SMOLLM = "smollm2-135m-instruct"
TEXTS = ["The capital of France is Paris, and the capital of Germany is", "A dog ran across the garden and",
         "def fibonacci(n):\n    return", "Water boils at 100 degrees Celsius at sea level, which"]
F32_REL, F16_REL = 1e-3, 3e-3   # per-layer relative error of resid_post against HF float32
SITES = ["embed", "resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post", "attn_pattern", "q", "k", "v", "z",
         "mlp_hidden", "final_norm", "logits"]


@pytest.fixture(scope="module")
def lcpp():
    return wb.load_model(SMOLLM, backend="llama.cpp")


@pytest.fixture(scope="module")
def f32():
    from workbench.backends.quantize import quantize_gguf
    return wb.load_model(quantize_gguf(SMOLLM, "F32"), backend="llama.cpp")


@pytest.fixture(scope="module")
def f16():
    from workbench.backends.quantize import quantize_gguf
    return wb.load_model(quantize_gguf(SMOLLM, "F16"), backend="llama.cpp")


def _rel(a, b, mask):
    a, b = a[mask].double(), b[mask].double()
    return float((a - b).norm() / b.norm())


def test_capture_has_the_hf_layout(lcpp, smollm):
    """Same keys, shapes, right padding with zeros, layer indexing and provenance as the HF
    backend, on the shipped Q4_1 file."""
    texts = ["The cat sat on the mat", "A dog"]
    ours = wb.capture(lcpp, texts, sites=["resid_post", "attn_out", "logits"], layers=[0, -1], progress=False)
    ref = wb.capture(smollm, texts, sites=["resid_post", "attn_out", "logits"], layers=[0, -1], progress=False)
    assert sorted(ours.keys(), key=str) == sorted(ref.keys(), key=str) == sorted(
        [("resid_post", 0), ("resid_post", 29), ("attn_out", 0), ("attn_out", 29), ("logits", None)], key=str)
    for key in ref.keys():
        assert ours[key].shape == ref[key].shape and ours[key].dtype == torch.float32
    assert torch.equal(ours.tokens, ref.tokens) and torch.equal(ours.attention_mask, ref.attention_mask)
    pad = ~ours.attention_mask.bool()
    assert pad.any() and (ours["resid_post", -1][pad] == 0).all() and (ours["logits"][pad] == 0).all()
    assert torch.equal(ours["resid_post", -1], ours["resid_post", 29])
    assert ours.str_tokens == ref.str_tokens
    prov = ours.provenance
    assert prov["n_layers"] == 30 and prov["sites"] == ["attn_out", "logits", "resid_post"]
    assert prov["backend"] == "llama.cpp" and "graph" in prov["capture"]
    last = ours.attention_mask.sum(1) - 1
    for i, p in enumerate(last.tolist()):  # the Q4_1 deployment predicts the HF model's next token
        assert ours["logits"][i, p].argmax() == ref["logits"][i, p].argmax()


def test_positions_and_dtype(lcpp):
    full = wb.capture(lcpp, TEXTS[:2], sites=["resid_post", "attn_pattern"], layers=[3], progress=False)
    last = wb.capture(lcpp, TEXTS[:2], sites=["resid_post", "attn_pattern"], layers=[3], positions="last",
                      dtype=torch.float16, progress=False)
    n = full.attention_mask.sum(1)
    assert last["resid_post", 3].shape == (2, 1, 576) and last["resid_post", 3].dtype == torch.float16
    for i in range(2):
        assert torch.allclose(last["resid_post", 3][i, 0].float(), full["resid_post", 3][i, n[i] - 1], rtol=1e-3,
                              atol=1e-2)
    pat = full["attn_pattern", 3]
    assert pat.shape == (2, 9, full.tokens.shape[1], full.tokens.shape[1])
    real = pat[1, :, : n[1], : n[1]]
    assert torch.allclose(real.sum(-1), torch.ones(9, int(n[1])), atol=1e-4)  # rows are distributions
    assert (torch.triu(real, 1) == 0).all()  # causal
    assert "flash attention off" in " ".join(full.notes)


@pytest.mark.parametrize("fmt,bound", [("f32", F32_REL), ("f16", F16_REL)])
def test_resid_post_per_layer_within_the_measured_error(fmt, bound, request, smollm):
    m = request.getfixturevalue(fmt)
    ours = wb.capture(m, TEXTS, sites=["resid_post"], progress=False)
    ref = wb.capture(smollm, TEXTS, sites=["resid_post"], progress=False)
    mask = ref.attention_mask.bool()
    rel = [_rel(ours["resid_post", L], ref["resid_post", L], mask) for L in range(30)]
    assert max(rel) < bound, rel


def test_every_site_matches_hf_on_f32(f32, smollm):
    """Each site's mapping (the family's GraphSites) names the node that holds it: q/k in HF's
    order (llama.cpp's GGUF stores them in its interleaved rotary order), attention patterns as
    probabilities over the same positions."""
    ours = wb.capture(f32, TEXTS[:2], sites=SITES, layers=[0, 7, 29], progress=False)
    ref = wb.capture(smollm, TEXTS[:2], sites=SITES, layers=[0, 7, 29], progress=False)
    mask = ref.attention_mask.bool()
    assert sorted(ours.keys(), key=str) == sorted(ref.keys(), key=str)
    for key in ref.keys():
        assert ours[key].shape == ref[key].shape, key
        if key[0] == "attn_pattern":
            assert float((ours[key] - ref[key]).abs().max()) < 2e-3, key
        else:
            assert _rel(ours[key], ref[key], mask) < 3e-3, key


PROMPTS = ["The Eiffel Tower is located in the city of", "Two plus two equals", "The opposite of hot is",
           "She opened the door and saw a", "In 1492, Columbus sailed across the", "The chemical symbol for gold is",
           "My favourite fruit is the banana because it is", "The sun rises in the"]


@pytest.mark.parametrize("fmt", ["f32", "f16"])
def test_logit_lens_top1_agrees_with_hf_at_every_layer(fmt, request, smollm):
    """On held-out prompts: the lens' top-1 at each prompt's last position equals HF's at every
    layer; at the other positions, where it differs the two tokens are a tie within the lens'
    own numerical difference (measured: 1 of 1710 layer x position cells on F32, 4 on F16, each
    with an HF top-1/top-2 gap under 0.003 logits)."""
    from workbench.inspect.sites import site_adapter
    m = request.getfixturevalue(fmt)
    ours = wb.capture(m, PROMPTS, sites=["resid_post"], progress=False)
    ref = wb.capture(smollm, PROMPTS, sites=["resid_post"], progress=False)
    mask = ref.attention_mask.bool()
    last = mask.sum(1) - 1
    a, b = site_adapter(m), site_adapter(smollm)
    ties = 0
    with torch.inference_mode():
        for L in range(30):
            lg, lh = a.unembed(ours["resid_post", L]).float(), b.unembed(ref["resid_post", L]).float()
            tg, th = lg.argmax(-1), lh.argmax(-1)
            rows = torch.arange(len(PROMPTS))
            assert torch.equal(tg[rows, last], th[rows, last]), f"layer {L}"
            for i, p in (mask & (tg != th)).nonzero().tolist():
                gap = float(lh[i, p, th[i, p]] - lh[i, p, tg[i, p]])
                assert gap <= float((lh[i, p] - lg[i, p]).abs().max()), (L, i, p, gap)
                ties += 1
    assert ties <= 0.01 * int(mask.sum()) * 30
    # the public lens frame has the HF columns, and the prediction at the last layer
    frame_g, frame_h = wb.logit_lens(m, PROMPTS[0], targets=[" Paris"]), wb.logit_lens(smollm, PROMPTS[0], targets=[" Paris"])
    assert list(frame_g.columns) == list(frame_h.columns) and len(frame_g) == len(frame_h)
    top = frame_g[frame_g.layer == 29].top_tokens.str[0].tolist()
    assert top == frame_h[frame_h.layer == 29].top_tokens.str[0].tolist()
    assert "GGUF" in frame_g.provenance["readout"]
    paris = smollm.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    by_id = wb.logit_lens(m, PROMPTS[0], targets=[paris], layers=[29])  # a token id, checked against the GGUF's vocabulary
    assert by_id.target_id.tolist() == [paris] * len(by_id)
    with pytest.raises(InvalidInputError, match="outside the vocabulary"):
        wb.logit_lens(m, PROMPTS[0], targets=[49152])


def test_lens_at_the_last_layer_is_llamacpps_own_logits(f32):
    from workbench.inspect.sites import site_adapter
    c = wb.capture(f32, PROMPTS[:3], sites=["resid_post", "logits"], layers=[29], progress=False)
    lens = site_adapter(f32).unembed(c["resid_post", 29])
    mask = c.attention_mask.bool()
    assert float((lens - c["logits"])[mask].abs().max()) < 1e-3


def test_direct_logit_attribution_matches_hf_on_f32(f32, smollm):
    ours = wb.inspect.direct_logit_attribution(f32, "The doctor said that", " he", " she")
    ref = wb.inspect.direct_logit_attribution(smollm, "The doctor said that", " he", " she")
    assert list(ours.frame.columns) == list(ref.frame.columns) and len(ours.frame) == len(ref.frame)
    assert (ours.frame.component == ref.frame.component).all()
    assert abs(ours.error) < 1e-4 and abs(ours.total - ref.total) < 5e-3
    assert np.abs(ours.frame.contribution.to_numpy() - ref.frame.contribution.to_numpy()).max() < 5e-3
    assert ours.provenance["heads_vs_attn_max_abs_gap"] < 1e-3 and "GGUF" in ours.provenance["weights"]


PROBE = [("The movie was", " great"), ("The movie was", " terrible"), ("I feel", " happy"), ("I feel", " sad")]


def test_a_steering_vector_found_on_hf_steers_the_gguf(f32, smollm):
    """The same vector, found on the HF model, moves the probe's log-probs on the GGUF as on
    HF (a llama.cpp control vector = the HF hook's addition), and only inside the block."""
    v = wb.inspect.steering_vector(smollm, ["I love this, it is wonderful.", "What a great day, I am happy."],
                                   ["I hate this, it is terrible.", "What an awful day, I am sad."], layer=12)
    effects, shifts = {}, {}
    for name, m in (("hf", smollm), ("gguf", f32)):
        base = wb.loglikelihood(m, PROBE, cache=False).logprob.to_numpy()
        c0 = wb.capture(m, ["The movie was"], sites=["resid_post", "mlp_out"], layers=[11, 12], progress=False)
        with wb.inspect.steer(m, v, strength=4.0) as desc:
            assert m.interventions == [desc]
            steered = wb.loglikelihood(m, PROBE, cache=False).logprob.to_numpy()
            c1 = wb.capture(m, ["The movie was"], sites=["resid_post", "mlp_out"], layers=[11, 12], progress=False)
        assert m.interventions == []
        after = wb.loglikelihood(m, PROBE, cache=False).logprob.to_numpy()
        assert np.allclose(after, base, atol=1e-6)  # taken off again
        effects[name] = steered - base
        shifts[name] = c1["resid_post", 12] - c0["resid_post", 12]
        assert torch.equal(c1["resid_post", 11], c0["resid_post", 11])   # the layer before: untouched
        assert torch.equal(c1["mlp_out", 12], c0["mlp_out", 12])         # added after the block's MLP
    assert np.abs(effects["hf"]).max() > 1.0  # the probe moves
    assert np.abs(effects["gguf"] - effects["hf"]).max() < 0.02
    assert torch.allclose(shifts["gguf"], 4.0 * v.direction.expand_as(shifts["gguf"]), atol=5e-3)


def test_nested_steering_adds_up_and_survives_a_new_context(f32):
    d = torch.randn(576, generator=torch.Generator().manual_seed(0))
    long_text = " ".join(["The quick brown fox jumps over the lazy dog."] * 80)  # > the scoring context's 512 cells
    base_c = wb.capture(f32, ["The movie was"], sites=["resid_post"], layers=[5], progress=False)["resid_post", 5]
    base = wb.loglikelihood(f32, PROBE, cache=False).logprob.to_numpy()
    with wb.inspect.steer(f32, d, layer=5), wb.inspect.steer(f32, d, layer=5, strength=2.0):
        before = wb.loglikelihood(f32, PROBE, cache=False).logprob.to_numpy()
        ctx, n_ctx = f32.backend.engine.ctx, f32.backend.engine.n_ctx
        wb.perplexity(f32, [long_text], cache=False)
        assert f32.backend.engine.n_ctx > n_ctx and f32.backend.engine.ctx != ctx  # a new context was made
        after = wb.loglikelihood(f32, PROBE, cache=False).logprob.to_numpy()
        c = wb.capture(f32, ["The movie was"], sites=["resid_post"], layers=[5], progress=False)["resid_post", 5]
    assert np.abs(before - base).max() > 0.01 and np.allclose(after, before, atol=1e-3)  # still steered
    assert torch.allclose(c - base_c, 3 * d.expand_as(c), atol=1e-3)  # the two blocks add up


def test_steer_feature_with_an_sae(f32, smollm):
    d, f = 576, 7
    torch.manual_seed(0)
    W_dec = torch.nn.functional.normalize(torch.randn(16, d), dim=-1)
    sae = wb.inspect.SAE(W_enc=W_dec.T.clone(), b_enc=torch.zeros(16), W_dec=W_dec, b_dec=torch.zeros(d),
                         site="resid_post", layer=10)
    out = {}
    for name, m in (("hf", smollm), ("gguf", f32)):
        base = wb.loglikelihood(m, PROBE, cache=False).logprob.to_numpy()
        with wb.inspect.steer_feature(m, sae, f, alpha=40.0) as desc:
            out[name] = wb.loglikelihood(m, PROBE, cache=False).logprob.to_numpy() - base
        assert desc["kind"] == "sae_feature_steering" and m.interventions == []
    assert np.abs(out["hf"]).max() > 0.05 and np.abs(out["gguf"] - out["hf"]).max() < 0.02
    skip = wb.inspect.SAE(W_enc=W_dec.T.clone(), b_enc=torch.zeros(16), W_dec=W_dec, b_dec=torch.zeros(d),
                          site="resid_post", layer=10, skip_first=True)
    with pytest.raises(BackendCapabilityError, match="skip_first"):
        with wb.inspect.steer_feature(f32, skip, f):
            pass
    wide = wb.inspect.SAE(W_enc=torch.zeros(8, 4), b_enc=torch.zeros(4), W_dec=torch.zeros(4, 8), b_dec=torch.zeros(8),
                          site="resid_post", layer=10)
    with pytest.raises(InvalidInputError, match="d_in=8"):
        with wb.inspect.steer_feature(f32, wide, 0):
            pass


def test_bad_input_is_refused_before_any_decode(lcpp, monkeypatch):
    from workbench.backends import llamacpp_graph
    made = []
    real = llamacpp_graph.CaptureContext.__init__
    monkeypatch.setattr(llamacpp_graph.CaptureContext, "__init__", lambda self, *a, **k: made.append(1) or real(self, *a, **k))
    with pytest.raises(UnsupportedSiteError, match="unknown site"):
        wb.capture(lcpp, ["hello there"], sites=["resid_postt"])
    with pytest.raises(UnsupportedSiteError, match="out of range"):
        wb.capture(lcpp, ["hello there"], sites=["resid_post"], layers=[30])
    with pytest.raises(InvalidInputError, match="positions"):
        wb.capture(lcpp, ["hello there"], sites=["resid_post"], positions=[7])
    with pytest.raises(ContextWindowError, match="8192"):
        wb.capture(lcpp, ["word " * 9000], sites=["resid_post"], layers=[0])
    with pytest.raises(BackendCapabilityError, match="out="):
        wb.capture(lcpp, ["hello there"], sites=["resid_post"], out="/tmp/nowhere")
    assert made == []
    # control vectors: wrong width, NaN, layer 0, a site they do not add to
    with pytest.raises(InvalidInputError, match=r"shape \(576,\)"):
        with wb.inspect.steer(lcpp, torch.ones(10), layer=3):
            pass
    with pytest.raises(InvalidInputError, match="NaN"):
        with wb.inspect.steer(lcpp, torch.full((576,), float("nan")), layer=3):
            pass
    with pytest.raises(BackendCapabilityError, match="layer 0"):
        with wb.inspect.steer(lcpp, torch.ones(576), layer=0):
            pass
    with pytest.raises(BackendCapabilityError, match="backend='hf'"):
        with wb.inspect.steer(lcpp, torch.ones(576), layer=3, site="attn_out"):
            pass
    assert lcpp.interventions == [] and lcpp.backend.control.active == []


def test_a_site_the_graph_does_not_have(lcpp):
    """A site the family's llama.cpp mapping leaves out is refused before any decode, naming the
    reason; a mapping naming a node this llama.cpp build does not make fails at the first decode
    instead of returning zeros."""
    import dataclasses

    from workbench.families import GraphTensor, family_for
    fam = family_for("llama")
    graph = fam.llamacpp[0]
    lacking = dataclasses.replace(graph, tensors={**graph.tensors, "attn_out": "this graph names no such node"})
    typo = dataclasses.replace(graph, tensors={**graph.tensors, "attn_out": GraphTensor("attn_outt-{L}")})
    for g, err in ((lacking, "this graph names no such node"), (typo, r"no node named \['attn_outt-2'\]")):
        lcpp.backend._graph_adapter = None  # made again from the family
        object.__setattr__(fam, "llamacpp", (g,))  # a frozen dataclass: the family as another mapping declares it
        try:
            with pytest.raises(UnsupportedSiteError, match=err):
                wb.capture(lcpp, ["hello there"], sites=["attn_out"], layers=[2])
        finally:
            object.__setattr__(fam, "llamacpp", (graph,))
            lcpp.backend._graph_adapter = None


def test_a_build_without_the_graph_callback_says_so(lcpp, monkeypatch):
    import ctypes

    import llama_cpp.llama_cpp as lib

    class OldParams(ctypes.Structure):  # an older llama-cpp-python: no cb_eval in the context parameters
        _fields_ = [("n_ctx", ctypes.c_uint32)]

    monkeypatch.setattr(lib, "llama_context_params", OldParams)
    with pytest.raises(BackendCapabilityError, match="no graph evaluation callback"):
        wb.capture(lcpp, ["hello there"], sites=["resid_post"], layers=[0])


def test_capabilities_and_what_still_needs_hf(lcpp):
    assert {"capture", "steer"} <= lcpp.backend.capabilities
    assert "llama.cpp" in wb.backends.backends_with("capture")
    assert "hooks" not in lcpp.backend.capabilities
    with pytest.raises(BackendCapabilityError, match=r"patching, ablation.*backend='hf'"):
        wb.inspect.ablate(lcpp, "The doctor said that", (" he", " she"), component="head")
    with pytest.raises(BackendCapabilityError, match="backend='hf'"):
        wb.inspect.patch(lcpp, "The doctor said that he", "The nurse said that he", (" was", " is"))


def test_conformance_of_the_deployed_files(smollm, f16, lcpp):
    res = wb.conformance([smollm, f16, lcpp], PROMPTS[:4], progress=False)
    s = res.summary().set_index("model")
    assert list(s.verdict) == ["conforms", "degraded"]
    assert s.next_token_kl.iloc[0] < 1e-4 and s.top1_agreement.iloc[0] == 1
    assert s.next_token_kl.iloc[1] > 1e-3 and (s.chat_prompt == "same").all() and (s.tokenization == "same").all()
    lay = res.layers()
    assert len(lay) == 60 and lay[lay.model == f16.name].rel_error.max() < F16_REL
    # llama.cpp's own renderer recognises SmolLM2's template as ChatML and drops the system prompt
    # the template adds by default: reported, not part of the verdict (the workbench runs the template)
    chats = res.chat()
    native = chats[chats.how.str.contains("built-in")].prompt.iloc[0]
    assert "<|im_start|>user" in native and "SmolLM" not in native and "SmolLM" in chats.prompt.iloc[0]
    assert s.llamacpp_renderer.str.startswith("first difference at character 12").all()
    assert "note: llama.cpp's built-in chat renderer" in s.reason.iloc[0]


def test_conformance_against_another_model_is_silently_wrong(smollm, gemma):
    res = wb.conformance([smollm, gemma], PROMPTS[:2], progress=False)
    row = res.summary().iloc[0]
    assert row["verdict"] == "silently wrong" and "splits differently" in row["reason"]
    assert "vocabulary" in row["tokenization"] and row["chat_prompt"] != "same"


def test_gemma3_sites_lens_and_dla_match_hf_on_f32(gemma):
    """The gemma3 graph's mapping (post-norm attn_out/mlp_out, scaled embeddings, one K/V head,
    sliding-window layers read with a full-size cache) against the HF backend; measured: every
    site within 1.8e-3 relative error, attention patterns within 1e-3."""
    from workbench.backends.quantize import quantize_gguf
    from workbench.inspect.sites import site_adapter
    g = wb.load_model(quantize_gguf("gemma-3-270m", "F32"), backend="llama.cpp")
    texts = TEXTS[:2]
    ours = wb.capture(g, texts, sites=SITES, layers=[0, 5, 17], progress=False)
    ref = wb.capture(gemma, texts, sites=SITES, layers=[0, 5, 17], progress=False)
    mask = ref.attention_mask.bool()
    for key in ref.keys():
        assert ours[key].shape == ref[key].shape, key
        if key[0] == "attn_pattern":
            assert float((ours[key] - ref[key]).abs().max()) < 3e-3, key
        else:
            assert _rel(ours[key], ref[key], mask) < 4e-3, key
    last = mask.sum(1) - 1
    lens = site_adapter(g).unembed(ours["resid_post", 17])
    assert torch.equal(lens[torch.arange(2), last].argmax(-1), ref["logits"][torch.arange(2), last].argmax(-1))
    a = wb.inspect.direct_logit_attribution(g, "The doctor said that", " he", " she")
    b = wb.inspect.direct_logit_attribution(gemma, "The doctor said that", " he", " she")
    assert abs(a.error) < 1e-4 and abs(a.total - b.total) < 5e-3
    assert np.abs(a.frame.contribution.to_numpy() - b.frame.contribution.to_numpy()).max() < 5e-3


def test_a_long_text_is_captured_in_chunks_through_the_kv_cache(f32, smollm):
    """300 tokens: decoded in chunks (85 tokens when every row is an output, 256 otherwise),
    each continuing the KV cache; the chunks line up with one HF forward pass, the attention
    pattern's rows included."""
    text = " ".join(["The quick brown fox jumps over the lazy dog while the children laugh."] * 25)
    ids = smollm.tokenizer(text)["input_ids"][:300]
    batch = {"input_ids": torch.tensor([ids])}
    sites = ["resid_post", "attn_pattern"]
    ours = wb.capture(f32, batch, sites=sites, layers=[3, 29], progress=False)
    ref = wb.capture(smollm, batch, sites=sites, layers=[3, 29], progress=False)
    mask = ref.attention_mask.bool()
    for L in (3, 29):
        assert _rel(ours["resid_post", L], ref["resid_post", L], mask) < F32_REL
        assert float((ours["attn_pattern", L] - ref["attn_pattern", L]).abs().max()) < 3e-3

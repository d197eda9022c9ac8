"""Sparse autoencoders: loading (SAELens, Gemma Scope) checked against a manual numpy computation,
hook-name -> site mapping, training on a tiny model, splicing, feature ablation and steering,
top-activating examples, and the refusals on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import workbench as wb
from workbench.errors import (CorruptModelError, InvalidInputError, ModelNotFoundError, OfflineError,
                              UnsupportedSiteError, WorkbenchError, WrongModelKindError)
from workbench.inspect.sae import SAE, hook_name_of, site_from_hook_name

ROOT_TEXT = (wb.__file__.rsplit("/", 1)[0] + "/data/neutral_text.txt")
SENTS = [s.strip() + "." for s in open(ROOT_TEXT).read().replace("\n", " ").split(".") if s.strip()]


def _relu(a):
    return np.maximum(a, 0)


def _weights(d_in, d_sae, seed=0):
    r = np.random.default_rng(seed)
    return {"W_enc": r.normal(size=(d_in, d_sae)).astype(np.float32),
            "b_enc": r.normal(size=d_sae).astype(np.float32) * 0.1,
            "W_dec": r.normal(size=(d_sae, d_in)).astype(np.float32),
            "b_dec": r.normal(size=d_in).astype(np.float32)}


def _saelens(folder, cfg, weights):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(weights, str(folder / "sae_weights.safetensors"))
    return folder


def _identity(d, site="resid_post", layer=0):
    """relu(x) - relu(-x) = x: a perfect SAE with 2*d features (feature i: the positive part of x_i)."""
    eye = torch.eye(d)
    return SAE(W_enc=torch.cat([eye, -eye], 1), b_enc=torch.zeros(2 * d), W_dec=torch.cat([eye, -eye], 0),
               b_dec=torch.zeros(d), site=site, layer=layer)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the SAEs here are tiny: thread hand-offs would cost more than the matmuls (10x on a busy machine)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    # initializer_range 0.2: logits far enough from uniform that zeroing a site changes the loss clearly
    from workbench.testing import tiny_model
    return tiny_model("gpt2", initializer_range=0.2)


# -- loading --------------------------------------------------------------------------------

def test_saelens_standard_matches_numpy(tmp_path):
    w = _weights(6, 10)
    folder = _saelens(tmp_path / "sae", {"d_in": 6, "d_sae": 10, "hook_name": "blocks.1.hook_resid_post",
                                         "hook_layer": 1, "architecture": "standard",
                                         "apply_b_dec_to_input": True, "normalize_activations": "none"}, w)
    sae = wb.inspect.load_sae(folder)
    assert (sae.site, sae.layer, sae.architecture, sae.d_in, sae.d_sae) == ("resid_post", 1, "standard", 6, 10)
    x = np.random.default_rng(1).normal(size=(3, 5, 6)).astype(np.float32)
    f = _relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    np.testing.assert_allclose(sae.encode(torch.from_numpy(x)).numpy(), f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sae.decode(torch.from_numpy(f)).numpy(), f @ w["W_dec"] + w["b_dec"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(sae(x).numpy(), f @ w["W_dec"] + w["b_dec"], rtol=1e-5, atol=1e-4)
    assert (f > 0).any() and (f == 0).any()   # the check covers both sides of the ReLU


def test_saelens_jumprelu_topk_and_old_field_names(tmp_path):
    w = _weights(4, 8, seed=2)
    thr = np.full(8, 0.5, dtype=np.float32)
    # SAELens 6: architecture + hook name under metadata
    jr = wb.inspect.load_sae(_saelens(tmp_path / "jr", {"d_in": 4, "d_sae": 8, "architecture": "jumprelu",
                                                        "apply_b_dec_to_input": False,
                                                        "metadata": {"hook_name": "blocks.0.hook_mlp_out"}},
                                      {**w, "threshold": thr}))
    x = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    pre = x @ w["W_enc"] + w["b_enc"]
    np.testing.assert_allclose(jr.encode(x).numpy(), pre * (pre > 0.5), rtol=1e-5, atol=1e-6)
    assert (jr.site, jr.layer) == ("mlp_out", 0)
    assert ((pre > 0) & (pre <= 0.5)).any()   # the threshold, not the ReLU, decides for some entries
    # before SAELens 6: hook_point, activation_fn_str="topk" with activation_fn_kwargs
    tk = wb.inspect.load_sae(_saelens(tmp_path / "tk", {"d_in": 4, "d_sae": 8, "hook_point": "blocks.2.hook_resid_pre",
                                                        "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 2}}, w))
    pre = (x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    want = np.zeros_like(pre)
    top = np.argsort(-pre, axis=1)[:, :2]
    np.put_along_axis(want, top, _relu(np.take_along_axis(pre, top, 1)), 1)
    np.testing.assert_allclose(tk.encode(x).numpy(), want, rtol=1e-5, atol=1e-6)
    assert (tk.architecture, tk.k, tk.site, tk.layer) == ("topk", 2, "resid_pre", 2)


def test_saelens_constant_norm_rescale(tmp_path):
    w = _weights(4, 8, seed=4)
    sae = wb.inspect.load_sae(_saelens(tmp_path / "n", {"d_in": 4, "d_sae": 8, "hook_name": "blocks.0.hook_resid_post",
                                                        "normalize_activations": "constant_norm_rescale"}, w))
    x = np.random.default_rng(5).normal(size=(7, 4)).astype(np.float32) * 10
    c = 2.0 / np.linalg.norm(x, axis=1, keepdims=True)          # sqrt(d_in) / |x|
    f = _relu((x * c - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    np.testing.assert_allclose(sae(x).numpy(), (f @ w["W_dec"] + w["b_dec"]) / c, rtol=1e-4, atol=1e-4)


def test_gemma_scope_npz_matches_numpy(tmp_path):
    w = _weights(6, 12, seed=6)
    thr = np.abs(np.random.default_rng(7).normal(size=12)).astype(np.float32)
    folder = tmp_path / "gemma-scope-2b-pt-res" / "layer_3" / "width_16k" / "average_l0_5"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", threshold=thr, **w)
    sae = wb.inspect.load_sae(folder)
    assert (sae.architecture, sae.site, sae.layer, sae.apply_b_dec_to_input) == ("jumprelu", "resid_post", 3, False)
    x = np.random.default_rng(8).normal(size=(2, 9, 6)).astype(np.float32)
    pre = x @ w["W_enc"] + w["b_enc"]                      # Gemma Scope does not subtract b_dec
    f = (pre > thr) * _relu(pre)
    np.testing.assert_allclose(sae.encode(x).numpy(), f, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sae(x).numpy(), f @ w["W_dec"] + w["b_dec"], rtol=1e-5, atol=1e-4)
    # no site in the path: unknown until given
    bare = tmp_path / "bare"
    bare.mkdir()
    np.savez(bare / "params.npz", threshold=thr, **w)
    assert wb.inspect.load_sae(bare).site is None
    assert wb.inspect.load_sae(bare, site="mlp_out", layer=1).site == "mlp_out"


@pytest.mark.parametrize("hook, want", [("blocks.12.hook_resid_post", ("resid_post", 12)),
                                        ("blocks.0.hook_resid_pre", ("resid_pre", 0)),
                                        ("blocks.3.hook_mlp_out", ("mlp_out", 3)),
                                        ("blocks.3.hook_attn_out", ("attn_out", 3)),
                                        ("blocks.5.attn.hook_z", ("z", 5)),
                                        ("blocks.5.mlp.hook_post", ("mlp_hidden", 5)),
                                        ("hook_embed", ("embed", None))])
def test_site_mapping(hook, want):
    assert site_from_hook_name(hook) == want
    assert hook_name_of(*want) == hook


def test_unknown_hook_name_refused():
    with pytest.raises(UnsupportedSiteError, match="site="):
        site_from_hook_name("blocks.3.ln2.hook_normalized")


# -- training and round trip --------------------------------------------------------------------

def test_trained_sae_reconstructs_and_round_trips(model, tmp_path):
    d = model.hf.config.n_embd
    sae = wb.inspect.train_sae(model, SENTS[:12], layer=1, d_sae=4 * d, l1=1.0, steps=1000, seed=0)
    tr = sae.training
    # established on this tiny model (d=32, ~550 tokens): fve ~0.83, L0 ~30 of 128, no dead features
    assert tr["n_tokens"] > 300 and tr["fve"] > 0.8 and tr["l0"] < d and tr["dead_fraction"] < 0.1, tr
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(4 * d), atol=1e-5)   # unit decoder rows
    held = wb.inspect.evaluate_sae(model, sae, SENTS[12:]).frame.iloc[0]
    assert held["fve"] > 0.7, held
    back = wb.inspect.load_sae(sae.save(tmp_path / "trained"))
    assert (back.site, back.layer, back.hook_name) == ("resid_post", 1, "blocks.1.hook_resid_post")
    x = torch.randn(5, d)
    assert torch.equal(back.encode(x), sae.encode(x)) and torch.equal(back(x), sae(x))
    assert back.training["fve"] == pytest.approx(tr["fve"])
    cfg = json.loads((tmp_path / "trained" / "cfg.json").read_text())
    assert cfg["d_in"] == d and cfg["d_sae"] == 4 * d and cfg["architecture"] == "standard"


def test_training_is_seeded_and_l1_trades_sparsity(model):
    a = wb.inspect.train_sae(model, SENTS[:6], layer=0, d_sae=64, steps=150, seed=1)
    b = wb.inspect.train_sae(model, SENTS[:6], layer=0, d_sae=64, steps=150, seed=1)
    assert torch.equal(a.W_enc, b.W_enc)
    sparse = wb.inspect.train_sae(model, SENTS[:6], layer=0, d_sae=64, steps=150, seed=1, l1=5.0)
    assert sparse.training["l0"] < a.training["l0"] and sparse.training["fve"] < a.training["fve"]


# -- splicing, ablation, steering -----------------------------------------------------------

def _logits(model, text="The cat sat on the mat."):
    ids = model.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model.hf(input_ids=ids).logits


def test_splice_perfect_sae_keeps_loss_zero_ablation_changes_it(model):
    ev = wb.inspect.evaluate_sae(model, _identity(model.hf.config.n_embd), SENTS[:8]).frame.iloc[0]
    assert ev["fve"] == pytest.approx(1.0, abs=1e-6) and ev["l0"] > 0
    assert abs(ev["delta_loss"]) < 1e-5
    assert abs(ev["loss_zero_ablated"] - ev["loss_clean"]) > 0.3
    assert model.interventions == []


def test_splice_on_z_site(tiny):
    m = tiny("llama")
    ad = wb.inspect.adapter(m)
    sae = _identity(ad.n_heads * ad.head_dim, site="z", layer=1)
    before = _logits(m)
    with wb.inspect.splice_sae(m, sae):
        spliced = _logits(m)
    torch.testing.assert_close(spliced, before, rtol=1e-5, atol=1e-5)


def test_feature_steering_changes_logits_only_while_active(model):
    sae = _identity(model.hf.config.n_embd)
    before = _logits(model)
    with wb.inspect.steer_feature(model, sae, feature=3, alpha=20.0) as desc:
        during = _logits(model)
        assert model.interventions == [desc] and desc["features"] == [3]
        cache = wb.capture(model, ["A dog"], sites=["resid_post"], layers=[0], progress=False)
    after = _logits(model)
    assert (during - before).abs().max() > 1e-2
    assert torch.equal(after, before) and model.interventions == []
    clean = wb.capture(model, ["A dog"], sites=["resid_post"], layers=[0], progress=False)
    diff = cache["resid_post", 0] - clean["resid_post", 0]
    torch.testing.assert_close(diff[..., 3], torch.full_like(diff[..., 3], 20.0), rtol=1e-4, atol=1e-4)
    assert diff[..., [0, 1, 2, 4]].abs().max() < 1e-4


def test_feature_steering_reaches_scoring_and_generation(model, isolated_cache):
    sae = _identity(model.hf.config.n_embd)
    req = [("The cat sat on the", " mat")]
    base = wb.loglikelihood(model, req)["logprob"].item()
    text = wb.generate(model, ["The cat"], max_new_tokens=6)["completion"].item()
    with wb.inspect.steer_feature(model, sae, feature=[1, 4], alpha=30.0):
        steered = wb.loglikelihood(model, req)["logprob"].item()      # not the cached clean score
        steered_text = wb.generate(model, ["The cat"], max_new_tokens=6)["completion"].item()
    assert abs(steered - base) > 1e-3 and steered_text != text
    assert wb.loglikelihood(model, req)["logprob"].item() == base


def test_skip_first_leaves_the_first_token_alone(model, isolated_cache):
    from workbench.inspect.sae_analysis import kept_tokens
    d = model.hf.config.n_embd
    zero = SAE(W_enc=torch.zeros(d, 4), b_enc=torch.zeros(4), W_dec=torch.zeros(4, d), b_dec=torch.zeros(d),
               site="resid_post", layer=0, skip_first=True)            # reconstructs everything as 0
    texts = ["The cat sat on the mat.", "A dog"]
    clean = wb.capture(model, texts, sites=["resid_post"], layers=[0], progress=False)["resid_post", 0]
    with wb.inspect.splice_sae(model, zero):
        spliced = wb.capture(model, texts, sites=["resid_post"], layers=[0], progress=False)
    x, mask = spliced["resid_post", 0], spliced.attention_mask.bool()
    torch.testing.assert_close(x[:, 0], clean[:, 0])
    assert x[:, 1:][mask[:, 1:]].abs().max() == 0
    # left padding (generation): the first *real* token of each row is kept, KV-cache steps are edited
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert kept_tokens(left, True).tolist() == [[False, False, False, True], [False, True, True, True]]
    sae = _identity(d)
    sae.skip_first = True
    # one-token prompts: the prompt pass is left alone, so only the KV-cache steps can be steered
    assert [len(model.tokenizer(t)["input_ids"]) for t in ("The", "A")] == [1, 1]
    plain = wb.generate(model, ["The", "A"], max_new_tokens=5)["completion"].tolist()
    plain1 = wb.generate(model, ["The", "A"], max_new_tokens=1)["completion"].tolist()
    with wb.inspect.steer_feature(model, sae, feature=2, alpha=30.0):
        steered = wb.generate(model, ["The", "A"], max_new_tokens=5)["completion"].tolist()
        steered1 = wb.generate(model, ["The", "A"], max_new_tokens=1)["completion"].tolist()
    assert steered1 == plain1 and steered != plain


def test_feature_ablation_removes_its_contribution(model):
    sae = _identity(model.hf.config.n_embd)            # feature 2 = relu(x_2)
    clean = wb.capture(model, SENTS[:2], sites=["resid_post"], layers=[0], progress=False)["resid_post", 0]
    with wb.inspect.ablate_feature(model, sae, 2):
        ablated = wb.capture(model, SENTS[:2], sites=["resid_post"], layers=[0], progress=False)["resid_post", 0]
    torch.testing.assert_close(ablated[..., 2], clean[..., 2].clamp(max=0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ablated[..., 3:], clean[..., 3:], rtol=1e-5, atol=1e-5)
    assert (clean[..., 2] > 0).any()


def test_top_activating_examples(model):
    d = model.hf.config.n_embd
    sae = _identity(d)
    sae.b_enc[5] = -1e6                                 # feature 5 never fires
    texts = SENTS[:10]
    res = wb.inspect.top_activating(model, sae, texts, features=[0, 5, d + 1], k=3, context=2)
    cache = wb.capture(model, texts, sites=["resid_post"], layers=[0], progress=False)
    x, mask = cache["resid_post", 0], cache.attention_mask.bool()
    real = x[mask]
    f0 = res.examples(0)
    assert len(f0) == 3 and f0["activation"].is_monotonic_decreasing
    assert f0["activation"].iloc[0] == pytest.approx(float(real[:, 0].max()), rel=1e-5)
    for r in f0.itertuples():                           # each example points at its token
        assert mask[r.text_index, r.position]
        assert x[r.text_index, r.position, 0] == pytest.approx(r.activation, rel=1e-5)
        assert "⟦" in r.context
    neg = res.examples(d + 1)                           # feature d+1 = relu(-x_1)
    assert neg["activation"].iloc[0] == pytest.approx(float((-real[:, 1]).max()), rel=1e-5)
    assert res.examples(5).empty
    stats = res.stats.set_index("feature")
    assert stats.loc[5, "frequency"] == 0
    assert stats.loc[0, "frequency"] == pytest.approx(float((real[:, 0] > 0).float().mean()))


# -- refusals -----------------------------------------------------------------------------------

def test_wrong_width_refused(model):
    sae = SAE(**{k: torch.from_numpy(v) for k, v in _weights(7, 10).items()}, site="resid_post", layer=0)
    with pytest.raises(InvalidInputError, match="d_in=7.*32 wide"):
        wb.inspect.evaluate_sae(model, sae, SENTS[:2])
    with pytest.raises(InvalidInputError, match="d_in=7"):
        sae.encode(torch.zeros(2, 32))
    with pytest.raises(InvalidInputError, match="d_sae=10"):
        sae.decode(torch.zeros(2, 7))
    nosite = SAE(**{k: torch.from_numpy(v) for k, v in _weights(32, 10).items()})
    with pytest.raises(UnsupportedSiteError, match="site="):
        wb.inspect.splice_sae(model, nosite).__enter__()


def test_bad_files_refused(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no SAE folder"):
        wb.inspect.load_sae(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "cfg.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="weights file is missing"):
        wb.inspect.load_sae(tmp_path / "half")
    w = _weights(4, 8)
    with pytest.raises(InvalidInputError, match="'gated' is not supported"):
        wb.inspect.load_sae(_saelens(tmp_path / "g", {"d_in": 4, "d_sae": 8, "architecture": "gated"}, w))
    with pytest.raises(CorruptModelError, match="d_sae=9"):
        wb.inspect.load_sae(_saelens(tmp_path / "m", {"d_in": 4, "d_sae": 9}, w))
    with pytest.raises(CorruptModelError, match="lacks"):
        wb.inspect.load_sae(_saelens(tmp_path / "l", {"d_in": 4}, {"W_enc": w["W_enc"]}))
    with pytest.raises(CorruptModelError, match="threshold"):
        wb.inspect.load_sae(_saelens(tmp_path / "j", {"architecture": "jumprelu"}, w))
    with pytest.raises(InvalidInputError, match="norm_scaling_factor"):
        wb.inspect.load_sae(_saelens(tmp_path / "e", {"normalize_activations": "expected_average_only_in"}, w))
    folder = _saelens(tmp_path / "bad", {}, w)
    (folder / "cfg.json").write_text("{not json")
    with pytest.raises(CorruptModelError, match="not valid JSON"):
        wb.inspect.load_sae(folder)
    with pytest.raises(OfflineError, match="offline"):   # HF_HUB_OFFLINE=1 in conftest
        wb.inspect.load_sae("nobody-here/no-such-sae/layer_1")


def test_expected_average_scaling_folded(tmp_path):
    w = _weights(4, 8, seed=9)
    sae = wb.inspect.load_sae(_saelens(tmp_path / "e", {"normalize_activations": "expected_average_only_in",
                                                        "hook_name": "blocks.0.hook_resid_post"}, w),
                              norm_scaling_factor=3.0)
    x = np.random.default_rng(10).normal(size=(5, 4)).astype(np.float32)
    f = _relu((3 * x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    np.testing.assert_allclose(sae(x).numpy(), (f @ w["W_dec"] + w["b_dec"]) / 3, rtol=1e-4, atol=1e-4)


def test_analysis_bad_inputs(model, tiny):
    sae = _identity(model.hf.config.n_embd)
    with pytest.raises(InvalidInputError, match="out of range"):
        wb.inspect.steer_feature(model, sae, feature=10_000)
    with pytest.raises(InvalidInputError, match="feature"):
        wb.inspect.ablate_feature(model, sae, feature=True)
    with pytest.raises(InvalidInputError, match="workbench SAE"):
        wb.inspect.top_activating(model, "sae", SENTS[:2])
    with pytest.raises(InvalidInputError, match="list of strings"):
        wb.inspect.evaluate_sae(model, sae, "one text")
    with pytest.raises(WrongModelKindError):
        wb.inspect.evaluate_sae(tiny("bert"), sae, SENTS[:2])
    with pytest.raises(InvalidInputError, match="site="):
        wb.inspect.train_sae(model, SENTS[:2], site="attn_pattern")
    with pytest.raises(InvalidInputError, match="only"):
        wb.inspect.train_sae(model, ["Hi."], layer=0)
    with pytest.raises(InvalidInputError, match="l1"):
        wb.inspect.train_sae(model, SENTS[:2], l1=-1)
    with pytest.raises(WorkbenchError):
        wb.inspect.steer_feature(model, sae, feature=1, alpha=float("nan"))
    assert model.interventions == []

"""Every adapter on a tiny random-initialised model of its architecture: each site exists with
the documented shape, means what it says (verify), and unsupported sites fail clearly."""
import warnings

import pytest
import torch

import workbench as wb
from workbench.errors import UnsupportedSiteError
from workbench.inspect.sites import SITES, adapter
from workbench.testing import ARCHS, MASKED_ARCHS

TEXTS = ["The doctor said that she would arrive soon.", "A cat sat."]
PARALLEL = ("gpt_neox", "phi")


@pytest.mark.parametrize("arch", ARCHS)
def test_every_site_has_its_documented_shape(tiny, arch):
    m = tiny(arch)
    ad = adapter(m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cache = wb.capture(m, TEXTS, sites="all")
    b, s = cache.tokens.shape
    d, H, dh = ad.d_model, ad.n_heads, ad.head_dim
    expected = {"embed": (b, s, d), "resid_pre": (b, s, d), "attn_out": (b, s, d), "resid_mid": (b, s, d),
                "mlp_out": (b, s, d), "resid_post": (b, s, d), "attn_pattern": (b, H, s, s), "q": (b, s, H, dh),
                "k": (b, s, ad.n_kv_heads, dh), "v": (b, s, ad.n_kv_heads, dh), "z": (b, s, H, dh),
                "mlp_hidden": (b, s, ad.d_mlp), "final_norm": (b, s, d), "logits": (b, s, len(m.tokenizer))}
    for site, layer in cache.keys():
        assert tuple(cache[site, layer].shape) == expected[site], (site, layer)
    missing = set(SITES) - set(cache.sites)
    if arch in PARALLEL:
        assert missing == {"resid_mid"}
    elif arch in MASKED_ARCHS:
        assert missing == {"final_norm"}
    else:
        assert missing == set()
    assert cache.layers("resid_post") == list(range(m.n_layers))


@pytest.mark.parametrize("arch", ARCHS)
def test_verify_passes_on_every_architecture(tiny, arch):
    res = wb.inspect.verify(tiny(arch))
    assert res.ok, res.report[~res.report["ok"]]
    checks = set(res.report["check"])
    assert "logits with hooks == plain logits" in checks
    assert "resid_pre == hidden_states[L]" in checks
    assert (res.report.loc[res.report["check"] == "logits with hooks == plain logits", "max_abs_diff"] == 0).all()


@pytest.mark.parametrize("arch", PARALLEL)
def test_resid_mid_refused_on_parallel_residual_blocks(tiny, arch):
    with pytest.raises(UnsupportedSiteError, match=rf"resid_mid.*{arch}.*parallel"):
        wb.capture(tiny(arch), TEXTS, sites=["resid_mid"])


def test_gpt_neox_without_parallel_residual_has_resid_mid(tiny):
    m = tiny("gpt_neox", use_parallel_residual=False)
    res = wb.inspect.verify(m)
    assert res.ok
    assert "resid_mid == resid_pre + attn_out" in set(res.report["check"])


def test_bad_sites_and_layers_say_what_is_wrong(tiny):
    m = tiny("llama")
    with pytest.raises(UnsupportedSiteError, match="unknown site 'resid'.*resid_post"):
        wb.capture(m, TEXTS, sites=["resid"])
    with pytest.raises(UnsupportedSiteError, match="layer 5 out of range.*2 layers"):
        wb.capture(m, TEXTS, sites=["resid_post"], layers=[5])
    with pytest.raises(UnsupportedSiteError, match="final_norm.*'bert'.*no final norm"):
        wb.capture(tiny("bert"), TEXTS, sites=["final_norm"])


def test_unsupported_architecture_names_itself():
    import transformers as T
    cfg = T.OPTConfig(num_hidden_layers=1, hidden_size=16, ffn_dim=32, num_attention_heads=2, vocab_size=50,
                      word_embed_proj_dim=16)
    hf = T.OPTForCausalLM(cfg)
    with pytest.raises(UnsupportedSiteError, match="'opt' has no activation-site adapter"):
        adapter(hf)


def test_encoder_without_lm_head_has_no_logits_site():
    import transformers as T

    from workbench.models.model import Model
    from workbench.testing import tiny_config, tiny_tokenizer
    tok = tiny_tokenizer("wordpiece")
    hf = T.BertModel(tiny_config("bert", vocab_size=len(tok)))
    m = Model.from_hf(hf, tok)
    cache = wb.capture(m, TEXTS, sites=["resid_post"])
    assert cache["resid_post", -1].shape[-1] == 32
    with pytest.raises(UnsupportedSiteError, match="no language-model head"):
        wb.capture(m, TEXTS, sites=["logits"])
    assert wb.inspect.verify(m).ok


def test_qkv_views_match_the_models_own_projections(tiny):
    """q/k/v of fused projections (GPT-2 c_attn, GPT-NeoX query_key_value) are split the way the
    model splits them: recompute from resid_pre through the model's own LayerNorm/Linear."""
    for arch in ("gpt2", "gpt_neox"):
        m = tiny(arch)
        cache = wb.capture(m, TEXTS, sites=["resid_pre", "q", "k", "v"], layers=[0])
        block = adapter(m).layers[0]
        with torch.no_grad():
            if arch == "gpt2":
                fused = block.attn.c_attn(block.ln_1(cache["resid_pre", 0]))
                q, k, v = (t.unflatten(-1, (4, 8)) for t in fused.split(32, dim=-1))
            else:
                fused = block.attention.query_key_value(block.input_layernorm(cache["resid_pre", 0]))
                q, k, v = fused.unflatten(-1, (4, 24)).chunk(3, dim=-1)
        for name, t in zip("qkv", (q, k, v)):
            torch.testing.assert_close(cache[name, 0], t)

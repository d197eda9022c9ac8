"""Gemma 3 (text): Llama-like, but every block normalises what attention and the MLP add
before adding it (so attn_out/mlp_out are the post-norm outputs), QK-norm, alternating sliding
and global attention, and final logit soft-capping where the config sets it."""
from workbench.families import llama
from workbench.families.base import Family, GraphSites, GraphTensor, HookPoint, Shape


def sites(s: Shape) -> dict:
    out = llama.sites(s)
    out.update(resid_mid=HookPoint(s.layer + ".pre_feedforward_layernorm", "in"),
               attn_out=HookPoint(s.layer + ".post_attention_layernorm", "out"),
               mlp_out=HookPoint(s.layer + ".post_feedforward_layernorm", "out"))
    return out


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    return T.Gemma3TextConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                              num_key_value_heads=2, head_dim=8, max_position_embeddings=256, sliding_window=16,
                              vocab_size=vocab_size, **common)


# llama.cpp's "gemma3" graph: the block's post-norms are named nodes (the norms without a layer
# index are the unnamed "norm"), so attn_out/mlp_out are, as on Hugging Face, after them
LLAMACPP = GraphSites("gemma3", dict(
    embed=GraphTensor("inp_scaled"), attn_out=GraphTensor("attn_post_norm-{L}"), resid_mid=GraphTensor("sa_out-{L}"),
    mlp_out=GraphTensor("ffn_post_norm-{L}"), resid_post=GraphTensor("l_out-{L}"),
    attn_pattern=GraphTensor("kq_soft_max-{L}", layout="pattern"),
    q=GraphTensor("Qcur-{L}", "RESHAPE", "heads"), k=GraphTensor("Kcur-{L}", "RESHAPE", "heads"),
    v=GraphTensor("Vcur-{L}", "RESHAPE", "heads"), z=GraphTensor("kqv_out-{L}", layout="heads"),
    mlp_hidden=GraphTensor("ffn_geglu-{L}"), final_norm=GraphTensor("result_norm"),
    logits=GraphTensor("result_output")))

FAMILY = Family(name="gemma3", model_types=("gemma3_text",), layers="layers", sites=sites, final_norm="norm",
                tiny_config=tiny_config,
                attn_out_normed=True, llamacpp=(LLAMACPP,))

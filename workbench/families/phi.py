"""Phi (1/1.5/2): Llama's module names for embeddings and q/k/v, but one LayerNorm per block
feeding attention and the MLP in parallel (so there is no residual stream between them), a
``dense`` output projection, ``fc1``/``fc2`` MLP, and a final LayerNorm."""
from workbench.families import llama
from workbench.families.base import Family, HookPoint, Shape, heads


def sites(s: Shape) -> dict:
    out = llama.sites(s)
    out.update(z=HookPoint(s.layer + ".self_attn.dense", "in", heads(s.n_heads, s.head_dim)),
               mlp_hidden=HookPoint(s.layer + ".mlp.fc2", "in"), final_norm=HookPoint(s.base + "final_layernorm", "out"),
               resid_mid="Phi computes attention and MLP in parallel from the same input, so there is no "
                         "residual stream between them; use resid_pre/attn_out/mlp_out")
    return out


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    return T.PhiConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       max_position_embeddings=256, vocab_size=vocab_size, **common)


FAMILY = Family(name="phi", model_types=("phi",), layers="layers", sites=sites, final_norm="final_layernorm",
                tiny_config=tiny_config)

"""Phi (1/1.5/2): one LayerNorm per block feeding attention and the MLP in parallel, so there
is no residual stream between them; a dense output projection; a final LayerNorm."""
from workbench.families.base import Family, HookPoint, Shape, heads


def sites(s: Shape) -> dict:
    at = s.layer + ".self_attn"
    return dict(embed=HookPoint(s.base + "embed_tokens", "out"),
                q=HookPoint(at + ".q_proj", "out", heads(s.n_heads, s.head_dim)),
                k=HookPoint(at + ".k_proj", "out", heads(s.n_kv_heads, s.head_dim)),
                v=HookPoint(at + ".v_proj", "out", heads(s.n_kv_heads, s.head_dim)),
                attn_pattern=HookPoint(at, "weights", seq_dim=2), attn_out=HookPoint(at, "out"),
                mlp_out=HookPoint(s.layer + ".mlp", "out"),
                z=HookPoint(at + ".dense", "in", heads(s.n_heads, s.head_dim)),
                mlp_hidden=HookPoint(s.layer + ".mlp.fc2", "in"), final_norm=HookPoint(s.base + "final_layernorm", "out"),
                resid_mid="Phi computes attention and MLP in parallel from the same input, so there is no "
                          "residual stream between them; use resid_pre/attn_out/mlp_out")


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    return T.PhiConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       max_position_embeddings=256, vocab_size=vocab_size, **common)


FAMILY = Family(name="phi", model_types=("phi",), layers="layers", sites=sites, final_norm="final_layernorm",
                tiny_config=tiny_config)

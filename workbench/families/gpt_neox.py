"""GPT-NeoX / Pythia: a fused ``query_key_value`` projection laid out per head
([q_h | k_h | v_h]), partial rotary, and (with ``use_parallel_residual``, Pythia's setting)
attention and MLP in parallel from the same input."""
from workbench.families.base import Family, HookPoint, Shape, heads


def sites(s: Shape) -> dict:
    at = s.layer + ".attention"
    H, dh = s.n_heads, s.head_dim
    out = dict(embed=HookPoint(s.base + "embed_in", "out"), attn_out=HookPoint(at, "out"),
               attn_pattern=HookPoint(at, "weights", seq_dim=2),
               **{n: HookPoint(at + ".query_key_value", "out", heads(H, dh, i, fused="per_head")) for i, n in enumerate("qkv")},
               z=HookPoint(at + ".dense", "in", heads(H, dh)), mlp_out=HookPoint(s.layer + ".mlp", "out"),
               mlp_hidden=HookPoint(s.layer + ".mlp.dense_4h_to_h", "in"),
               final_norm=HookPoint(s.base + "final_layer_norm", "out"))
    if getattr(s.config, "use_parallel_residual", True):
        out["resid_mid"] = ("this GPT-NeoX model (use_parallel_residual=True, as Pythia) computes attention and MLP in "
                            "parallel, so there is no residual stream between them; use resid_pre/attn_out/mlp_out")
    else:
        out["resid_mid"] = HookPoint(s.layer + ".post_attention_layernorm", "in")
    return out


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    return T.GPTNeoXConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                           max_position_embeddings=256, vocab_size=vocab_size, **common)


FAMILY = Family(name="gpt_neox", model_types=("gpt_neox",), layers="layers", sites=sites,
                final_norm="final_layer_norm", tiny_config=tiny_config)

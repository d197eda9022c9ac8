"""Llama-style decoders: pre-norm blocks (RMSNorm), rotary attention with q/k/v/o projections
(grouped-query where ``num_key_value_heads`` < heads), gated MLP. Llama, Mistral, Qwen2, Gemma
(Gemma also scales its embeddings; its tiny config sets ``head_dim``)."""
from workbench.families.base import Family, HookPoint, Shape, heads


def sites(s: Shape) -> dict:
    at = s.layer + ".self_attn"
    return dict(embed=HookPoint(s.base + "embed_tokens", "out"),
                q=HookPoint(at + ".q_proj", "out", heads(s.n_heads, s.head_dim)),
                k=HookPoint(at + ".k_proj", "out", heads(s.n_kv_heads, s.head_dim)),
                v=HookPoint(at + ".v_proj", "out", heads(s.n_kv_heads, s.head_dim)),
                attn_pattern=HookPoint(at, "weights", seq_dim=2), attn_out=HookPoint(at, "out"),
                z=HookPoint(at + ".o_proj", "in", heads(s.n_heads, s.head_dim)),
                resid_mid=HookPoint(s.layer + ".post_attention_layernorm", "in"),
                mlp_out=HookPoint(s.layer + ".mlp", "out"), mlp_hidden=HookPoint(s.layer + ".mlp.down_proj", "in"),
                final_norm=HookPoint(s.base + "norm", "out"))


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    cls = {"llama": T.LlamaConfig, "mistral": T.MistralConfig, "qwen2": T.Qwen2Config, "gemma": T.GemmaConfig}[model_type]
    extra = dict(head_dim=8) if model_type == "gemma" else dict(tie_word_embeddings=False)
    return cls(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=256, vocab_size=vocab_size, **extra, **common)


FAMILY = Family(name="llama", model_types=("llama", "mistral", "qwen2", "gemma"), layers="layers", sites=sites,
                final_norm="norm", tiny_config=tiny_config)

"""Llama-style decoders: pre-norm blocks (RMSNorm), rotary attention with q/k/v/o projections
(grouped-query where ``num_key_value_heads`` < heads), gated MLP. Llama, Mistral, Qwen2, Gemma
(Gemma also scales its embeddings; its tiny config sets ``head_dim``)."""
from workbench.families.base import Family, GraphSites, GraphTensor, HookPoint, Shape, heads


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


# llama.cpp's "llama" graph (src/models/llama.cpp of the pinned llama-cpp-python). Its GGUF
# converter permutes q/k rows into the interleaved rotary order; the reshape node is after the
# bias (if any) and before the rotation, like Hugging Face's q_proj output.
LLAMACPP = GraphSites("llama", dict(
    embed=GraphTensor("embd"), attn_out=GraphTensor("attn_out-{L}"), resid_mid=GraphTensor("ffn_inp-{L}"),
    # the first "ffn_out-L" is the MLP's output; under a control vector the residual sum after it is named so too
    mlp_out=GraphTensor("ffn_out-{L}"), resid_post=GraphTensor("l_out-{L}"),
    attn_pattern=GraphTensor("kq_soft_max-{L}", layout="pattern"),
    q=GraphTensor("Qcur-{L}", "RESHAPE", "heads_interleaved"), k=GraphTensor("Kcur-{L}", "RESHAPE", "heads_interleaved"),
    v=GraphTensor("Vcur-{L}", "RESHAPE", "heads"), z=GraphTensor("kqv_out-{L}", layout="heads"),
    mlp_hidden=GraphTensor("ffn_swiglu-{L}"), final_norm=GraphTensor("result_norm"),
    logits=GraphTensor("result_output")))

FAMILY = Family(name="llama", model_types=("llama", "mistral", "qwen2", "gemma"), layers="layers", sites=sites,
                final_norm="norm", tiny_config=tiny_config, llamacpp=(LLAMACPP,))

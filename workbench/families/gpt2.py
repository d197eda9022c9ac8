"""GPT-2: learned position embeddings added after ``wte``, pre-norm blocks, one fused
``c_attn`` projection holding [q | k | v], Conv1D layers, a final ``ln_f``."""
from workbench.families.base import Family, HookPoint, Shape, heads


def sites(s: Shape) -> dict:
    at = s.layer + ".attn"
    H, dh = s.n_heads, s.head_dim
    return dict(embed=HookPoint(s.base + "wte", "out"), attn_out=HookPoint(at, "out"),
                attn_pattern=HookPoint(at, "weights", seq_dim=2),
                q=HookPoint(at + ".c_attn", "out", heads(H, dh, 0)), k=HookPoint(at + ".c_attn", "out", heads(H, dh, 1)),
                v=HookPoint(at + ".c_attn", "out", heads(H, dh, 2)), z=HookPoint(at + ".c_proj", "in", heads(H, dh)),
                resid_mid=HookPoint(s.layer + ".ln_2", "in"), mlp_out=HookPoint(s.layer + ".mlp", "out"),
                mlp_hidden=HookPoint(s.layer + ".mlp.c_proj", "in"), final_norm=HookPoint(s.base + "ln_f", "out"))


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    return T.GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=256, vocab_size=vocab_size, **common)


FAMILY = Family(name="gpt2", model_types=("gpt2",), layers="h", sites=sites, final_norm="ln_f",
                tiny_config=tiny_config,
                positions_after_embed=True)

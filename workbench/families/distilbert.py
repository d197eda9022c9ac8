"""DistilBERT: BERT's post-norm blocks with other module names (``q_lin``..., ``sa_layer_norm``,
``ffn``), and a masked-LM head spread over the top-level model (``vocab_transform``,
activation, ``vocab_layer_norm``, ``vocab_projector``)."""
from workbench.families.base import Family, HookPoint, Shape, heads
from workbench.families.bert import POST_NORM


def sites(s: Shape) -> dict:
    at = s.layer + ".attention"
    H, dh = s.n_heads, s.head_dim
    return dict(embed=HookPoint(s.base + "embeddings.word_embeddings", "out"), attn_out=HookPoint(at, "out"),
                resid_mid=HookPoint(s.layer + ".sa_layer_norm", "out"), attn_pattern=HookPoint(at, "weights", seq_dim=2),
                q=HookPoint(at + ".q_lin", "out", heads(H, dh)), k=HookPoint(at + ".k_lin", "out", heads(H, dh)),
                v=HookPoint(at + ".v_lin", "out", heads(H, dh)), z=HookPoint(at + ".out_lin", "in", heads(H, dh)),
                mlp_out=HookPoint(s.layer + ".ffn", "out"), mlp_hidden=HookPoint(s.layer + ".ffn.lin2", "in"),
                final_norm=POST_NORM)


def head(hf, hidden):
    x = hf.vocab_layer_norm(hf.activation(hf.vocab_transform(hidden)))
    return hf.vocab_projector(x)


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    return T.DistilBertConfig(n_layers=2, dim=32, hidden_dim=64, n_heads=4, max_position_embeddings=256,
                              vocab_size=vocab_size, **common)


FAMILY = Family(name="distilbert", model_types=("distilbert",), layers="transformer.layer", sites=sites,
                pre_norm=False, head=head, tiny_config=tiny_config, masked=True)

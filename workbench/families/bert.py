"""BERT and RoBERTa: post-norm encoder blocks (attention, add & LayerNorm, MLP, add &
LayerNorm), so there is no final norm; the masked-LM head is ``cls`` (BERT) or ``lm_head``
(RoBERTa), each with its own transform before the decoder."""
from workbench.families.base import Family, HookPoint, Shape, heads

POST_NORM = ("post-norm encoders end every layer with a LayerNorm and have no final norm; "
             "use resid_post of the last layer")


def sites(s: Shape) -> dict:
    at = s.layer + ".attention"
    H, dh = s.n_heads, s.head_dim
    return dict(embed=HookPoint(s.base + "embeddings.word_embeddings", "out"),
                attn_out=HookPoint(at + ".output.dense", "out"), resid_mid=HookPoint(at, "out"),
                attn_pattern=HookPoint(at + ".self", "weights", seq_dim=2),
                q=HookPoint(at + ".self.query", "out", heads(H, dh)), k=HookPoint(at + ".self.key", "out", heads(H, dh)),
                v=HookPoint(at + ".self.value", "out", heads(H, dh)), z=HookPoint(at + ".output.dense", "in", heads(H, dh)),
                mlp_out=HookPoint(s.layer + ".output.dense", "out"), mlp_hidden=HookPoint(s.layer + ".output.dense", "in"),
                final_norm=POST_NORM)


def head(hf, hidden):
    return (hf.cls if hasattr(hf, "cls") else hf.lm_head)(hidden)


def tiny_config(model_type: str, vocab_size: int, **common):
    import transformers as T
    if model_type == "roberta":  # RoBERTa's positions start after the padding index
        return T.RobertaConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                               max_position_embeddings=260, vocab_size=vocab_size, **common)
    return T.BertConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                        max_position_embeddings=256, vocab_size=vocab_size, **common)


FAMILY = Family(name="bert", model_types=("bert", "roberta"), layers="encoder.layer", sites=sites, pre_norm=False,
                head=head, tiny_config=tiny_config, masked=True)

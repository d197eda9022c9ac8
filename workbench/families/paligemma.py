"""PaliGemma: a SigLIP vision tower, a linear projector, a Gemma language model that attends to
the image and the prompt (the prefix) bidirectionally and to the answer (the suffix) causally."""
from workbench.families import llama
from workbench.families.vlm import tiny_text, tiny_vision, vision_language_family


def tiny(make_tokenizer, seed: int = 0):
    import torch
    import transformers as T
    tok = make_tokenizer({"image_token": "<image>"})
    cfg = T.PaliGemmaConfig(text_config=tiny_text(model_type="gemma", head_dim=8, vocab_size=len(tok)),
                            vision_config=tiny_vision(projection_dim=32), image_token_index=tok.image_token_id,
                            projection_dim=32)
    ip = T.SiglipImageProcessor(size={"height": 32, "width": 32})
    ip.image_seq_length = 16  # (32 / 8)^2 patches, one image token each
    proc = T.PaliGemmaProcessor(image_processor=ip, tokenizer=tok)
    torch.manual_seed(seed)
    return T.PaliGemmaForConditionalGeneration(cfg).eval(), proc


FAMILY = vision_language_family("paligemma", ("paligemma",), llama.FAMILY, tiny=tiny, prefix_lm=True,
                                notes="SigLIP vision tower + linear projector + Gemma (prefix-LM attention)")

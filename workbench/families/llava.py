"""LLaVA (1.5 style): a CLIP vision tower, a two-layer MLP projector, a Llama-style language
model. Each image becomes (image_size/patch_size)^2 image tokens (the CLS feature dropped)."""
from workbench.families import llama
from workbench.families.vlm import tiny_text, tiny_vision, vision_language_family


def tiny(make_tokenizer, seed: int = 0):
    import torch
    import transformers as T
    tok = make_tokenizer({"image_token": "<image>"})
    cfg = T.LlavaConfig(vision_config=T.CLIPVisionConfig(**tiny_vision(projection_dim=32)),
                        text_config=T.LlamaConfig(**tiny_text(vocab_size=len(tok), tie_word_embeddings=False)),
                        image_token_id=tok.image_token_id, vision_feature_layer=-1,
                        vision_feature_select_strategy="default")
    proc = T.LlavaProcessor(image_processor=T.CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                            tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                            image_token="<image>", num_additional_image_tokens=1)
    torch.manual_seed(seed)
    return T.LlavaForConditionalGeneration(cfg).eval(), proc


FAMILY = vision_language_family("llava", ("llava",), llama.FAMILY, tiny=tiny,
                                notes="CLIP vision tower + MLP projector + Llama-style language model")

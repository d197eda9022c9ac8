"""Gemma 3 multimodal (4B and up): a SigLIP vision tower, a projector that pools the patch grid
to ``mm_tokens_per_image`` soft tokens, a Gemma 3 language model (image tokens attend to each
other bidirectionally)."""
from workbench.families import gemma3
from workbench.families.vlm import tiny_text, tiny_vision, vision_language_family


def tiny(make_tokenizer, seed: int = 0):
    import torch
    import transformers as T
    tok = make_tokenizer({"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                          "image_token": "<image_soft_token>"})
    cfg = T.Gemma3Config(text_config=tiny_text(head_dim=8, sliding_window=128, vocab_size=len(tok)),
                         vision_config=tiny_vision(), mm_tokens_per_image=4, boi_token_index=tok.boi_token_id,
                         eoi_token_index=tok.eoi_token_id, image_token_index=tok.image_token_id)
    proc = T.Gemma3Processor(image_processor=T.Gemma3ImageProcessor(size={"height": 32, "width": 32}),
                             tokenizer=tok, image_seq_length=4)
    torch.manual_seed(seed)
    hf = T.Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # transformers initialises the projection to zeros: images would change nothing
        hf.model.multi_modal_projector.mm_input_projection_weight.normal_(0, 0.2)
    return hf, proc


FAMILY = vision_language_family("gemma3_vl", ("gemma3",), gemma3.FAMILY, tiny=tiny,
                                notes="SigLIP vision tower + pooling projector + Gemma 3 language model")

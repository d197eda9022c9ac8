"""Idefics3 / SmolVLM: a SigLIP-style vision tower, a pixel-shuffle connector (``scale_factor``^2
neighbouring patches folded into one token, then a linear projection), a Llama-style language
model (``text_model``).

Images are **split into tiles**: the processor resizes an image (longest edge ``size``), cuts it
into ``rows x cols`` tiles of ``max_image_size`` and appends the whole image shrunk to one tile
(the "global" tile). Each tile is one image for the vision tower: ``vision.*`` sites and the
``projector`` have one row per tile, in the order of the text (local tiles row by row, then the
global tile; per image, images in order), and each tile has ``image_seq_len`` image tokens (a
square grid of ``(tile / patch / scale_factor)^2``). Heat maps and patch attribution put the
local tiles' grids side by side into one mosaic over the image and report the global tile's
grid separately (:func:`workbench.vision.capture.image_token_layout`)."""
from workbench.families import llama
from workbench.families.vlm import tiny_text, tiny_vision, vision_language_family


def tiny(make_tokenizer, seed: int = 0):
    """2x2 tiles of 32x32 plus the global tile, 4 image tokens each (16 patches, scale factor 2)."""
    import torch
    import transformers as T
    tok = make_tokenizer({"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                          "global_image_token": "<global-img>"})
    # the tile markers the processor writes; as single tokens, as in the real tokenizers
    tok.add_tokens([f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)], special_tokens=True)
    # the PIL image processor: the default one needs torchvision, which is not installed here
    ip = T.Idefics3ImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    proc = T.Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=4)
    cfg = T.Idefics3Config(vision_config=tiny_vision(), scale_factor=2, image_token_id=proc.image_token_id,
                           text_config=tiny_text(model_type="llama", vocab_size=len(tok), tie_word_embeddings=False))
    torch.manual_seed(seed)
    return T.Idefics3ForConditionalGeneration(cfg).eval(), proc


FAMILY = vision_language_family("idefics3", ("idefics3", "smolvlm"), llama.FAMILY, tiny=tiny, where="text_model.",
                                vision_layers="vision_model.encoder.layers", vision_embed="vision_model.embeddings",
                                projector="connector", tiled=True,
                                notes="SigLIP vision tower on image tiles + pixel-shuffle connector + Llama-style "
                                      "language model (SmolVLM has the same modules)")

"""Qwen2-VL / Qwen2.5-VL: a ViT on native-resolution patches (``visual.blocks``, all images'
patches in one sequence), a merger that folds 2x2 neighbouring patches into one token, a
Qwen2-style language model with multimodal rotary positions (M-RoPE: each image token gets a
(time, row, column) position, computed by the model from ``input_ids``, ``image_grid_thw`` and
the attention mask, so scoring passes the processor's outputs unchanged and never position ids).

An image keeps its aspect ratio: its token grid is ``image_grid_thw[1:] / merge_size`` (rows x
columns, not always square). The vision sites and ``projector`` are **2-d**,
``[patches (or tokens) of all images in order, d]``: images of different sizes have different
counts, so they are not stacked per image.

Processor: transformers' ``Qwen2VLProcessor`` also builds a video processor, which needs
torchvision. :class:`ImageOnlyQwen2VLProcessor` is the same processor without it (images and
text only), built from the PIL image processor; :func:`load_processor` uses it when the
checkpoint's own processor cannot be built."""
from workbench.families import llama
from workbench.families.vlm import tiny_text, vision_language_family


def image_only_processor_class():
    """``Qwen2VLProcessor`` without the video processor (defined lazily: transformers is heavy)."""
    import transformers as T
    from transformers.processing_utils import ProcessorMixin

    class ImageOnlyQwen2VLProcessor(T.Qwen2VLProcessor):
        """Qwen2-VL's processor for images and text (no videos: no torchvision needed)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return ImageOnlyQwen2VLProcessor


def load_processor(folder, trust_remote_code: bool = False):
    """The checkpoint's processor, or (when it cannot be built, e.g. without torchvision) the
    image-only one from its image processor configuration, tokenizer and chat template."""
    import transformers as T
    try:
        proc = T.AutoProcessor.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception:  # noqa: BLE001  (the video processor's import error, whatever its type)
        proc = None
    # a folder saved with the image-only processor names a class AutoProcessor does not know: it
    # then returns the bare tokenizer
    if getattr(proc, "image_processor", None) is not None:
        return proc
    import json
    from pathlib import Path
    cfg = {}
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = Path(folder) / name
        if path.exists():
            data = json.loads(path.read_text())
            cfg = data.get("image_processor", data)
            break
    keep = ("min_pixels", "max_pixels", "patch_size", "merge_size", "temporal_patch_size", "image_mean",
            "image_std", "do_resize", "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb", "size")
    ip = T.Qwen2VLImageProcessorPil(**{k: v for k, v in cfg.items() if k in keep})
    tok = T.AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    template = getattr(tok, "chat_template", None)
    return image_only_processor_class()(image_processor=ip, tokenizer=tok, chat_template=template)


def tiny(make_tokenizer, seed: int = 0):
    """Images resized to 32x32 pixels (min = max pixels), 8x8 patches, 2x2 merged: 4 tokens (2x2)."""
    import torch
    import transformers as T
    tok = make_tokenizer({"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                          "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"})
    ip = T.Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=32 * 32, patch_size=8, merge_size=2,
                                    temporal_patch_size=2)
    proc = image_only_processor_class()(image_processor=ip, tokenizer=tok)
    text = tiny_text(model_type="qwen2_vl_text", vocab_size=len(tok), tie_word_embeddings=False,
                     rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0})
    cfg = T.Qwen2VLConfig(text_config=text, image_token_id=tok.image_token_id, video_token_id=tok.video_token_id,
                          vision_start_token_id=tok.vision_start_token_id, vision_end_token_id=tok.vision_end_token_id,
                          vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=4, mlp_ratio=2,
                                             patch_size=8, spatial_merge_size=2, temporal_patch_size=2))
    torch.manual_seed(seed)
    return T.Qwen2VLForConditionalGeneration(cfg).eval(), proc


FAMILY = vision_language_family("qwen2_vl", ("qwen2_vl", "qwen2_5_vl"), llama.FAMILY, tiny=tiny,
                                vision_layers="visual.blocks", vision_embed="visual.patch_embed",
                                projector="visual.merger", flat_vision=True, load_processor=load_processor,
                                image_marker="<|vision_start|><|image_pad|><|vision_end|>",
                                notes="native-resolution ViT + 2x2 patch merger + Qwen2 language model (M-RoPE)")

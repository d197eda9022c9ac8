"""Vision-language models: detection, loading with their processor, fingerprinting.

A vision-language model is a :class:`~workbench.Model` of kind ``"vision-language"`` whose
``hf`` is the unmodified ``*ForConditionalGeneration`` model, ``tokenizer`` its processor's
tokenizer and ``processor`` the processor (image processor + tokenizer + chat template). Its
fingerprint hashes every weight file (vision tower and projector included) and, under
``processor``, the processor's configuration (image size, normalisation, image-token count,
chat template): a change to any of them changes what the model sees, so it changes the id.

>>> from workbench.testing import tiny_vlm
>>> vlm = tiny_vlm("llava")
>>> vlm.kind, vlm.architecture, "processor" in vlm.fingerprint
('vision-language', 'llava', True)
"""
from __future__ import annotations

import hashlib
import json

from workbench.errors import CorruptModelError, UnsupportedSiteError, WrongModelKindError
from workbench.families import family_for
from workbench.models.checkpoint import auto_class, display_name, licence_from_card
from workbench.models.fingerprint import compute_fingerprint
from workbench.models.model import Model


def is_vision_language(config) -> bool:
    """A config with a vision tower whose architecture generates text (``*ForConditionalGeneration``
    or an image-text-to-text model type), e.g. LLaVA, PaliGemma, Gemma 3 multimodal, Qwen2-VL."""
    if getattr(config, "vision_config", None) is None:
        return False
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith("ForConditionalGeneration") for a in archs):
        return True
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    return not archs and config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def processor_hash(processor) -> str:
    """sha256 of what the processor does to an input: image processor settings, the tokenizer's
    special tokens, image-token count, chat template (not the tokenizer vocabulary, which the
    fingerprint hashes already)."""
    state = {}
    ip = getattr(processor, "image_processor", None)
    if ip is not None:
        state["image_processor"] = {k: v for k, v in sorted(ip.to_dict().items())
                                    if not k.startswith("_") and k != "processor_class"}
    for attr in ("image_seq_length", "num_image_tokens", "patch_size", "vision_feature_select_strategy",
                 "num_additional_image_tokens", "image_token", "chat_template"):
        if getattr(processor, attr, None) is not None:
            state[attr] = getattr(processor, attr)
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def from_hf(hf, processor, *, name: str | None = None, licence: str = "unknown", source: str = "in-memory",
            weight_files=None, weight_hashes=None, extra: dict | None = None):
    """Wrap a transformers vision-language model and its processor in a :class:`~workbench.Model`."""
    tok = getattr(processor, "tokenizer", None)
    if tok is None or getattr(processor, "image_processor", None) is None:
        raise WrongModelKindError(f"a vision-language model needs a processor with an image processor and a "
                                  f"tokenizer, got {type(processor).__name__}")
    hf.eval()
    name = name or getattr(hf.config, "_name_or_path", None) or type(hf).__name__
    fp = compute_fingerprint(hf, tok, weight_files=weight_files, licence=licence, source=source,
                             extra={**(extra or {}), "processor": processor_hash(processor)},
                             weight_hashes=weight_hashes)
    return Model(hf=hf, tokenizer=tok, name=str(name), kind="vision-language", fingerprint=fp, licence=licence,
                 source=source, processor=processor)


def from_folder(folder, config, *, weight_files, weight_hashes, use_safetensors, source, dtype, device,
                device_map, max_memory, offload_folder, trust_remote_code, name, licence):
    """Load a vision-language model and its processor from a ``save_pretrained`` folder."""
    import transformers as T

    kwargs = dict(config=config, dtype=dtype, trust_remote_code=trust_remote_code, weights_only=True,
                  use_safetensors=use_safetensors, output_loading_info=True)
    if device_map is not None:
        kwargs.update(device_map=device_map, max_memory=max_memory, offload_folder=offload_folder)
    hf, info = auto_class("vision-language").from_pretrained(folder, **kwargs)
    missing = list(info.get("missing_keys", ()))
    if missing:
        raise CorruptModelError(f"{len(missing)} weights of {type(hf).__name__} are not in {folder} "
                                f"(e.g. {missing[:3]}) and would be random.")
    if device_map is None:
        hf.to(device)
    try:  # a family may know how to build its processor where AutoProcessor cannot (Qwen2-VL)
        vision = family_for(config.model_type).vision
        load = vision.load_processor if vision is not None else None
    except UnsupportedSiteError:
        load = None
    load = load or T.AutoProcessor.from_pretrained
    try:
        processor = load(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise CorruptModelError(f"the processor of the vision-language model in {folder} cannot be loaded "
                                f"({type(e).__name__}: {str(e)[:300]}). Save it next to the model "
                                "(processor.save_pretrained(folder)); some processors also need torchvision "
                                "installed.") from e
    return from_hf(hf, processor, name=name or display_name(folder, config),
                   licence=licence if licence is not None else licence_from_card(folder), source=source,
                   weight_files=weight_files, weight_hashes=weight_hashes, extra={"loaded_from": str(folder)})

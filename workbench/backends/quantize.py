"""Re-quantise a GGUF with llama.cpp (``llama_model_quantize``), for quantisation audits: the same
model at several precisions through the same probes and tasks, compared pairwise.

    >>> from workbench.backends.quantize import quantize_gguf
    >>> path = quantize_gguf("smollm2-135m-instruct", "Q8_0")                 # doctest: +SKIP
    >>> m = wb.load_model(path, backend="llama.cpp")                           # doctest: +SKIP

The output is cached as ``cache_dir()/gguf/<sha256 of the source>.quantized/<name>.<TYPE>.gguf`` (built under a
temporary name, renamed into place). A source that is itself quantised is re-quantised from its
de-quantised values (llama.cpp's ``allow_requantize``): a Q8_0 made from a Q4_1 file holds the
Q4_1 model's weights almost exactly, so it stands for the "least quantised" version of what was
shipped, not for the original float weights.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from workbench.backends import gguf_files
from workbench.backends.llamacpp_lib import binding, last_errors
from workbench.errors import InvalidInputError, WorkbenchError

TYPES = ("F32", "F16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_0", "Q3_K_M", "Q2_K")


def quantize_gguf(spec, ftype: str = "Q8_0", threads: int | None = None) -> Path:
    """The GGUF behind ``spec`` (alias, path) re-quantised to ``ftype``; its path."""
    if ftype not in TYPES:
        raise InvalidInputError(f"ftype must be one of {TYPES}, got {ftype!r}")
    _, lib = binding()
    src = gguf_files.resolve(spec)
    stem = src.file_name[:-5] if src.file_name.lower().endswith(".gguf") else src.file_name
    final = gguf_files.gguf_dir() / f"{src.sha256}.quantized" / f"{stem}.{ftype}.gguf"
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{src.sha256[:12]}-", suffix=".gguf", dir=final.parent)
    os.close(fd)
    try:
        params = lib.llama_model_quantize_default_params()
        params.ftype = getattr(lib, "LLAMA_FTYPE_ALL_F32" if ftype == "F32" else f"LLAMA_FTYPE_MOSTLY_{ftype}")
        params.allow_requantize = True
        params.nthread = int(threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
        import ctypes
        rc = lib.llama_model_quantize(str(src.path).encode(), tmp.encode(), ctypes.byref(params))
        if rc != 0:
            raise WorkbenchError(f"llama.cpp could not quantise {src.path} to {ftype} (code {rc}): {last_errors()}")
        os.replace(tmp, final)
        tmp = None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return final

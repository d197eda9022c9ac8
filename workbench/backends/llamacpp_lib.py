"""The llama.cpp library as every module of the llama.cpp backend uses it: the binding
(``llama-cpp-python``, imported on first use with a clear install message), llama.cpp's log
routed to a list (its errors go into our messages), and the sizes the backend's contexts are
made with. It sits below the backend (:mod:`workbench.backends.llamacpp`), its graph reader
(:mod:`~workbench.backends.llamacpp_graph`) and its capture
(:mod:`~workbench.backends.llamacpp_capture`), which all import it at their tops.
"""
from __future__ import annotations

import ctypes

from workbench.errors import BackendUnavailableError

INSTALL = "pip install 'open-model-workbench[llamacpp]'  (builds llama.cpp from source: needs a C++ compiler and cmake)"
# Lean defaults, measured on one core (benchmarks/backends.py): against 512 tokens per decode,
# 64 MB of logits and a 2048-cell cache they cut peak memory by ~90 MB at the same speed (+-5%).
N_BATCH = 256          # tokens per llama_decode (and per micro-batch): sizes the compute buffer
N_SEQ_MAX = 32         # sequences (requests) in the KV cache at once
ROUND_CELLS = 512      # KV cells filled before the cache is cleared (a longer request gets its own)
OUTPUT_BYTES = 16 << 20  # logits llama.cpp hands back per decode (held twice: graph and output buffer)


def binding():
    """(``llama_cpp``, its low-level ``llama_cpp.llama_cpp``), with llama.cpp's log routed to a
    list; :class:`~workbench.errors.BackendUnavailableError` saying how to install it if absent."""
    try:
        import llama_cpp
        import llama_cpp.llama_cpp as lib
    except ImportError as e:
        raise BackendUnavailableError(f"the llama.cpp backend needs llama-cpp-python, which is not installed "
                                      f"({e}). Install it with: {INSTALL}") from e
    _quiet(lib)
    return llama_cpp, lib


LOG = {"callback": None, "errors": []}


def _quiet(lib) -> None:
    """Route llama.cpp's log to a list (its errors go into our messages) instead of stderr."""
    if LOG["callback"] is not None:
        return

    @lib.llama_log_callback
    def callback(level, text, user_data):
        if level >= 4 and text:  # GGML_LOG_LEVEL_ERROR
            LOG["errors"] = (LOG["errors"] + [text.decode("utf-8", "replace").strip()])[-5:]

    LOG["callback"] = callback  # keep a reference: llama.cpp holds the raw pointer
    lib.llama_log_set(callback, ctypes.c_void_p(0))
    lib.llama_backend_init()


def last_errors() -> str:
    """The last error lines llama.cpp logged, for an error message."""
    return "; ".join(e for e in LOG["errors"] if e) or "no message from llama.cpp"

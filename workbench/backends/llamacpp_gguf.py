"""What inspection reads from a model on the llama.cpp backend besides its graph's nodes: GGUF
metadata, the GGUF's tensors de-quantised to float32 with the ``gguf`` package (what
``transformers`` uses to load a GGUF, so the numbers are the Hugging Face backend's), the final
norm and output matrix the logit lens reads (the token embeddings where the model ties them),
kept on the backend, the graph's shape, and what llama.cpp's own chat renderer makes of a chat.

Raw numbers only: which node of llama.cpp's graph holds which site, and the lens itself, are
inspection's (:class:`workbench.inspect.sites.GraphAdapter`).
"""
from __future__ import annotations

import ctypes

import numpy as np
import torch

from workbench.backends.base import GraphShape
from workbench.errors import UnsupportedSiteError


def meta(backend, key: str) -> str | None:
    """A GGUF metadata value (as text) through llama.cpp, or None."""
    eng = backend.engine
    buf = ctypes.create_string_buffer(512)
    n = eng.lib.llama_model_meta_val_str(eng.model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


def graph_shape(backend) -> GraphShape:
    """The architecture llama.cpp built the graph for and the model's sizes, from llama.cpp."""
    eng, lib = backend.engine, backend.engine.lib
    return GraphShape(arch=meta(backend, "general.architecture") or backend.config.model_type,
                      n_layers=int(lib.llama_model_n_layer(eng.model)), n_heads=int(lib.llama_model_n_head(eng.model)),
                      n_kv_heads=int(lib.llama_model_n_head_kv(eng.model)), d_model=int(eng.n_embd),
                      vocab=int(eng.n_vocab))


# -- weights from the GGUF ------------------------------------------------------------------

def _reader(backend):
    reader = getattr(backend, "_gguf_reader", None)
    if reader is None:
        import gguf
        reader = backend._gguf_reader = gguf.GGUFReader(str(backend.gguf.path))  # memory-mapped
        backend._gguf_index = {t.name: t for t in reader.tensors}
    return reader


def gguf_number(backend, key: str) -> float | None:
    """A numeric GGUF metadata value, exactly as stored (llama.cpp's text form rounds it)."""
    field = _reader(backend).fields.get(key)
    return None if field is None else float(field.parts[field.data[0]][0])


def gguf_tensor(backend, name: str) -> np.ndarray | None:
    """A tensor of the GGUF de-quantised to float32, in ``transformers``' orientation ([out, in]
    for a matrix); None if the file has no tensor of that name."""
    from gguf import quants
    _reader(backend)
    t = backend._gguf_index.get(name)
    if t is None:
        return None
    # a copy: for an F32 tensor dequantize returns the read-only memory map itself
    return np.array(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)


def unembedding(backend) -> dict:
    """The final norm weight, its epsilon and the output matrix [vocab, d] (float32 torch
    tensors), read from the GGUF once and kept on the backend."""
    cached = getattr(backend, "_unembedding", None)
    if cached is None:
        arch = meta(backend, "general.architecture")
        eps = gguf_number(backend, f"{arch}.attention.layer_norm_rms_epsilon")
        out = gguf_tensor(backend, "output.weight")
        if out is None:  # tied: llama.cpp uses the token embeddings as the output matrix
            out = gguf_tensor(backend, "token_embd.weight")
        norm = gguf_tensor(backend, "output_norm.weight")
        if out is None or norm is None or eps is None:
            raise UnsupportedSiteError(f"{backend.gguf.file_name} has no output_norm.weight / output matrix / "
                                       f"{arch}.attention.layer_norm_rms_epsilon: its final norm and unembedding "
                                       "cannot be read for the logit lens; use backend='hf'")
        cached = backend._unembedding = {"norm": torch.from_numpy(norm), "eps": float(eps),
                                         "output": torch.from_numpy(out)}
    return cached


def native_chat(backend, messages: list[dict]) -> tuple[str | None, str]:
    """The chat prompt llama.cpp's own renderer (``llama_chat_apply_template``: what llama-cli
    and llama-server without ``--jinja`` send) makes of ``messages`` with the GGUF's embedded
    template, or None and why not. It recognises known templates rather than running them, so it
    can differ from the template itself, which the workbench renders."""
    eng = backend.engine
    lib = eng.lib
    tmpl = lib.llama_model_chat_template(eng.model, None)
    if not tmpl:
        return None, "the GGUF embeds no chat template"
    keep = [(str(m["role"]).encode(), str(m["content"]).encode()) for m in messages]  # alive during the calls
    arr = (lib.llama_chat_message * len(keep))(*[lib.llama_chat_message(r, c) for r, c in keep])
    n = lib.llama_chat_apply_template(tmpl, arr, len(keep), True, None, 0)
    if n < 0:
        return None, "llama.cpp's built-in renderer does not recognise this template"
    buf = ctypes.create_string_buffer(n + 1)
    lib.llama_chat_apply_template(tmpl, arr, len(keep), True, buf, n + 1)
    return buf.raw[:n].decode("utf-8", "replace"), "llama.cpp built-in renderer (llama-server without --jinja)"

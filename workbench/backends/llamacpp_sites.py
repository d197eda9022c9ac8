"""The activation sites of a model on the llama.cpp backend, and the weights inspection reads
from its GGUF file.

:class:`GraphAdapter` is the counterpart of :class:`workbench.inspect.sites.Adapter` for a model
with no in-process modules: the same site names, layer indexing, widths and errors, resolved to
nodes of llama.cpp's compute graph through the family's :class:`~workbench.families.GraphSites`
(the GGUF's ``general.architecture`` picks the entry), and the same ``unembed`` for the logit
lens: the GGUF's own final norm and output matrix (the token embeddings where the model ties
them), de-quantised once to float32 with the ``gguf`` package (what ``transformers`` uses to
load a GGUF, so the numbers are the Hugging Face backend's) and kept on the backend.
"""
from __future__ import annotations

import ctypes
from dataclasses import replace

import numpy as np
import torch

from workbench.errors import UnsupportedSiteError
from workbench.families import GraphTensor, family_for


def meta(backend, key: str) -> str | None:
    """A GGUF metadata value (as text) through llama.cpp, or None."""
    eng = backend.engine
    buf = ctypes.create_string_buffer(512)
    n = eng.lib.llama_model_meta_val_str(eng.model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


class GraphAdapter:
    """Site names -> graph nodes for one model on the llama.cpp backend (see the module doc)."""

    def __init__(self, model):
        from workbench.inspect.sites import LAYER_SITES, MODEL_SITES, SITES
        self.backend = backend = model.backend
        cfg = model.config
        self.config = getattr(cfg, "text_config", None) or cfg
        self.arch = cfg.model_type
        self.family = family_for(self.arch)  # UnsupportedSiteError naming the supported ones
        self.graph_arch = meta(backend, "general.architecture") or self.arch
        graph = self.family.graph_sites(self.graph_arch)
        if graph is None:
            known = sorted(g.arch for g in self.family.llamacpp)
            raise UnsupportedSiteError(
                f"no site mapping for llama.cpp's {self.graph_arch!r} graph (family {self.family.name!r} maps "
                f"{known or 'no llama.cpp graph'}), so activations of this GGUF cannot be captured on the 'llama.cpp' "
                "backend; load it with backend='hf', or add a GraphSites entry to the family (workbench.families)")
        self.graph = graph
        eng, lib = backend.engine, backend.engine.lib
        self.n_layers = int(lib.llama_model_n_layer(eng.model))
        self.n_heads = int(lib.llama_model_n_head(eng.model))
        self.n_kv_heads = int(lib.llama_model_n_head_kv(eng.model))
        self.d_model = int(eng.n_embd)
        c = self.config
        self.head_dim = int(getattr(c, "head_dim", None) or self.d_model // self.n_heads)
        self.d_mlp = int(getattr(c, "intermediate_size", None) or 4 * self.d_model)
        self.vocab = int(eng.n_vocab)
        self._sites, self._layer_sites, self._model_sites = SITES, LAYER_SITES, MODEL_SITES

    # -- sites ----------------------------------------------------------------------------
    def _entry(self, site: str):
        if site == "resid_pre":  # embed at layer 0, resid_post of the layer before elsewhere
            ok = isinstance(self.graph.tensors.get("embed"), GraphTensor) and \
                isinstance(self.graph.tensors.get("resid_post"), GraphTensor)
            return GraphTensor("resid_pre") if ok else "it needs both embed and resid_post in the graph"
        return self.graph.tensors.get(site)

    def available(self) -> list[str]:
        return [s for s in self._sites if isinstance(self._entry(s), GraphTensor)]

    def hook_point(self, site: str, layer: int | None = None) -> GraphTensor:
        """The graph node of ``site`` at ``layer`` (its name with the layer filled in)."""
        if site not in self._sites:
            raise UnsupportedSiteError(f"unknown site {site!r}; sites are {list(self._sites)}")
        entry = self._entry(site)
        if not isinstance(entry, GraphTensor):
            why = entry or "llama.cpp's graph has no node for it"
            raise UnsupportedSiteError(f"site {site!r} is not available on the 'llama.cpp' backend for "
                                       f"{self.graph_arch!r} graphs: {why}. Available: {self.available()}; "
                                       "every site is available with backend='hf'")
        if site in self._model_sites:
            if layer is not None:
                raise UnsupportedSiteError(f"site {site!r} has no layers; ask for it with layer=None")
            return entry
        layer = self.check_layer(layer)
        if site == "resid_pre":
            return self.hook_point("embed") if layer == 0 else self.hook_point("resid_post", layer - 1)
        return replace(entry, name=entry.name.format(L=layer))

    def check_layer(self, layer) -> int:
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise UnsupportedSiteError(f"layer must be an int in [-{self.n_layers}, {self.n_layers}), got {layer!r}")
        if not -self.n_layers <= layer < self.n_layers:
            raise UnsupportedSiteError(f"layer {layer} out of range: {self.arch} has {self.n_layers} layers "
                                       f"(0..{self.n_layers - 1}, or negative from the end)")
        return layer % self.n_layers

    def site_width(self, site: str) -> int:
        return {"q": self.n_heads * self.head_dim, "z": self.n_heads * self.head_dim,
                "k": self.n_kv_heads * self.head_dim, "v": self.n_kv_heads * self.head_dim,
                "mlp_hidden": self.d_mlp, "logits": self.vocab}.get(site, self.d_model)

    def heads_of(self, site: str) -> int:
        return self.n_kv_heads if site in ("k", "v") else self.n_heads

    # -- read-out ---------------------------------------------------------------------------
    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Residual stream -> logits through the GGUF's final RMSNorm and output matrix (float32,
        soft-capped where the config says, as llama.cpp's graph does)."""
        from workbench.families.base import softcapped
        w = unembedding(self.backend)
        h = hidden.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + w["eps"]) * w["norm"]
        return softcapped(self.config, h @ w["output"].T)


def graph_adapter(model) -> GraphAdapter:
    """The :class:`GraphAdapter` of a llama.cpp model, made once and kept on its backend."""
    backend = model.backend
    cached = getattr(backend, "_graph_adapter", None)
    if cached is None:
        cached = backend._graph_adapter = GraphAdapter(model)
    return cached


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

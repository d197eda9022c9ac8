"""One name per activation site, mapped onto each architecture's own Hugging Face modules.

Sites (``L`` = layer index; shapes for a batch of ``b`` sequences of ``s`` tokens):

================  ===================================================================  ==============
site              meaning                                                              shape
================  ===================================================================  ==============
``embed``         token embeddings (output of the word-embedding module, after Gemma's  [b, s, d]
                  scaling; *before* GPT-2/BERT add position embeddings)
``resid_pre``     residual stream entering layer L (``hidden_states[L]`` of HF)        [b, s, d]
``attn_out``      what the attention block adds to the residual stream (Gemma 3: after [b, s, d]
                  its post-attention norm; BERT: the dense output before add & norm)
``resid_mid``     residual stream between attention and MLP (pre-norm: resid_pre +    [b, s, d]
                  attn_out; BERT/DistilBERT: after the attention add & norm). Does not
                  exist in parallel-residual blocks (GPT-NeoX/Pythia, Phi).
``mlp_out``       what the MLP block adds to the residual stream                       [b, s, d]
``resid_post``    residual stream leaving layer L (output of the layer module)          [b, s, d]
``attn_pattern``  attention probabilities (needs eager attention, switched on demand)   [b, h, s, s]
``q``/``k``/``v`` per-head projections, *before* rotary embeddings / QK-norm            [b, s, h, dh]
``z``             per-head attention output, input of the output projection            [b, s, h, dh]
``mlp_hidden``    MLP neurons: input of the MLP's down projection                      [b, s, d_mlp]
``final_norm``    output of the final norm (no layer); absent in post-norm encoders    [b, s, d]
``logits``        the model's output logits (no layer)                                 [b, s, vocab]
================  ===================================================================  ==============

``resid_post`` of the last layer is the residual stream *before* the final norm; Hugging Face's
``output_hidden_states[-1]`` is *after* it (decoders), so ``verify`` compares that one with
``final_norm``. k/v have ``num_key_value_heads`` heads under grouped-query attention.

A model with no in-process modules (the llama.cpp backend) has the same sites in its compute
graph: :class:`GraphAdapter` maps them onto the graph's nodes through the family's
:class:`~workbench.families.GraphSites`, with the same names, layer indexing, widths and errors,
and the same ``unembed`` for the logit lens (through the final norm and output matrix the
backend reads from its file). The backend only runs token ids and hands back the nodes asked
for by name (:meth:`workbench.backends.base.Backend.capture`): inspection stays here.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from workbench.backends.base import require
from workbench.errors import InvalidInputError, UnsupportedSiteError
from workbench.families import GraphTensor, HookPoint, Shape, family_for
from workbench.families.base import heads as _heads  # noqa: F401  (kept for code that imported it here)
from workbench.families.base import softcapped
from workbench.validate import check_int

LAYER_SITES = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post", "attn_pattern",
               "q", "k", "v", "z", "mlp_hidden")
MODEL_SITES = ("embed", "final_norm", "logits")
SITES = ("embed",) + LAYER_SITES + ("final_norm", "logits")
# sites whose value can be replaced by a hook (ablation, patching, steering)
EDITABLE = ("embed", "resid_pre", "attn_out", "mlp_out", "resid_post", "z", "mlp_hidden")


class _Layers:
    """What both site maps say of layers and widths (``n_layers``, ``arch``, the sizes set by each)."""

    def check_layer(self, layer) -> int:
        if not isinstance(layer, (int,)) or isinstance(layer, bool):
            raise UnsupportedSiteError(f"layer must be an int in [-{self.n_layers}, {self.n_layers}), got {layer!r}")
        if not -self.n_layers <= layer < self.n_layers:
            raise UnsupportedSiteError(f"layer {layer} out of range: {self.arch} has {self.n_layers} layers "
                                       f"(0..{self.n_layers - 1}, or negative from the end)")
        return layer % self.n_layers

    def site_width(self, site: str) -> int:
        """Numbers stored per token (per layer) for ``site``; attn_pattern: per head and key."""
        return {"q": self.n_heads * self.head_dim, "z": self.n_heads * self.head_dim,
                "k": self.n_kv_heads * self.head_dim, "v": self.n_kv_heads * self.head_dim,
                "mlp_hidden": self.d_mlp, "logits": self.vocab}.get(site, self.d_model)


class Adapter(_Layers):
    """Maps site names to hook points for one loaded model, from its architecture family
    (:mod:`workbench.families`; see the module docstring for the sites)."""

    def __init__(self, hf):
        self.hf = hf
        cfg = hf.config
        self.config = getattr(cfg, "text_config", None) or cfg
        self.arch = cfg.model_type
        self.family = family_for(self.arch)  # UnsupportedSiteError naming the supported ones
        prefix = getattr(hf, "base_model_prefix", "")
        self.base = f"{prefix}." if prefix and hasattr(hf, prefix) else ""
        self.n_layers = len(self.layers)
        c = self.config
        self.n_heads = int(getattr(c, "num_attention_heads", None) or getattr(c, "n_head", None) or c.n_heads)
        self.d_model = int(getattr(c, "hidden_size", None) or getattr(c, "n_embd", None) or c.dim)
        self.head_dim = int(getattr(c, "head_dim", None) or self.d_model // self.n_heads)
        self.n_kv_heads = int(getattr(c, "num_key_value_heads", None) or self.n_heads)
        self.d_mlp = int(getattr(c, "intermediate_size", None) or getattr(c, "n_inner", None)
                         or getattr(c, "hidden_dim", None) or 4 * self.d_model)
        self.vocab = int(c.vocab_size)
        self._table = self._build()

    # -- module look-up -------------------------------------------------------------------
    @property
    def layers_path(self) -> str:
        return self.base + self.family.layers

    @property
    def layers(self):
        return self.hf.get_submodule(self.layers_path)

    def module(self, path: str):
        return self.hf if path == "" else self.hf.get_submodule(path)

    @property
    def has_lm_head(self) -> bool:
        return self.hf.get_output_embeddings() is not None

    def _build(self) -> dict:
        ly = self.layers_path + ".{L}"
        t: dict[str, HookPoint | str] = {"resid_pre": HookPoint(ly, "in"), "resid_post": HookPoint(ly, "out")}
        t.update(self.family.sites(Shape(ly, self.base, self.n_heads, self.n_kv_heads, self.head_dim, self.config)))
        t["logits"] = HookPoint("", "out") if self.has_lm_head else (
            f"{type(self.hf).__name__} has no language-model head; load the model with its LM head "
            "(e.g. *ForMaskedLM / *ForCausalLM) to get logits")
        return t

    # -- public ---------------------------------------------------------------------------
    def available(self) -> list[str]:
        return [s for s in SITES if isinstance(self._table.get(s), HookPoint)]

    def hook_point(self, site: str, layer: int | None = None) -> HookPoint:
        """The resolved hook point of ``site`` at ``layer`` (``None`` for embed/final_norm/logits)."""
        if site not in SITES:
            raise UnsupportedSiteError(f"unknown site {site!r}; sites are {list(SITES)}")
        entry = self._table.get(site)
        if not isinstance(entry, HookPoint):
            why = entry or "it has no counterpart in this architecture's modules"
            raise UnsupportedSiteError(f"site {site!r} is not available for architecture {self.arch!r}: {why}")
        if site in MODEL_SITES:
            if layer is not None:
                raise UnsupportedSiteError(f"site {site!r} has no layers; ask for it with layer=None")
            return entry
        layer = self.check_layer(layer)
        return HookPoint(entry.module.format(L=layer), entry.how, entry.view, entry.seq_dim)

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Residual stream -> logits through the model's own final norm and head (logit lens)."""
        if not self.has_lm_head:
            raise UnsupportedSiteError(f"{type(self.hf).__name__} ({self.arch}) has no language-model head, "
                                       "so there are no logits to read the residual stream through")
        norm = self._table.get("final_norm")
        return self.family.unembed(self.hf, hidden, self.module(norm.module) if isinstance(norm, HookPoint) else None)


def adapter(model) -> Adapter:
    """The :class:`Adapter` of a :class:`~workbench.Model` (or a bare HF model), cached on it.
    Inspection needs the in-process modules: a model on another backend is refused here."""
    require(model, "hooks")
    hf = getattr(model, "hf", model)
    cached = getattr(hf, "_workbench_adapter", None)
    if cached is None:
        cached = Adapter(hf)
        object.__setattr__(hf, "_workbench_adapter", cached)
    return cached


class GraphAdapter(_Layers):
    """Site names -> nodes of the compute graph for one model on a backend with the ``capture``
    capability (llama.cpp): the counterpart of :class:`Adapter` for a model with no in-process
    modules, from the family's :class:`~workbench.families.GraphSites` (the graph's
    architecture, :meth:`~workbench.backends.base.Backend.graph_shape`, picks the entry)."""

    def __init__(self, model):
        self.backend = backend = model.backend
        cfg = model.config
        self.config = getattr(cfg, "text_config", None) or cfg
        self.arch = cfg.model_type
        self.family = family_for(self.arch)  # UnsupportedSiteError naming the supported ones
        shape = backend.graph_shape()
        self.graph_arch = shape.arch
        graph = self.family.graph_sites(self.graph_arch)
        if graph is None:
            known = sorted(g.arch for g in self.family.llamacpp)
            raise UnsupportedSiteError(
                f"no site mapping for llama.cpp's {self.graph_arch!r} graph (family {self.family.name!r} maps "
                f"{known or 'no llama.cpp graph'}), so activations of this GGUF cannot be captured on the 'llama.cpp' "
                "backend; load it with backend='hf', or add a GraphSites entry to the family (workbench.families)")
        self.graph = graph
        self.n_layers, self.n_heads, self.n_kv_heads = shape.n_layers, shape.n_heads, shape.n_kv_heads
        self.d_model = shape.d_model
        c = self.config
        self.head_dim = int(getattr(c, "head_dim", None) or self.d_model // self.n_heads)
        self.d_mlp = int(getattr(c, "intermediate_size", None) or 4 * self.d_model)
        self.vocab = shape.vocab

    def _entry(self, site: str):
        if site == "resid_pre":  # embed at layer 0, resid_post of the layer before elsewhere
            ok = isinstance(self.graph.tensors.get("embed"), GraphTensor) and \
                isinstance(self.graph.tensors.get("resid_post"), GraphTensor)
            return GraphTensor("resid_pre") if ok else "it needs both embed and resid_post in the graph"
        return self.graph.tensors.get(site)

    def available(self) -> list[str]:
        return [s for s in SITES if isinstance(self._entry(s), GraphTensor)]

    def hook_point(self, site: str, layer: int | None = None) -> GraphTensor:
        """The graph node of ``site`` at ``layer`` (its name with the layer filled in)."""
        if site not in SITES:
            raise UnsupportedSiteError(f"unknown site {site!r}; sites are {list(SITES)}")
        entry = self._entry(site)
        if not isinstance(entry, GraphTensor):
            why = entry or "llama.cpp's graph has no node for it"
            raise UnsupportedSiteError(f"site {site!r} is not available on the 'llama.cpp' backend for "
                                       f"{self.graph_arch!r} graphs: {why}. Available: {self.available()}; "
                                       "every site is available with backend='hf'")
        if site in MODEL_SITES:
            if layer is not None:
                raise UnsupportedSiteError(f"site {site!r} has no layers; ask for it with layer=None")
            return entry
        layer = self.check_layer(layer)
        if site == "resid_pre":
            return self.hook_point("embed") if layer == 0 else self.hook_point("resid_post", layer - 1)
        return replace(entry, name=entry.name.format(L=layer))

    def heads_of(self, site: str) -> int:
        return self.n_kv_heads if site in ("k", "v") else self.n_heads

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Residual stream -> logits through the model's final RMSNorm and output matrix as the
        backend reads them from its file (float32, soft-capped where the config says, as
        llama.cpp's graph does)."""
        w = self.backend.unembedding()
        h = hidden.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + w["eps"]) * w["norm"]
        return softcapped(self.config, h @ w["output"].T)


def graph_adapter(model) -> GraphAdapter:
    """The :class:`GraphAdapter` of a model on a graph backend, made once and kept on its backend."""
    backend = model.backend
    cached = getattr(backend, "_graph_adapter", None)
    if cached is None:
        cached = backend._graph_adapter = GraphAdapter(model)
    return cached


def check_head(model, layer, head) -> tuple[int, int]:
    """A (layer, head) pair within the model's layers and attention heads; the layer normalised."""
    ad = adapter(model)
    layer = ad.check_layer(check_int("layer", layer))
    head = check_int("head", head)
    if not 0 <= head < ad.n_heads:
        raise InvalidInputError(f"head {head} out of range: {model.name} has {ad.n_heads} heads per layer "
                                f"(0..{ad.n_heads - 1})")
    return layer, head


def site_adapter(model):
    """The site map inspection reads for ``model``: its :class:`Adapter` (the Hugging Face
    modules), or for a backend that captures without in-process hooks (llama.cpp) the
    :class:`GraphAdapter` of its compute graph (same names, layers, widths and ``unembed``). A backend that can do
    neither (a server) is refused with a :class:`~workbench.errors.BackendCapabilityError` naming
    the backends that can."""
    backend = getattr(model, "backend", None)
    if backend is not None and not backend.supports("hooks"):
        require(model, "capture")
        return graph_adapter(model)
    return adapter(model)


def on_graph_backend(model) -> bool:
    """True for a model whose backend has no in-process modules to hook (llama.cpp, a server):
    inspection then goes through :func:`site_adapter` and the backend's own capture."""
    backend = getattr(model, "backend", None)
    return backend is not None and not backend.supports("hooks")

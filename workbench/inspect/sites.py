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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from workbench.errors import UnsupportedSiteError

LAYER_SITES = ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post", "attn_pattern",
               "q", "k", "v", "z", "mlp_hidden")
MODEL_SITES = ("embed", "final_norm", "logits")
SITES = ("embed",) + LAYER_SITES + ("final_norm", "logits")
# sites whose value can be replaced by a hook (ablation, patching, steering)
EDITABLE = ("embed", "resid_pre", "attn_out", "mlp_out", "resid_post", "z", "mlp_hidden")

FAMILIES = {
    "llama": "llama", "mistral": "llama", "qwen2": "llama", "gemma": "llama",
    "gemma3_text": "gemma3", "gpt2": "gpt2", "gpt_neox": "gpt_neox",
    "phi": "phi", "bert": "bert", "roberta": "bert", "distilbert": "distilbert",
}


@dataclass(frozen=True)
class HookPoint:
    """Where a site lives: ``module`` path; ``how`` is "out" (module output, first element of
    a tuple), "in" (first input) or "weights" (second element of the output tuple);
    ``view`` reshapes/slices the raw tensor into the site's documented shape."""

    module: str
    how: str
    view: Callable[[torch.Tensor], torch.Tensor] | None = None
    seq_dim: int = 1


def _heads(n_heads: int, head_dim: int, part: int | None = None, parts: int = 3, fused: str = "concat"):
    """A view from [b, s, n_heads*head_dim] (or a fused qkv tensor) to [b, s, n_heads, head_dim]."""
    def view(t):
        if part is None:
            return t.unflatten(-1, (n_heads, head_dim))
        if fused == "concat":           # GPT-2: [q | k | v] each n_heads*head_dim wide
            return t.chunk(parts, dim=-1)[part].unflatten(-1, (n_heads, head_dim))
        # GPT-NeoX: per head [q_h | k_h | v_h]
        return t.unflatten(-1, (n_heads, parts * head_dim)).chunk(parts, dim=-1)[part]
    return view


class Adapter:
    """Maps site names to hook points for one loaded model (see the module docstring)."""

    def __init__(self, hf):
        self.hf = hf
        cfg = hf.config
        self.config = getattr(cfg, "text_config", None) or cfg
        self.arch = cfg.model_type
        if self.arch not in FAMILIES:
            raise UnsupportedSiteError(
                f"architecture {self.arch!r} has no activation-site adapter; supported: "
                f"{sorted(FAMILIES)}. Use output_hidden_states or hooks on model.hf directly.")
        self.family = FAMILIES[self.arch]
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
        return self.base + {"llama": "layers", "gemma3": "layers", "phi": "layers", "gpt_neox": "layers",
                            "gpt2": "h", "bert": "encoder.layer", "distilbert": "transformer.layer"}[self.family]

    @property
    def layers(self):
        return self.hf.get_submodule(self.layers_path)

    def module(self, path: str):
        return self.hf if path == "" else self.hf.get_submodule(path)

    @property
    def has_lm_head(self) -> bool:
        return self.hf.get_output_embeddings() is not None

    def _build(self) -> dict:
        f, b, H, Hkv, dh = self.family, self.base, self.n_heads, self.n_kv_heads, self.head_dim
        ly = self.layers_path + ".{L}"
        t: dict[str, HookPoint | str] = {"resid_pre": HookPoint(ly, "in"), "resid_post": HookPoint(ly, "out")}
        if f in ("llama", "gemma3", "phi"):
            at = ly + ".self_attn"
            t.update(embed=HookPoint(b + "embed_tokens", "out"),
                     q=HookPoint(at + ".q_proj", "out", _heads(H, dh)), k=HookPoint(at + ".k_proj", "out", _heads(Hkv, dh)),
                     v=HookPoint(at + ".v_proj", "out", _heads(Hkv, dh)), attn_pattern=HookPoint(at, "weights", seq_dim=2),
                     attn_out=HookPoint(at, "out"), mlp_out=HookPoint(ly + ".mlp", "out"))
            if f == "phi":
                t.update(z=HookPoint(at + ".dense", "in", _heads(H, dh)), mlp_hidden=HookPoint(ly + ".mlp.fc2", "in"),
                         final_norm=HookPoint(b + "final_layernorm", "out"),
                         resid_mid="Phi computes attention and MLP in parallel from the same input, so "
                                   "there is no residual stream between them; use resid_pre/attn_out/mlp_out")
            else:
                t.update(z=HookPoint(at + ".o_proj", "in", _heads(H, dh)), mlp_hidden=HookPoint(ly + ".mlp.down_proj", "in"),
                         final_norm=HookPoint(b + "norm", "out"),
                         resid_mid=HookPoint(ly + (".pre_feedforward_layernorm" if f == "gemma3" else ".post_attention_layernorm"), "in"))
            if f == "gemma3":  # Gemma 3 normalises each block's output before adding it
                t.update(attn_out=HookPoint(ly + ".post_attention_layernorm", "out"),
                         mlp_out=HookPoint(ly + ".post_feedforward_layernorm", "out"))
        elif f == "gpt2":
            at = ly + ".attn"
            t.update(embed=HookPoint(b + "wte", "out"), attn_out=HookPoint(at, "out"),
                     attn_pattern=HookPoint(at, "weights", seq_dim=2),
                     q=HookPoint(at + ".c_attn", "out", _heads(H, dh, 0)), k=HookPoint(at + ".c_attn", "out", _heads(H, dh, 1)),
                     v=HookPoint(at + ".c_attn", "out", _heads(H, dh, 2)), z=HookPoint(at + ".c_proj", "in", _heads(H, dh)),
                     resid_mid=HookPoint(ly + ".ln_2", "in"), mlp_out=HookPoint(ly + ".mlp", "out"),
                     mlp_hidden=HookPoint(ly + ".mlp.c_proj", "in"), final_norm=HookPoint(b + "ln_f", "out"))
        elif f == "gpt_neox":
            at = ly + ".attention"
            t.update(embed=HookPoint(b + "embed_in", "out"), attn_out=HookPoint(at, "out"),
                     attn_pattern=HookPoint(at, "weights", seq_dim=2),
                     **{n: HookPoint(at + ".query_key_value", "out", _heads(H, dh, i, fused="per_head"))
                        for i, n in enumerate("qkv")},
                     z=HookPoint(at + ".dense", "in", _heads(H, dh)), mlp_out=HookPoint(ly + ".mlp", "out"),
                     mlp_hidden=HookPoint(ly + ".mlp.dense_4h_to_h", "in"), final_norm=HookPoint(b + "final_layer_norm", "out"))
            if getattr(self.config, "use_parallel_residual", True):
                t["resid_mid"] = ("this GPT-NeoX model (use_parallel_residual=True, as Pythia) computes attention "
                                  "and MLP in parallel, so there is no residual stream between them; use "
                                  "resid_pre/attn_out/mlp_out")
            else:
                t["resid_mid"] = HookPoint(ly + ".post_attention_layernorm", "in")
        elif f == "bert":
            at = ly + ".attention"
            t.update(embed=HookPoint(b + "embeddings.word_embeddings", "out"),
                     attn_out=HookPoint(at + ".output.dense", "out"), resid_mid=HookPoint(at, "out"),
                     attn_pattern=HookPoint(at + ".self", "weights", seq_dim=2),
                     q=HookPoint(at + ".self.query", "out", _heads(H, dh)), k=HookPoint(at + ".self.key", "out", _heads(H, dh)),
                     v=HookPoint(at + ".self.value", "out", _heads(H, dh)), z=HookPoint(at + ".output.dense", "in", _heads(H, dh)),
                     mlp_out=HookPoint(ly + ".output.dense", "out"), mlp_hidden=HookPoint(ly + ".output.dense", "in"))
        elif f == "distilbert":
            at = ly + ".attention"
            t.update(embed=HookPoint(b + "embeddings.word_embeddings", "out"), attn_out=HookPoint(at, "out"),
                     resid_mid=HookPoint(ly + ".sa_layer_norm", "out"), attn_pattern=HookPoint(at, "weights", seq_dim=2),
                     q=HookPoint(at + ".q_lin", "out", _heads(H, dh)), k=HookPoint(at + ".k_lin", "out", _heads(H, dh)),
                     v=HookPoint(at + ".v_lin", "out", _heads(H, dh)), z=HookPoint(at + ".out_lin", "in", _heads(H, dh)),
                     mlp_out=HookPoint(ly + ".ffn", "out"), mlp_hidden=HookPoint(ly + ".ffn.lin2", "in"))
        if f in ("bert", "distilbert"):
            t["final_norm"] = ("post-norm encoders end every layer with a LayerNorm and have no final norm; "
                               "use resid_post of the last layer")
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

    def unembed(self, hidden: torch.Tensor) -> torch.Tensor:
        """Residual stream -> logits through the model's own final norm and head (logit lens)."""
        if not self.has_lm_head:
            raise UnsupportedSiteError(f"{type(self.hf).__name__} ({self.arch}) has no language-model head, "
                                       "so there are no logits to read the residual stream through")
        f, hf = self.family, self.hf
        if f == "bert":
            head = hf.cls if hasattr(hf, "cls") else hf.lm_head
            return head(hidden)
        if f == "distilbert":
            x = hf.vocab_layer_norm(hf.activation(hf.vocab_transform(hidden)))
            return hf.vocab_projector(x)
        logits = hf.get_output_embeddings()(self.module(self._table["final_norm"].module)(hidden))
        cap = getattr(self.config, "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits


def adapter(model) -> Adapter:
    """The :class:`Adapter` of a :class:`~workbench.Model` (or a bare HF model), cached on it."""
    hf = getattr(model, "hf", model)
    cached = getattr(hf, "_workbench_adapter", None)
    if cached is None:
        cached = Adapter(hf)
        object.__setattr__(hf, "_workbench_adapter", cached)
    return cached

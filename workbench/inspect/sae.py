"""Sparse autoencoders (SAEs): load them (SAELens and Gemma Scope formats), encode activations
captured at the package's sites into features, decode, save.

Formats read by :func:`load_sae` (a local folder, or a hub id ``owner/repo[/sub/folder]``):

* **SAELens**: ``cfg.json`` + ``sae_weights.safetensors`` holding ``W_enc`` [d_in, d_sae],
  ``b_enc`` [d_sae], ``W_dec`` [d_sae, d_in], ``b_dec`` [d_in] and, for JumpReLU, ``threshold``
  [d_sae] (or ``log_threshold``). cfg fields used: ``d_in``, ``d_sae``, ``hook_name`` (before
  SAELens 6: also ``hook_point``; from 6 on it may sit under ``metadata``), ``hook_layer``,
  ``architecture`` ("standard", "jumprelu", "topk") or, in older files, ``activation_fn_str``
  ("relu", "topk" with ``activation_fn_kwargs={"k": ...}``), ``k`` (TopK),
  ``apply_b_dec_to_input`` (default true: ``b_dec`` is subtracted from the input before
  encoding), ``normalize_activations`` ("none", "constant_norm_rescale": each input scaled to
  norm sqrt(d_in) and the output scaled back, "layer_norm"; "expected_average_only_in" needs the
  release's scaling factor, which the folder does not hold: give ``norm_scaling_factor=``).
* **Gemma Scope**: ``params.npz`` with ``W_enc``, ``W_dec``, ``b_enc``, ``b_dec``, ``threshold``
  (JumpReLU, ``b_dec`` *not* subtracted from the input). No config: the site and layer are read
  from the path (``...-res/layer_12/...`` -> resid_post 12; ``-mlp`` -> mlp_out; ``-att`` -> z)
  or given with ``site=``/``layer=``.

Encoding (all architectures): ``pre = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc``;
standard: ``relu(pre)``; jumprelu: ``pre * (pre > threshold)`` (with ``pre > 0``); topk: the k
largest of ``relu(pre)``, the rest 0. Decoding: ``f @ W_dec + b_dec``. Computed in float32.

Hook names (TransformerLens, as SAELens writes them) map to sites: ``blocks.L.hook_resid_pre``
-> ("resid_pre", L), ``hook_resid_mid``, ``hook_resid_post``, ``hook_attn_out``,
``hook_mlp_out`` likewise, ``blocks.L.attn.hook_z`` -> ("z", L) (heads flattened to
n_heads*d_head), ``blocks.L.mlp.hook_post`` -> ("mlp_hidden", L), ``hook_embed`` -> ("embed",
None). Caveat: TransformerLens by default centres the residual stream of LayerNorm models
(GPT-2, Pythia) and folds the norms' weights; an SAE trained on that processed model sees
activations shifted from those of the unmodified model the workbench reads (RMSNorm models such
as Gemma and Llama are not centred, and Gemma Scope used unprocessed weights).

>>> import torch
>>> from workbench.inspect.sae import SAE, site_from_hook_name
>>> site_from_hook_name("blocks.12.hook_resid_post")
('resid_post', 12)
>>> eye = torch.eye(4)
>>> sae = SAE(W_enc=torch.cat([eye, -eye], 1), b_enc=torch.zeros(8), W_dec=torch.cat([eye, -eye], 0),
...           b_dec=torch.zeros(4), site="resid_post", layer=0)
>>> x = torch.randn(2, 3, 4)
>>> torch.allclose(sae(x), x)        # relu(x) - relu(-x) = x: a perfect reconstruction
True
>>> sae.encode(x).shape
torch.Size([2, 3, 8])
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from workbench.errors import CorruptModelError, InvalidInputError, UnsupportedSiteError
from workbench.inspect.sites import SITES, adapter, site_adapter

ARCHITECTURES = ("standard", "jumprelu", "topk")
NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm", "expected_average_only_in")

# TransformerLens hook names -> workbench sites (layer in the ``blocks.L`` prefix)
_HOOKS = {"hook_resid_pre": "resid_pre", "hook_resid_mid": "resid_mid", "hook_resid_post": "resid_post",
          "hook_attn_out": "attn_out", "hook_mlp_out": "mlp_out", "attn.hook_z": "z", "attn.hook_q": "q",
          "attn.hook_k": "k", "attn.hook_v": "v", "mlp.hook_post": "mlp_hidden", "attn.hook_pattern": "attn_pattern"}
_MODEL_HOOKS = {"hook_embed": "embed", "ln_final.hook_normalized": "final_norm"}


def site_from_hook_name(hook_name: str) -> tuple[str, int | None]:
    """TransformerLens hook name -> (workbench site, layer), e.g. ``blocks.12.hook_resid_post`` ->
    ``("resid_post", 12)``. Refuses names with no workbench counterpart."""
    if hook_name in _MODEL_HOOKS:
        return _MODEL_HOOKS[hook_name], None
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", str(hook_name))
    if m and m.group(2) in _HOOKS:
        return _HOOKS[m.group(2)], int(m.group(1))
    raise UnsupportedSiteError(
        f"SAE hook name {hook_name!r} has no workbench site; known: blocks.L.{{{', '.join(_HOOKS)}}}, "
        f"{', '.join(_MODEL_HOOKS)}. Load it with load_sae(path, site=..., layer=...) to say where it reads.")


def hook_name_of(site: str, layer: int | None) -> str:
    """The inverse of :func:`site_from_hook_name` (what :meth:`SAE.save` writes)."""
    for hook, s in _MODEL_HOOKS.items():
        if s == site and layer is None:
            return hook
    for hook, s in _HOOKS.items():
        if s == site and layer is not None:
            return f"blocks.{layer}.{hook}"
    raise UnsupportedSiteError(f"site {site!r} (layer {layer}) has no TransformerLens hook name")


@dataclass(eq=False)
class SAE:
    """A sparse autoencoder reading ``site`` at ``layer`` (see the module docstring for the maths).

    ``encode(acts)`` [..., d_in] -> features [..., d_sae]; ``decode(features)`` -> [..., d_in];
    ``forward(acts)`` / ``sae(acts)`` = decode(encode(acts)) with any input normalisation undone.
    For ``site="z"`` an input [..., n_heads, d_head] is flattened first. ``training`` holds the
    figures of an SAE trained by :func:`workbench.inspect.train_sae`.

    ``skip_first``: the SAE leaves each text's first token alone. That token is an attention sink
    whose activations, in many models, are outliers with a norm hundreds of times the others'
    (SmolLM2: ~4,000 at resid_post of layer 15); SAELens and Gemma Scope trained without BOS for
    the same reason. When true, statistics leave the first token out and splicing, feature
    ablation and steering leave its activations unchanged. ``train_sae`` sets it (by default);
    for a loaded SAE set it by hand if its training left BOS out."""

    W_enc: torch.Tensor
    b_enc: torch.Tensor
    W_dec: torch.Tensor
    b_dec: torch.Tensor
    threshold: torch.Tensor | None = None
    architecture: str = "standard"
    k: int | None = None
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    site: str | None = None
    layer: int | None = None
    hook_name: str | None = None
    source: str = ""
    cfg: dict = field(default_factory=dict)
    training: dict | None = None
    skip_first: bool = False

    def __post_init__(self):
        for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, torch.as_tensor(np.asarray(t) if not torch.is_tensor(t) else t).detach().float())
        d_in, d_sae = self.W_enc.shape if self.W_enc.dim() == 2 else (None, None)
        want = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,),
                "threshold": (d_sae,)}
        for name, shape in want.items():
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != shape:
                raise CorruptModelError(f"SAE weight {name} has shape {tuple(t.shape)}, expected {shape} "
                                        f"(W_enc is {tuple(self.W_enc.shape)}: [d_in, d_sae]){self._from()}")
        if self.architecture not in ARCHITECTURES:
            raise InvalidInputError(f"SAE architecture {self.architecture!r} is not supported{self._from()}; "
                                    f"supported: {', '.join(ARCHITECTURES)} (gated and other variants are not)")
        if self.architecture == "jumprelu" and self.threshold is None:
            raise CorruptModelError(f"a JumpReLU SAE needs a threshold [d_sae]{self._from()}")
        if self.architecture == "topk" and not (isinstance(self.k, int) and 0 < self.k <= d_sae):
            raise CorruptModelError(f"a TopK SAE needs k in 1..{d_sae}, got {self.k!r}{self._from()}")
        if self.normalize_activations not in NORMALIZATIONS[:3]:
            raise InvalidInputError(
                f"normalize_activations={self.normalize_activations!r}{self._from()}: "
                + ("this scales inputs by a factor the release stores outside the SAE folder; pass "
                   "load_sae(..., norm_scaling_factor=<the factor>) to fold it into the weights"
                   if self.normalize_activations == "expected_average_only_in"
                   else f"supported values are {', '.join(NORMALIZATIONS)}"))
        if self.site is not None and self.site not in SITES:
            raise UnsupportedSiteError(f"unknown site {self.site!r}; sites are {list(SITES)}")

    def _from(self) -> str:
        return f" (in {self.source})" if self.source else ""

    # -- shape --------------------------------------------------------------------------
    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    def __repr__(self):
        where = f"{self.site!r}, layer {self.layer}" if self.site else "site unknown"
        return (f"SAE({self.architecture}, d_in={self.d_in}, d_sae={self.d_sae}, reads {where}"
                + (f", from {self.source}" if self.source else "") + ")")

    # -- maths --------------------------------------------------------------------------
    def _input(self, acts) -> tuple[torch.Tensor, tuple]:
        """acts -> float32 [..., d_in] (z heads flattened), and the leading shape to restore."""
        x = acts if torch.is_tensor(acts) else torch.as_tensor(np.asarray(acts))
        if not x.is_floating_point():
            raise InvalidInputError(f"SAE input must be floating point activations, got {x.dtype}")
        if x.dim() >= 2 and x.shape[-1] != self.d_in and x.shape[-2] * x.shape[-1] == self.d_in:
            x = x.flatten(-2)            # z: [..., n_heads, d_head] -> [..., n_heads*d_head]
        if x.dim() == 0 or x.shape[-1] != self.d_in:
            raise InvalidInputError(
                f"activations have shape {tuple(x.shape)} but this SAE expects a last dimension of d_in="
                f"{self.d_in} (it reads {self.site or 'an unknown site'}"
                + (f" at layer {self.layer}" if self.layer is not None else "") + "); capture that site "
                "of the model the SAE was trained on, e.g. cache[sae.site, sae.layer]")
        return x.float(), x.shape[:-1]

    def _normalise(self, x: torch.Tensor):
        """x -> (normalised x, function that maps a reconstruction back to the input's scale)."""
        if self.normalize_activations == "constant_norm_rescale":
            c = self.d_in ** 0.5 / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return x * c, lambda y: y / c
        if self.normalize_activations == "layer_norm":
            mu = x.mean(-1, keepdim=True)
            std = (x - mu).std(-1, keepdim=True)
            return (x - mu) / (std + 1e-5), lambda y: y * std + mu
        return x, lambda y: y

    def _pre(self, x: torch.Tensor) -> torch.Tensor:
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.architecture == "jumprelu":
            return pre * ((pre > self.threshold) & (pre > 0))
        acts = torch.relu(pre)
        if self.architecture == "topk":
            vals, idx = acts.topk(self.k, dim=-1)
            acts = torch.zeros_like(acts).scatter_(-1, idx, vals)
        return acts

    def encode(self, acts) -> torch.Tensor:
        """Feature activations [..., d_sae] (float32) of activations [..., d_in]."""
        x, _ = self._input(acts)
        x, _ = self._normalise(x)
        return self._activate(self._pre(x))

    def decode(self, features) -> torch.Tensor:
        """``features @ W_dec + b_dec`` [..., d_in]. For an SAE that normalises its input this is
        in the normalised scale (``forward`` maps it back)."""
        f = features if torch.is_tensor(features) else torch.as_tensor(np.asarray(features))
        if f.dim() == 0 or f.shape[-1] != self.d_sae:
            raise InvalidInputError(f"features have shape {tuple(f.shape)}, expected [..., d_sae={self.d_sae}]")
        return f.float() @ self.W_dec + self.b_dec

    def run(self, acts, zero_features=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, reconstruction) of ``acts`` [..., d_in], float32, input normalisation undone.
        ``zero_features``: feature indices set to 0 before decoding (how
        :func:`~workbench.inspect.ablate_feature` removes a feature)."""
        x, _ = self._input(acts)
        xn, undo = self._normalise(x)
        f = self._activate(self._pre(xn))
        if zero_features is not None:
            f = f.clone()
            f[..., zero_features] = 0
        return f, undo(self.decode(f))

    def forward(self, acts, zero_features=None) -> torch.Tensor:
        """Reconstruction of ``acts`` [..., d_in] (float32); see :meth:`run`."""
        return self.run(acts, zero_features)[1]

    __call__ = forward

    def to(self, device) -> "SAE":
        """A copy with its tensors on ``device`` (hooks run it where the model runs)."""
        import dataclasses
        return dataclasses.replace(self, **{n: getattr(self, n).to(device) for n in
                                            ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")
                                            if getattr(self, n) is not None})

    # -- models -------------------------------------------------------------------------
    def where(self, model) -> tuple[str, int | None]:
        """(site, layer) this SAE reads on ``model``, checked: the site exists there and its width
        equals d_in."""
        if self.site is None:
            raise UnsupportedSiteError(f"{self!r} does not say which site it reads; load it with "
                                       "load_sae(path, site='resid_post', layer=...)")
        ad = site_adapter(model)  # llama.cpp: the sites of its compute graph
        ad.hook_point(self.site, self.layer)          # refuses a site/layer the model lacks
        width = ad.site_width(self.site)
        if width != self.d_in:
            raise InvalidInputError(
                f"{self!r} has d_in={self.d_in} but {self.site} of {getattr(model, 'name', 'this model')} is "
                f"{width} wide: this SAE was trained on another model (hook {self.hook_name or self.site}); "
                "use an SAE trained on this model, or train one with wb.inspect.train_sae")
        return self.site, (None if self.layer is None else ad.check_layer(self.layer))

    # -- files --------------------------------------------------------------------------
    def save(self, folder) -> Path:
        """Write the SAELens format: ``cfg.json`` + ``sae_weights.safetensors`` (pre-6.0 field names,
        which SAELens reads too; workbench extras under ``"workbench"``). Returns the folder."""
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"W_enc": self.W_enc, "b_enc": self.b_enc, "W_dec": self.W_dec, "b_dec": self.b_dec}
        if self.threshold is not None:
            tensors["threshold"] = self.threshold
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae_weights.safetensors"))
        hook = self.hook_name or (hook_name_of(self.site, self.layer) if self.site else None)
        model_name = self.cfg.get("model_name") or (self.cfg.get("metadata") or {}).get("model_name")
        cfg = {"model_name": model_name, "d_in": self.d_in, "d_sae": self.d_sae, "architecture": self.architecture,
               "activation_fn_str": "topk" if self.architecture == "topk" else "relu",
               "apply_b_dec_to_input": self.apply_b_dec_to_input,
               "normalize_activations": self.normalize_activations, "dtype": "float32", "device": "cpu",
               "hook_name": hook, "hook_layer": self.layer,
               "workbench": {"site": self.site, "layer": self.layer, "training": self.training,
                             "skip_first": self.skip_first}}
        if self.k is not None:
            cfg["k"] = self.k
            cfg["activation_fn_kwargs"] = {"k": self.k}
        (folder / "cfg.json").write_text(json.dumps(cfg, indent=2, default=float))
        return folder

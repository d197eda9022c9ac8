"""``load_sae``: an SAE from a local folder or the Hugging Face Hub (formats: see
:mod:`workbench.inspect.sae`).

>>> import tempfile, torch
>>> import workbench as wb
>>> from workbench.inspect.sae import SAE
>>> folder = SAE(W_enc=torch.randn(4, 8), b_enc=torch.zeros(8), W_dec=torch.randn(8, 4), b_dec=torch.zeros(4),
...              site="resid_post", layer=1).save(tempfile.mkdtemp())
>>> sae = wb.inspect.load_sae(folder)
>>> sae.site, sae.layer, sae.hook_name, sae.d_sae
('resid_post', 1, 'blocks.1.hook_resid_post', 8)
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from workbench.errors import CorruptModelError, InvalidInputError, ModelNotFoundError
from workbench.inspect.sae import SAE, site_from_hook_name
from workbench.models.hub import download
from workbench.validate import Int, Optional, Real, checked

_SAELENS_FILES = ("cfg.json", "sae_weights.safetensors")
_GEMMA_SCOPE_FILE = "params.npz"


def _architecture(cfg: dict) -> tuple[str, int | None]:
    """(architecture, k) from a SAELens cfg of any version."""
    act = cfg.get("activation_fn_str") or cfg.get("activation_fn") or "relu"
    arch = cfg.get("architecture") or ("topk" if act == "topk" else "standard")
    if arch == "standard" and act not in ("relu", "topk"):
        raise InvalidInputError(f"SAE activation function {act!r} is not supported; supported: relu, topk, and "
                                "the jumprelu architecture")
    if arch == "standard" and act == "topk":
        arch = "topk"
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    return arch, (int(k) if k is not None else None)


def _hook(cfg: dict) -> tuple[str | None, int | None]:
    meta = cfg.get("metadata") or cfg.get("meta") or {}
    hook = cfg.get("hook_name") or cfg.get("hook_point") or meta.get("hook_name")
    layer = cfg.get("hook_layer", meta.get("hook_layer"))
    return hook, layer


def _load_saelens(folder: Path, site, layer, norm_scaling_factor) -> SAE:
    from safetensors.torch import load_file
    try:
        cfg = json.loads((folder / "cfg.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptModelError(f"{folder / 'cfg.json'} is not valid JSON ({e}); re-download the SAE") from None
    try:
        w = load_file(str(folder / "sae_weights.safetensors"))
    except Exception as e:  # safetensors raises its own SafetensorError on a damaged file
        raise CorruptModelError(f"{folder / 'sae_weights.safetensors'} cannot be read ({type(e).__name__}: {e}); "
                                "re-download the SAE") from None
    missing = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if n not in w]
    if missing:
        raise CorruptModelError(f"{folder / 'sae_weights.safetensors'} lacks {missing} (it has {sorted(w)}); a "
                                "SAELens SAE holds W_enc, b_enc, W_dec, b_dec (and threshold for JumpReLU)")
    arch, k = _architecture(cfg)
    threshold = w.get("threshold")
    if threshold is None and "log_threshold" in w:   # SAELens' training form of JumpReLU
        threshold = w["log_threshold"].exp()
    norm = cfg.get("normalize_activations", "none")
    if isinstance(norm, bool) or norm is None:  # before SAELens 6: a bool meant the expected-average scaling
        norm = "expected_average_only_in" if norm else "none"
    if norm_scaling_factor is not None and norm != "expected_average_only_in":
        raise InvalidInputError(f"norm_scaling_factor is for SAEs with normalize_activations="
                                f"'expected_average_only_in'; {folder} has {norm!r}: leave it out")
    W_enc, W_dec, b_dec = w["W_enc"], w["W_dec"], w["b_dec"]
    if norm == "expected_average_only_in" and norm_scaling_factor is not None:
        # SAELens' fold_activation_norm_scaling_factor: x*s in, /s out, folded into the weights
        s = float(norm_scaling_factor)
        W_enc, W_dec, b_dec, norm = W_enc * s, W_dec / s, b_dec / s, "none"
    hook, hook_layer = _hook(cfg)
    site, layer = _where(hook, hook_layer, site, layer, folder)
    for name, have in (("d_in", W_enc.shape[0]), ("d_sae", W_enc.shape[1])):
        if cfg.get(name) is not None and int(cfg[name]) != int(have):
            raise CorruptModelError(f"{folder / 'cfg.json'} says {name}={cfg[name]} but W_enc is "
                                    f"{tuple(W_enc.shape)} ([d_in, d_sae]); the folder mixes two SAEs")
    extra = cfg.get("workbench") or {}
    return SAE(W_enc=W_enc, b_enc=w["b_enc"], W_dec=W_dec, b_dec=b_dec, threshold=threshold, architecture=arch, k=k,
               apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)), normalize_activations=norm,
               site=site, layer=layer, hook_name=hook, source=str(folder), cfg=cfg, training=extra.get("training"),
               skip_first=bool(extra.get("skip_first", False)))


def _load_gemma_scope(folder: Path, site, layer) -> SAE:
    try:
        p = np.load(folder / _GEMMA_SCOPE_FILE, allow_pickle=False)   # never unpickle downloaded files
        params = {k: p[k] for k in p.files}
    except Exception as e:
        raise CorruptModelError(f"{folder / _GEMMA_SCOPE_FILE} cannot be read as a numpy .npz without pickle "
                                f"({type(e).__name__}: {e}); re-download the SAE") from None
    missing = [n for n in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold") if n not in params]
    if missing:
        raise CorruptModelError(f"{folder / _GEMMA_SCOPE_FILE} lacks {missing} (it has {sorted(params)}); a "
                                "Gemma Scope SAE holds W_enc, W_dec, b_enc, b_dec, threshold")
    hook = None
    if site is None or layer is None:
        # Gemma Scope releases: google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82
        text = folder.as_posix()
        m = re.search(r"layer_(\d+)", text)
        kind = re.search(r"-(res|mlp|att)(?:[-_/]|$)", text)
        if m and kind:
            hook = f"blocks.{m.group(1)}." + {"res": "hook_resid_post", "mlp": "hook_mlp_out",
                                             "att": "attn.hook_z"}[kind.group(1)]
    site, layer = _where(hook, None, site, layer, folder)
    return SAE(W_enc=params["W_enc"], b_enc=params["b_enc"], W_dec=params["W_dec"], b_dec=params["b_dec"],
               threshold=params["threshold"], architecture="jumprelu", apply_b_dec_to_input=False,
               site=site, layer=layer, hook_name=hook, source=str(folder), cfg={"format": "gemma_scope"})


def _where(hook, hook_layer, site, layer, folder):
    """The SAE's (site, layer): given ones win over what the files say."""
    if site is not None:
        return site, layer
    if hook is None:
        return None, layer  # unknown: SAE.where() asks for site= when it is used on a model
    s, lay = site_from_hook_name(hook)
    if hook_layer is not None and lay is not None and int(hook_layer) != lay:
        raise CorruptModelError(f"{folder}: hook_name {hook!r} and hook_layer={hook_layer} disagree")
    return s, (lay if layer is None else layer)


def _hub_folder(ref: str, revision) -> Path:
    """``owner/repo[/sub/folder]`` -> the local snapshot of that folder (downloaded if online)."""
    parts = ref.strip("/").split("/")
    repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
    patterns = [f"{sub}/*"] if sub else ["*.json", "*.safetensors", "*.npz"]
    root = download(repo, revision, patterns, download_hint=f" --include {sub + '/*'!r}" if sub else "")
    folder = Path(root) / sub
    if not folder.is_dir():
        raise ModelNotFoundError(f"{repo!r} has no folder {sub!r}; give owner/repo/<folder holding cfg.json or "
                                 "params.npz>")
    return folder


@checked(norm_scaling_factor=Optional(Real(gt=0)), layer=Optional(Int(min=0)))
def load_sae(path, site: str | None = None, layer: int | None = None, norm_scaling_factor: float | None = None,
             revision: str | None = None) -> SAE:
    """Load an SAE (SAELens or Gemma Scope format) from a local folder or a hub id
    ``owner/repo[/sub/folder]`` (e.g. ``google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82``;
    offline, only what is in the Hugging Face cache).

    The site and layer come from the SAE's ``hook_name`` (``blocks.12.hook_resid_post`` ->
    ``("resid_post", 12)``, see :func:`~workbench.inspect.sae.site_from_hook_name`) or a Gemma Scope
    path; ``site=``/``layer=`` override them. ``norm_scaling_factor``: for SAELens SAEs with
    ``normalize_activations="expected_average_only_in"``, the release's factor (folded into the
    weights as SAELens does). Use ``sae.encode(cache[sae.site, sae.layer])``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"path must be a folder or a hub id (a string), got {type(path).__name__}")
    folder = Path(path).expanduser()
    if not folder.exists():
        ref = str(path)
        looks_hub = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w.=-]+)*", ref) and not ref.startswith((".", "~"))
        if not looks_hub:
            raise ModelNotFoundError(f"no SAE folder at {ref!r}; give a folder holding cfg.json + "
                                     "sae_weights.safetensors (SAELens) or params.npz (Gemma Scope), or a hub id "
                                     "owner/repo[/sub/folder]")
        folder = _hub_folder(ref, revision)
    if not folder.is_dir():
        raise ModelNotFoundError(f"{folder} is a file; give the folder that holds it")
    if all((folder / f).is_file() for f in _SAELENS_FILES):
        return _load_saelens(folder, site, layer, norm_scaling_factor)
    if (folder / _GEMMA_SCOPE_FILE).is_file():
        return _load_gemma_scope(folder, site, layer)
    have = sorted(p.name for p in folder.iterdir())[:10]
    raise ModelNotFoundError(f"{folder} holds no SAE: expected cfg.json + sae_weights.safetensors (SAELens) or "
                             f"params.npz (Gemma Scope); it has {have or 'nothing'}"
                             + (" (the weights file is missing)" if (folder / "cfg.json").is_file() else ""))

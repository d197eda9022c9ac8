"""How much memory a model needs, from its config alone (no weights read or downloaded).

The parameter count is exact: the model is built from the config on the ``meta`` device
(``accelerate.init_empty_weights``), which allocates nothing, so a 70B config is counted in a
second. Weight bytes per dtype follow from it; the KV cache per 1,000 tokens is added for causal
models because long contexts need it on top of the weights.

>>> import workbench as wb
>>> from workbench.testing import tiny_config
>>> frame = wb.estimate_memory(tiny_config("llama", vocab_size=400))
>>> bool(frame.set_index("dtype").loc["float32", "params"] == frame.attrs["params"])
True
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from workbench.errors import InvalidInputError, ModelNotFoundError

# bytes per parameter; int8/int4 count the weights alone (quantisation scales add a few percent)
BYTES_PER_PARAM = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "int8": 1.0, "int4": 0.5}


def estimate_memory(spec, *, revision: str | None = None, kind: str | None = None,
                    trust_remote_code: bool = False, hub_cache_dir=None):
    """Memory the weights of ``spec`` need in float32/float16/bfloat16/int8/int4.

    ``spec``: an embedded alias, a local folder (its ``config.json``), a ``.gguf`` file (its
    header), a hub id (its ``config.json`` only, from the local cache when offline), a
    transformers config object, or a config dict with ``model_type``.

    Returns a DataFrame, one row per dtype: ``dtype, params, bytes_per_param, weights_bytes,
    weights_gib, kv_cache_gib_per_1k_tokens``; ``frame.attrs`` holds ``params``, ``architecture``,
    ``kind``, ``checkpoint_dtype`` and ``source``. Loading needs the weights plus activations
    (small for scoring) plus, when generating, the KV cache; with less memory than that, load with
    ``wb.load_model(spec, device_map="auto", max_memory=..., offload_folder=...)``.

    >>> import workbench as wb
    >>> wb.estimate_memory("smollm2-135m-instruct").attrs["params"]  # doctest: +SKIP
    134515008
    """
    import pandas as pd

    from workbench.models.loading import detect_kind

    config, source = config_of(spec, revision=revision, trust_remote_code=trust_remote_code,
                               hub_cache_dir=hub_cache_dir)
    kind = kind or detect_kind(config)
    params = count_params(config, kind)
    kv_per_token = _kv_values_per_token(config) if kind == "causal" else 0
    rows = [{"dtype": dtype, "params": params, "bytes_per_param": b, "weights_bytes": int(params * b),
             "weights_gib": params * b / 2**30,
             # the cache holds activations in the compute dtype: float16 when the weights are int
             "kv_cache_gib_per_1k_tokens": kv_per_token * 1000 * max(b, 2.0) / 2**30}
            for dtype, b in BYTES_PER_PARAM.items()]
    frame = pd.DataFrame(rows)
    checkpoint_dtype = getattr(config, "dtype", None)
    frame.attrs.update(params=params, architecture=config.model_type, kind=kind, source=source,
                       checkpoint_dtype=str(checkpoint_dtype).replace("torch.", "") if checkpoint_dtype else None)
    return frame


def count_params(config, kind: str) -> int:
    """Exact parameter count of the model ``config`` describes, built on the meta device."""
    import transformers as T
    from accelerate import init_empty_weights

    auto = {"causal": T.AutoModelForCausalLM, "masked": T.AutoModelForMaskedLM, "encoder": T.AutoModel}[kind]
    with init_empty_weights():
        model = auto.from_config(config)
    # init_empty_weights re-wraps every parameter it registers, which undoes weight tying: tie
    # again outside it, so tied embeddings are one tensor (counted once) as in a loaded model
    model.tie_weights()
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors counted once


def _kv_values_per_token(config) -> int:
    """Keys and values cached per token across all layers (full attention; sliding-window
    layers cap theirs, so this is an upper bound for such models)."""
    cfg = getattr(config, "text_config", config)
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", None)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", None)
    if not (layers and heads and hidden):
        return 0
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or hidden // heads
    return 2 * layers * kv_heads * head_dim


def config_of(spec, revision=None, trust_remote_code=False, hub_cache_dir=None):
    """(config, source description) for any spec ``estimate_memory`` takes, reading no weights."""
    import transformers as T

    if isinstance(spec, T.PretrainedConfig):
        return spec, "config object"
    if isinstance(spec, dict):
        if "model_type" not in spec:
            raise InvalidInputError("a config dict needs a 'model_type' key (e.g. 'llama'), as in config.json")
        d = dict(spec)
        return T.AutoConfig.for_model(d.pop("model_type"), **d), "config dict"
    if hasattr(spec, "hf") and hasattr(spec, "fingerprint"):  # a loaded Model
        return spec.config, f"loaded model {spec.name}"
    if not isinstance(spec, (str, os.PathLike)):
        raise InvalidInputError(f"spec must be an alias, path, hub id, config or dict, got {type(spec).__name__}")
    text = os.fspath(spec)
    from workbench.models.registry import EMBEDDED
    if text in EMBEDDED:
        return _alias_config(EMBEDDED[text]), f"embedded:{text}"
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return T.AutoConfig.from_pretrained(path.parent, gguf_file=path.name), f"gguf header:{path}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} has no config.json to estimate from")
        return T.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code), f"folder:{path}"
    from workbench.models.loading import _HUB_ID, _looks_like_path
    if _looks_like_path(text) or not _HUB_ID.match(text):
        from workbench.models.registry import get_entry
        if not _looks_like_path(text):
            get_entry(text)  # unknown alias: lists the known ones
        raise ModelNotFoundError(f"no such file or folder: {path}")
    return _hub_config(text, revision, trust_remote_code, hub_cache_dir), f"hub:{text}"


def _hub_config(repo_id, revision, trust_remote_code, hub_cache_dir):
    import transformers as T

    from workbench.errors import OfflineError
    from workbench.models.hub import _offline_message
    try:
        return T.AutoConfig.from_pretrained(repo_id, revision=revision, trust_remote_code=trust_remote_code,
                                            cache_dir=hub_cache_dir)
    except OSError as e:  # transformers wraps "not cached while offline" and connection errors
        raise OfflineError(_offline_message(repo_id, revision, f"{type(e).__name__}")) from e


def _alias_config(entry):
    import transformers as T

    from workbench.models.gguf_cache import MARKER, cached_folder
    from workbench.models.registry import locate

    if entry.format == "folder":
        return T.AutoConfig.from_pretrained(locate(entry)[0].parent)
    folder = cached_folder(entry.sha256)
    if (folder / MARKER).is_file():  # de-quantised already: its config.json is the GGUF's
        return T.AutoConfig.from_pretrained(folder)
    parts = locate(entry)
    if len(parts) == 1:
        return T.AutoConfig.from_pretrained(parts[0].parent, gguf_file=parts[0].name)
    # The header lives in the first part. A sparse file of the whole size with only the first
    # part's bytes written lets the GGUF reader parse it without joining (or reading) the rest.
    total = sum(p.stat().st_size for p in parts)
    with tempfile.TemporaryDirectory() as tmp:
        stub = Path(tmp) / "header.gguf"
        with open(parts[0], "rb") as src, open(stub, "wb") as dst:
            while block := src.read(1 << 22):
                dst.write(block)
            dst.truncate(total)
        return T.AutoConfig.from_pretrained(tmp, gguf_file=stub.name)

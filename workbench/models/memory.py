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

from workbench.errors import InvalidInputError, ModelNotFoundError, OfflineError
from workbench.models.checkpoint import auto_class
from workbench.models.folder import detect_kind
from workbench.models.gguf_cache import MARKER, cached_folder
from workbench.models.hub import _offline_message
from workbench.models.loading import _HUB_ID, _looks_like_path
from workbench.models.registry import EMBEDDED, get_entry, locate

# bytes per parameter; int8/int4 count the weights alone (quantisation scales add a few percent)
BYTES_PER_PARAM = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0, "int8": 1.0, "int4": 0.5}


# bits per weight of llama.cpp's GGUF types, as llama.cpp's quantize tool reports them for Llama
# models (mixed types such as Q4_K_M keep some tensors at higher precision; other architectures
# differ by a few percent)
GGUF_BITS = {"F16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69, "Q4_K_M": 4.89, "Q3_K_M": 3.91, "Q2_K": 2.96}
# what each way of running a model needs besides memory (see the README, "Auditing a 70B model")
_PLAN = (
    ("hf", "float32", 32.0, "CPU or GPU; exact reference numbers"),
    ("hf", "bfloat16", 16.0, "CPU or GPU; agreement with float32 measured in benchmarks/backends.py"),
    ("hf", "float16", 16.0, "GPU (CPU float16 kernels are slow)"),
    ("hf", "int8", 8.0, "CUDA GPU with bitsandbytes"),
    ("hf", "int4", 4.0, "CUDA GPU with bitsandbytes (nf4)"),
) + tuple(("llama.cpp", q, b, "CPU (memory-mapped GGUF), optional GPU offload; no inspection")
          for q, b in GGUF_BITS.items())
OVERHEAD = 1.10  # activations, buffers and the allocator on top of weights and KV cache


def estimate_memory(spec, *, revision: str | None = None, kind: str | None = None,
                    trust_remote_code: bool = False, hub_cache_dir=None, backends: bool = False,
                    context: int = 2048, memory_gib: float | None = None):
    """Memory the weights of ``spec`` need in float32/float16/bfloat16/int8/int4.

    ``spec``: an embedded alias, a local folder (its ``config.json``), a ``.gguf`` file (its
    header), a hub id (its ``config.json`` only, from the local cache when offline), a
    transformers config object, or a config dict with ``model_type``.

    Returns a DataFrame, one row per dtype: ``dtype, params, bytes_per_param, weights_bytes,
    weights_gib, kv_cache_gib_per_1k_tokens``; ``frame.attrs`` holds ``params``, ``architecture``,
    ``kind``, ``checkpoint_dtype`` and ``source``. Loading needs the weights plus activations
    (small for scoring) plus, when generating, the KV cache; with less memory than that, load with
    ``wb.load_model(spec, device_map="auto", max_memory=..., offload_folder=...)``.

    ``backends=True`` returns instead one row per way of running it: ``backend`` ("hf" at
    float32/bfloat16/float16/int8/int4, "llama.cpp" at each GGUF type of :data:`GGUF_BITS`),
    ``precision``, ``bits_per_weight``, ``weights_gib``, ``kv_cache_gib`` (at ``context``
    tokens), ``total_gib`` (weights + KV cache, plus 10% for activations and buffers),
    ``fits`` (within ``memory_gib``; default: this machine's memory) and ``needs`` (hardware).
    ``frame.attrs["advice"]`` says, in one sentence, how to run the model here: the most precise
    way that fits, or else that it needs more memory or a server (``backend="openai"`` on a
    vLLM/SGLang server across GPUs). Figures are estimates from the parameter count; a GGUF's
    own file size is the truth for that file.

    >>> import workbench as wb
    >>> wb.estimate_memory("smollm2-135m-instruct").attrs["params"]  # doctest: +SKIP
    134515008
    >>> from workbench.testing import tiny_config
    >>> plan = wb.estimate_memory(tiny_config("llama", vocab_size=400), backends=True, memory_gib=1)
    >>> row = plan.iloc[0]
    >>> row.backend, row.precision, bool(row.fits)
    ('hf', 'float32', True)
    """
    import pandas as pd

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
    if backends:
        return _plan(frame.attrs, kv_per_token, context, memory_gib)
    return frame


def _machine_memory_gib() -> float:
    """This machine's physical memory, in GiB."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        import psutil
        return psutil.virtual_memory().total / 2**30


def _plan(attrs: dict, kv_per_token: int, context: int, memory_gib: float | None):
    import pandas as pd

    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        raise InvalidInputError(f"context must be a positive number of tokens, got {context!r}")
    if memory_gib is not None and (isinstance(memory_gib, bool) or not isinstance(memory_gib, (int, float))
                                   or memory_gib <= 0):
        raise InvalidInputError(f"memory_gib must be a positive number of GiB, got {memory_gib!r}")
    available = float(memory_gib) if memory_gib is not None else _machine_memory_gib()
    params, rows = attrs["params"], []
    for backend, precision, bits, needs in _PLAN:
        weights = params * bits / 8 / 2**30
        kv = kv_per_token * context * (4 if precision == "float32" else 2) / 2**30
        total = (weights + kv) * OVERHEAD
        rows.append({"backend": backend, "precision": precision, "bits_per_weight": bits, "weights_gib": weights,
                     "kv_cache_gib": kv, "total_gib": total, "fits": total <= available, "needs": needs})
    frame = pd.DataFrame(rows)
    frame.attrs.update(attrs, context=context, memory_gib=available, advice=_advice(frame, attrs, available))
    return frame


def _advice(frame, attrs, available: float) -> str:
    size = f"{attrs['params'] / 1e9:.1f}B-parameter" if attrs["params"] >= 1e9 else f"{attrs['params'] / 1e6:.0f}M-parameter"
    cpu = frame[frame.fits & ~frame.needs.str.startswith(("GPU", "CUDA"))]
    if len(cpu) and cpu.iloc[0].backend == "hf":
        r = cpu.iloc[0]
        return (f"the {size} model fits in {available:.0f} GiB with the Hugging Face backend at {r.precision} "
                f"({r.total_gib:.1f} GiB): every capability, inspection included")
    if len(cpu):
        r = cpu.iloc[0]
        f32 = frame.iloc[0]
        return (f"the {size} model needs {f32.total_gib:.0f} GiB at float32, more than {available:.0f} GiB: run it "
                f"with backend='llama.cpp' at {r.precision} ({r.total_gib:.1f} GiB; scoring, probes and tasks, not "
                "inspection), or split it with device_map='auto', max_memory=..., offload_folder=... (every "
                "capability, slowly, from disk)")
    smallest = frame.iloc[-1]
    return (f"the {size} model does not fit in {available:.0f} GiB even at {smallest.precision} "
            f"({smallest.total_gib:.0f} GiB): serve it on GPUs (vLLM or SGLang, tensor/pipeline parallel) and "
            "connect with backend='openai', or offload to disk with device_map (slow)")


def count_params(config, kind: str) -> int:
    """Exact parameter count of the model ``config`` describes, built on the meta device."""
    from accelerate import init_empty_weights

    auto = auto_class(kind)
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
    if text in EMBEDDED:
        return _alias_config(EMBEDDED[text]), f"embedded:{text}"
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return T.AutoConfig.from_pretrained(path.parent, gguf_file=path.name), f"gguf header:{path}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} has no config.json to estimate from")
        return T.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code), f"folder:{path}"
    if _looks_like_path(text) or not _HUB_ID.match(text):
        if not _looks_like_path(text):
            get_entry(text)  # unknown alias: lists the known ones
        raise ModelNotFoundError(f"no such file or folder: {path}")
    return _hub_config(text, revision, trust_remote_code, hub_cache_dir), f"hub:{text}"


def _hub_config(repo_id, revision, trust_remote_code, hub_cache_dir):
    import transformers as T

    try:
        return T.AutoConfig.from_pretrained(repo_id, revision=revision, trust_remote_code=trust_remote_code,
                                            cache_dir=hub_cache_dir)
    except OSError as e:  # transformers wraps "not cached while offline" and connection errors
        raise OfflineError(_offline_message(repo_id, revision, f"{type(e).__name__}")) from e


def _alias_config(entry):
    import transformers as T

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

"""Model fingerprints: enough to say exactly which model produced a number.

A fingerprint is a flat JSON-able dict: hashes of the weights (the files when known, else the
tensors), tokenizer, chat template and config, plus dtype, device, licence and library versions.
``fingerprint_id`` is a short hash of the parts that identify the *computation* (weights,
tokenizer, config, dtype and versions), so it is stable across re-loads and changes when any of
them does.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from workbench.paths import cache_dir
from workbench.versions import versions

# keys that do not change what the model computes are left out of the short id
_NOT_IN_ID = {"device", "source", "weight_files", "licence", "name", "python", "platform", "loaded_from"}
_CONFIG_TRANSIENT = {"_name_or_path", "transformers_version", "_commit_hash", "_attn_implementation_autoset",
                     "torch_dtype", "dtype"}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Streaming sha256 of a file, memoised on (path, size, mtime) so re-loads are instant."""
    path = Path(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo = _hash_memo()
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    memo[key] = digest
    _save_hash_memo(memo)
    return digest


def sha256_concat(paths, chunk: int = 1 << 22) -> str:
    """sha256 of the concatenation of ``paths`` in order (a file split over several packages),
    without writing the joined file; memoised like :func:`sha256_file`."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1:
        return sha256_file(paths[0], chunk)
    key = "concat:" + "+".join(f"{p.resolve()}|{p.stat().st_size}|{p.stat().st_mtime_ns}" for p in paths)
    memo = _hash_memo()
    if key in memo:
        return memo[key]
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    digest = h.hexdigest()
    memo = _hash_memo()  # re-read: another process may have added entries meanwhile
    memo[key] = digest
    _save_hash_memo(memo)
    return digest


def _memo_path() -> Path:
    return cache_dir() / "file_hashes.json"


def _hash_memo() -> dict:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_hash_memo(memo: dict) -> None:
    path = _memo_path()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, path)  # atomic: concurrent writers never leave a torn file
    except OSError:
        pass


def hash_tensors(hf_model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(hf_model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        t = t.detach().cpu().contiguous()
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def hash_tokenizer(tokenizer) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # padding and truncation are call-time settings that transformers writes into the backend
        # (e.g. a call with padding_side=...): they do not change which ids a text maps to. The
        # serialisation's key order is fixed (version, truncation, padding, added_tokens, ...), so
        # hashing from added_tokens on skips them without parsing a tokenizer of tens of MB.
        raw = backend.to_str()
        cut = raw.find('"added_tokens"')
        if cut == -1:
            state = json.loads(raw)
            state.pop("padding", None)
            state.pop("truncation", None)
            raw, cut = json.dumps(state, sort_keys=True), 0
        h.update(raw[cut:].encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    h.update(type(tokenizer).__name__.encode())
    return h.hexdigest()


def hash_config(config) -> str:
    d = {k: v for k, v in config.to_dict().items() if k not in _CONFIG_TRANSIENT}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def weights_hash(files: dict) -> str:
    """The weights' hash from {file name: sha256} (the same for every backend that reads them)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def fingerprint_record(*, weights_sha256: str | None, weight_files: dict, tokenizer, config, dtype: str,
                       device: str, licence: str, source: str, **extra) -> dict:
    """The fingerprint every backend's loader builds, with the same keys: the weights (their hash
    and files), the tokenizer, chat template and config hashes, the architecture, how the numbers
    are computed (dtype, device), the licence, the source, the software versions
    (:func:`workbench.versions.versions`), and what a backend adds (``extra``: a served model's
    name, the file a GGUF was loaded from)."""
    template = getattr(tokenizer, "chat_template", None)
    return {
        "weights_sha256": weights_sha256,
        "weight_files": dict(weight_files),
        "tokenizer_sha256": hash_tokenizer(tokenizer),
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if isinstance(template, str) else None,
        "config_sha256": hash_config(config),
        "architecture": config.model_type,
        "dtype": dtype,
        "device": device,
        "licence": licence,
        "source": str(source),
        **versions(),
        **extra,
    }


def compute_fingerprint(hf_model, tokenizer, weight_files=None, licence: str = "unknown",
                        source: str = "in-memory", extra: dict | None = None,
                        weight_hashes: dict | None = None) -> dict:
    """The complete fingerprint of a loaded transformers model (see module docstring).

    ``weight_hashes`` ({file name: sha256}) stands in for ``weight_files`` when the hashes are
    already known (e.g. a GGUF split over several packages, hashed as one file)."""
    if weight_files or weight_hashes:
        files = dict(weight_hashes or {})
        files.update({Path(p).name: sha256_file(p) for p in weight_files or ()})
        weights = weights_hash(files)
    else:
        files, weights = {}, hash_tensors(hf_model)
    param = next(hf_model.parameters())
    return fingerprint_record(weights_sha256=weights, weight_files=files, tokenizer=tokenizer, config=hf_model.config,
                              dtype=str(param.dtype).replace("torch.", ""), device=str(param.device),
                              licence=licence, source=source, **(extra or {}))


def fingerprint_id(fp: dict) -> str:
    """Short hash of what identifies the computation. The ``backend`` entry counts unless it is
    the reference Hugging Face backend, whose settings (dtype) are fingerprinted as their own
    keys already: ids, caches and stores of Hugging Face models stay as they were before there
    were backends, and a model run by llama.cpp or a server never shares an id with it."""
    core = {k: v for k, v in fp.items() if k not in _NOT_IN_ID}
    if isinstance(core.get("backend"), dict) and core["backend"].get("name") == "hf":
        core.pop("backend")
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:12]

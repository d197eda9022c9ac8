"""Streaming capture over a whole data set: shards on disk, resumable, flat memory.

``wb.capture(model, texts, ..., out="acts/")`` writes ``shard-00000.safetensors`` ... (one per
``shard_size`` texts, by default as many as store about :data:`SHARD_BYTES`; each holds every
(site, layer) tensor plus ``tokens`` and ``attention_mask``, right-padded within the shard) and
``manifest.json`` (the settings). A shard appears under its final name only when complete
(written to a temporary file, then renamed), so after an interruption (Ctrl-C, a killed
process) the same call skips finished shards and computes only the rest. Re-using a folder
with different settings is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import torch

from workbench.errors import InvalidInputError
from workbench.inspect.cache import ActivationCache, estimate_bytes
from workbench.inspect.recording import capture_texts, encode, place, resolve_sites
from workbench.inspect.sites import adapter
from workbench.validate import BOOL, Int, Optional, checked

MANIFEST = "manifest.json"
SHARD_BYTES = 256 * 2**20  # default target size of one shard: the memory streaming holds at once
SAMPLE_TEXTS = 1024        # texts tokenised to size the default shard (the longest of them counts)


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


@checked(batch_size=Int(min=1), progress=Optional(BOOL))
def capture_stream(model, texts, out, sites=("resid_post",), layers=None, positions=None, dtype=None,
                   batch_size: int = 8, shard_size: int | None = None, progress: bool = True):
    """Capture activations of many texts to disk, in shards, with memory flat in their number:
    returns a :class:`~workbench.inspect.stream.ShardedCache` over the folder ``out`` (resumable:
    shards already written with the same settings are kept). Same sites, layers, positions and
    dtype as :func:`~workbench.inspect.capture.capture`; ``shard_size`` texts per shard (default:
    about 256 MiB each)."""
    return capture_to_disk(model, texts, out, sites=sites, layers=layers, positions=positions, dtype=dtype,
                           batch_size=batch_size, shard_size=shard_size, progress=progress)


def capture_to_disk(model, inputs, out, sites, layers, positions, dtype, batch_size, shard_size, progress=True):
    from safetensors.torch import save_file

    if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)) or not all(isinstance(t, str) for t in inputs):
        raise InvalidInputError("streaming capture (out=...) takes a list of texts")
    if not inputs:  # as capture() says of an empty list
        raise InvalidInputError("streaming capture got an empty list of texts; give at least one text")
    if shard_size is not None and (not isinstance(shard_size, int) or isinstance(shard_size, bool) or shard_size < 1):
        raise InvalidInputError(f"shard_size must be a positive int or None (sized by memory), got {shard_size!r}")
    texts = list(inputs)
    keys = resolve_sites(model, sites, layers)
    out = Path(out)
    mpath = out / MANIFEST
    old = json.loads(mpath.read_text()) if mpath.exists() else None  # the folder's settings, when resuming
    if shard_size is None:
        # a resumed capture keeps its folder's shard size; a new one sizes shards by memory
        shard_size = (old or {}).get("shard_size") or default_shard_size(model, texts, keys, positions, dtype,
                                                                         batch_size)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"model_state_id": model.state_id, "model": model.name, "n_layers": model.n_layers, "keys": [list(k) for k in keys],
                "positions": positions, "dtype": str(dtype or model.dtype), "shard_size": shard_size,
                "n_texts": len(texts), "texts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest()}
    if old is not None:
        diff = sorted(k for k in settings if old.get(k) != settings[k])
        if diff:
            raise InvalidInputError(f"{out} holds a capture with different {', '.join(diff)}; use another folder "
                                    "(or delete this one) rather than mixing shards of two settings")
    else:
        tmp = mpath.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings, indent=1))
        os.replace(tmp, mpath)
    n_shards = -(-len(texts) // shard_size)
    todo = [i for i in range(n_shards) if not (out / _shard_name(i)).exists()]
    it = todo
    if progress and todo:
        from tqdm.auto import tqdm
        it = tqdm(todo, desc=f"capture -> {out.name}", unit="shard", initial=n_shards - len(todo), total=n_shards)
    site_names = sorted({s for s, _ in keys})
    layer_list = sorted({l for _, l in keys if l is not None})
    for i in it:
        chunk = texts[i * shard_size:(i + 1) * shard_size]
        cache = capture_texts(model, chunk, site_names, layer_list or None, positions, dtype, batch_size,
                              max_memory=None, progress=False)
        tensors = {f"{s}/{'' if l is None else l}": t.contiguous() for (s, l), t in cache.data.items()}
        tensors["tokens"] = cache.tokens.contiguous()
        tensors["attention_mask"] = cache.attention_mask.contiguous()
        if cache.positions is not None:
            tensors["positions"] = cache.positions.contiguous()
        tmp = out / (_shard_name(i) + ".tmp")
        save_file(tensors, str(tmp), metadata={"first_text": str(i * shard_size), "n_texts": str(len(chunk))})
        os.replace(tmp, out / _shard_name(i))
        del cache, tensors
    return ShardedCache(out, computed=len(todo), skipped=n_shards - len(todo))


def default_shard_size(model, texts, keys, positions, dtype, batch_size) -> int:
    """Texts per shard so that one shard stores about :data:`SHARD_BYTES` (a multiple of
    ``batch_size``, at least one batch), sized on the longest of the first :data:`SAMPLE_TEXTS`
    texts. Why: a fixed count of 256 texts held ~1.1 GB for all-layer ``resid_post`` of a
    135M model at 128 tokens, and many times that for wider sites or longer texts."""
    longest = max(len(ids) for ids in encode(model.tokenizer, texts[:SAMPLE_TEXTS]))
    n_pos = None if positions is None else (1 if isinstance(positions, (int, str)) else len(positions))
    el = torch.empty((), dtype=dtype or model.dtype).element_size()
    per_text = estimate_bytes(adapter(model), keys, 1, longest, n_pos, el, 1, False)["stored"]
    n = max(1, SHARD_BYTES // max(per_text, 1))
    return max(batch_size, n // batch_size * batch_size)


class ShardedCache:
    """A streamed capture on disk. ``shard(i)`` / iteration give one :class:`ActivationCache`
    per shard (loaded on demand); ``cache[site, layer]`` loads one tensor across all shards
    (zero-padded to the longest text). ``computed``/``skipped``: shards computed by the call that
    returned this object, and finished shards it found and reused."""

    def __init__(self, path, computed: int = 0, skipped: int = 0):
        self.path = Path(path)
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        self.computed, self.skipped = computed, skipped

    def __len__(self):
        return -(-self.manifest["n_texts"] // self.manifest["shard_size"])

    @property
    def complete(self) -> bool:
        return all((self.path / _shard_name(i)).exists() for i in range(len(self)))

    def shard(self, i: int) -> ActivationCache:
        from safetensors.torch import load_file
        if not 0 <= i < len(self):
            raise IndexError(f"shard {i} out of range (0..{len(self) - 1})")
        f = self.path / _shard_name(i)
        if not f.exists():
            raise FileNotFoundError(f"{f} is missing: the capture was interrupted; run the same wb.capture call again to finish it")
        t = load_file(str(f))
        data = {}
        for k, v in t.items():
            if "/" in k:
                s, l = k.split("/")
                data[(s, int(l) if l else None)] = v
        return ActivationCache(data, t["tokens"], t["attention_mask"], [], t.get("positions"),
                               provenance={"model": self.manifest["model"], "shard": i,
                                           "n_layers": self.manifest.get("n_layers", 0)})

    def __iter__(self):
        return (self.shard(i) for i in range(len(self)))

    def __getitem__(self, key):
        if isinstance(key, str):
            key = (key, None)
        shards = list(self)
        site = key[0]
        seq = max(s.tokens.shape[1] for s in shards)
        return place([s[key] for s in shards], sum(len(s.tokens) for s in shards), seq, site,
                      self.manifest["positions"] is not None)

    def to_frame(self) -> pd.DataFrame:
        rows = []
        for i in range(len(self)):
            f = self.path / _shard_name(i)
            rows.append(dict(shard=i, file=f.name, done=f.exists(), mb=f.stat().st_size / 2**20 if f.exists() else 0.0))
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        return self.to_frame()

    def __repr__(self):
        return f"ShardedCache({str(self.path)!r}, {len(self)} shards, computed={self.computed}, skipped={self.skipped})"

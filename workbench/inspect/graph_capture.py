"""``wb.capture`` on a backend without in-process modules (llama.cpp): the same validation, the
same :class:`~workbench.inspect.cache.ActivationCache` (shapes, right padding with zeros, layer
indexing, positions, provenance), filled from the backend's compute graph instead of hooks.

>>> import workbench as wb
>>> m = wb.load_model("smollm2-135m-instruct", backend="llama.cpp")          # doctest: +SKIP
>>> cache = wb.capture(m, ["The cat sat", "A dog"], sites=["resid_post"])  # doctest: +SKIP
>>> cache["resid_post", 3].shape                                            # doctest: +SKIP
torch.Size([2, 3, 576])
"""
from __future__ import annotations

import torch

from workbench.errors import BackendCapabilityError
from workbench.inspect.cache import ActivationCache, check_fits, estimate_bytes
from workbench.inspect.recording import (SiteBlocks, capture_provenance, check_fits_window, resolve_positions,
                                         resolve_sites, str_tokens, tokenize)
from workbench.inspect.sites import site_adapter


def capture_on_backend(model, inputs, sites, layers, positions, dtype, max_memory, progress, out=None,
                       max_new_tokens=None) -> ActivationCache:
    """:func:`workbench.capture` for a model whose backend captures through its graph. Every
    check (sites, layers, positions, window, memory) runs before the first decode."""
    ad = site_adapter(model)  # a server backend is refused here, naming the backends that capture
    name = model.backend.name
    if out is not None or max_new_tokens is not None:
        raise BackendCapabilityError(
            f"the {name!r} backend captures texts in memory only: capture to disk (out=) and capture while "
            f"generating (max_new_tokens=) need backend='hf'; on {name!r}, capture the texts in parts instead")
    keys = resolve_sites(model, sites, layers, ad=ad)
    enc = tokenize(model, inputs)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    check_fits_window(model, mask)
    idx = resolve_positions(positions, mask)
    el = torch.empty((), dtype=dtype or torch.float32).element_size()
    # one text at a time, written into the result as computed: the transient is at most one text's
    # tensors (held for attention patterns and chosen positions) plus llama.cpp's own buffers
    est = estimate_bytes(ad, keys, ids.shape[0], ids.shape[1], None if idx is None else idx.shape[1], el, 1, False)
    est["forward"] = estimate_bytes(ad, keys, 1, ids.shape[1], None, 4, 1, False)["stored"]
    check_fits(est, max_memory, "fewer sites or layers, positions='last' (or a list), dtype=torch.float16, "
                                "or fewer texts per call")
    lengths = mask.sum(1).tolist()
    rows = [ids[i, :n].tolist() for i, n in enumerate(lengths)]
    blocks = SiteBlocks(keys, ids.shape[0], ids.shape[1], idx is not None)
    store = dtype or torch.float32

    def slot(i, key, shape):  # the backend writes each text's tensors straight into the result
        return blocks.slot(key, torch.empty(shape, device="meta"), i, store)

    notes = model.backend.capture(model, keys, rows, idx, progress, slot)
    prov = capture_provenance(model, keys, dtype or torch.float32, est,
                              capture=f"{name} compute graph (graph evaluation callback), one text per decode")
    return ActivationCache(blocks.result(), ids, mask, str_tokens(model, ids, mask), idx, notes, prov)

"""``wb.capture`` on a backend without in-process modules (llama.cpp): the same validation, the
same :class:`~workbench.inspect.cache.ActivationCache` (shapes, right padding with zeros, layer
indexing, positions, provenance), filled from the backend's compute graph instead of hooks.

The backend runs the token ids and hands over the graph nodes asked for by name, as raw arrays
(:meth:`workbench.backends.base.Backend.capture`); which node holds which site
(:class:`~workbench.inspect.sites.GraphAdapter`) and how a node's data becomes the site's tensor
(:func:`to_site`, :class:`TextCapture`) is decided here.

>>> import workbench as wb
>>> m = wb.load_model("smollm2-135m-instruct", backend="llama.cpp")          # doctest: +SKIP
>>> cache = wb.capture(m, ["The cat sat", "A dog"], sites=["resid_post"])  # doctest: +SKIP
>>> cache["resid_post", 3].shape                                            # doctest: +SKIP
torch.Size([2, 3, 576])
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.errors import BackendCapabilityError, WorkbenchError
from workbench.inspect.cache import ActivationCache, check_fits, estimate_bytes
from workbench.inspect.recording import (SiteBlocks, capture_provenance, check_fits_window, resolve_positions,
                                         resolve_sites, str_tokens, tokenize)
from workbench.inspect.sites import site_adapter


def to_site(arr: np.ndarray, layout: str, heads: int, width: int, n_tokens: int) -> np.ndarray:
    """A node's data (``ne[3], ne[2], ne[1], ne[0]``) as the site's per-token layout: ``[tokens,
    width]`` (rows), ``[tokens, heads, head_dim]`` (heads; the node may be ``[heads * head_dim,
    tokens]`` or ``[head_dim, heads, tokens]``, the same memory), ``[heads, tokens, kv cells]``
    (pattern: ne = [kv cells, tokens, heads]). ``width``: numbers per token of the site."""
    if layout == "pattern":
        tokens, out = arr.shape[-2], arr.reshape(arr.shape[-3:])
    else:
        tokens = arr.size // width if arr.size % width == 0 else -1
        out = arr.reshape(tokens, width) if tokens > 0 else arr
        if layout != "rows" and tokens > 0:
            out = out.reshape(tokens, heads, width // heads)
            if layout == "heads_interleaved":  # llama.cpp's rotary order (0, d/2, 1, d/2+1, ...) -> HF's
                d = width // heads
                out = out.reshape(tokens, heads, d // 2, 2).swapaxes(-1, -2).reshape(tokens, heads, d)
    if tokens != n_tokens:
        raise WorkbenchError(f"a graph node ({arr.shape[::-1]}) has not {n_tokens} token rows of {width} numbers "
                             "as decoded (llama.cpp kept only the output rows?): please report it")
    return out


class TextCapture:
    """The reader of one capture (:meth:`workbench.backends.base.Backend.capture`): each node's
    data, as the backend hands it over, goes straight into its place in the result (``slot(i,
    key, shape)``, a view of the cache's block) laid out as its site. Only attention patterns and
    captures at chosen positions are held per text first (a pattern's chunks fill a square;
    positions are picked once the text is whole). ``nodes``: the graph nodes to ask the backend
    for, one per name (``resid_pre`` of layer L is the node of ``resid_post`` of L - 1)."""

    def __init__(self, ad, keys, slot, positions: torch.Tensor | None):
        self.keys, self.slot, self.positions = keys, slot, positions
        self.by_name: dict[str, list] = {}
        nodes: dict[str, object] = {}
        for key in keys:
            site, layer = key
            node = ad.hook_point(site, layer)
            self.by_name.setdefault(node.name, []).append((key, node.layout, ad.heads_of(site), ad.site_width(site)))
            nodes[node.name] = node
        self.nodes = list(nodes.values())
        self.i, self.length = 0, 0
        self.parts: dict = {}
        self.views: dict = {}

    def begin(self, i: int, length: int) -> None:
        self.i, self.length, self.parts, self.views = i, length, {key: [] for key in self.keys}, {}

    def take(self, name: str, start: int, n_tokens: int, arr: np.ndarray) -> None:
        """Node ``name`` of the decode of tokens ``start...start + n_tokens``: into each of its sites."""
        for key, layout, heads, width in self.by_name[name]:
            part = to_site(arr, layout, heads, width, n_tokens)
            if layout == "pattern" or self.positions is not None:
                self.parts[key].append(part)
                continue
            if key not in self.views:  # [1, seq, ...] of this text in the result, the rest stays zero padding
                self.views[key] = self.slot(self.i, key, (1, self.length) + part.shape[1:])
            self.views[key][0, start:start + n_tokens].copy_(torch.from_numpy(part))

    def finish(self) -> None:
        """Place what was held per text (patterns, chosen positions)."""
        for key, parts in self.parts.items():
            if not parts:
                continue
            if key[0] == "attn_pattern":
                h = parts[0].shape[0]
                full = np.zeros((h, self.length, self.length), dtype=np.float32)
                row = 0
                for p in parts:  # a chunk's queries see KV cells 0 .. its last position
                    end = row + p.shape[1]
                    full[:, row:end, :end] = p[:, :, :end]
                    row = end
                x = torch.from_numpy(full)[None]
                if self.positions is not None:
                    x = x[:, :, self.positions[self.i]]
            else:
                x = torch.from_numpy(np.concatenate(parts, axis=0))[None][:, self.positions[self.i]]
            self.slot(self.i, key, tuple(x.shape)).copy_(x)


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

    def slot(i, key, shape):  # the reader writes each text's tensors straight into the result
        return blocks.slot(key, torch.empty(shape, device="meta"), i, store)

    reader = TextCapture(ad, keys, slot, idx)
    # llama.cpp computes the nodes from the last layer's attention output on (and the final norm,
    # the logits) only for a decode's output rows: every token is one when such a site is asked for
    last = ad.n_layers - 1
    every_row = any(site in ("final_norm", "logits") or layer == last for site, layer in keys)
    notes = model.backend.capture(model, rows, reader.nodes, every_row, progress, reader)
    prov = capture_provenance(model, keys, dtype or torch.float32, est,
                              capture=f"{name} compute graph (graph evaluation callback), one text per decode")
    return ActivationCache(blocks.result(), ids, mask, str_tokens(model, ids, mask), idx, notes, prov)

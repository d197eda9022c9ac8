"""Capture on the llama.cpp backend: each text decoded alone (sequence 0 of an empty cache, in
chunks through the KV cache when long), the requested graph nodes copied out by the callback of
:mod:`workbench.backends.llamacpp_graph` and laid out as the Hugging Face capture lays them out.

Which rows a node has: llama.cpp keeps only the rows whose logits are asked for from the last
layer's attention output on (``inp_out_ids``). When a site of the last layer or ``final_norm`` /
``logits`` is asked for, every token is flagged as an output (and decodes are cut to what the
logits buffer holds, as in scoring); otherwise only one token per decode is, and the callback
stops the graph after the last node wanted, so the output head is not computed at all.
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.errors import WorkbenchError


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
    """The callback sinks of one capture: each node's data goes straight into its place in the
    result (``slot(i, key, shape)``, a view of the cache's block) as its decode computes it. Only
    attention patterns and captures at chosen positions are held per text first (a pattern's
    chunks fill a square; positions are picked once the text is whole)."""

    def __init__(self, ad, keys, slot, positions: torch.Tensor | None):
        self.keys, self.slot, self.positions = keys, slot, positions
        self.by_name: dict[bytes, list] = {}
        self.ops: dict[bytes, bytes | None] = {}
        for key in keys:
            site, layer = key
            node = ad.hook_point(site, layer)
            name = node.name.encode()
            self.by_name.setdefault(name, []).append((key, node.layout, ad.heads_of(site), ad.site_width(site)))
            self.ops[name] = None if node.op is None else node.op.encode()
        self.i, self.start, self.n_tokens, self.length = 0, 0, 0, 0
        self.parts: dict = {}
        self.views: dict = {}

    def begin(self, i: int, length: int) -> None:
        self.i, self.length, self.parts, self.views = i, length, {key: [] for key in self.keys}, {}

    def wanted(self, start: int, n_tokens: int) -> dict:
        from workbench.backends.llamacpp_graph import Wanted
        self.start, self.n_tokens = start, n_tokens
        return {name: Wanted(self.ops[name], lambda a, name=name: self._sink(name, a)) for name in self.by_name}

    def _sink(self, name: bytes, arr: np.ndarray) -> None:
        for key, layout, heads, width in self.by_name[name]:
            part = to_site(arr, layout, heads, width, self.n_tokens)
            if layout == "pattern" or self.positions is not None:
                self.parts[key].append(part)
                continue
            if key not in self.views:  # [1, seq, ...] of this text in the result, the rest stays zero padding
                self.views[key] = self.slot(self.i, key, (1, self.length) + part.shape[1:])
            self.views[key][0, self.start:self.start + self.n_tokens].copy_(torch.from_numpy(part))

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


def capture_rows(model, keys, rows: list[list[int]], positions: torch.Tensor | None, progress: bool, slot) -> list:
    """Capture ``keys`` ((site, layer) pairs, validated) on each token row (a text's real tokens)
    into ``slot(i, key, shape)``: the writable place of text ``i``'s tensor of ``key``, shaped as
    :class:`~workbench.inspect.cache.ActivationCache` has a batch of one (``[1, seq, ...]``;
    ``attn_pattern``: ``[1, heads, seq, seq]``; ``seq`` = the positions kept). Returns notes."""
    from workbench.backends.llamacpp import N_BATCH, OUTPUT_BYTES
    from workbench.backends.llamacpp_graph import CaptureContext
    from workbench.backends.llamacpp_sites import graph_adapter
    backend, ad = model.backend, graph_adapter(model)
    last = ad.n_layers - 1
    # sites past llama.cpp's output-row selection need every token flagged as an output
    all_rows = any(site in ("final_norm", "logits") or layer == last for site, layer in keys)
    per_decode = max(32, min(N_BATCH, OUTPUT_BYTES // (4 * ad.vocab))) if all_rows else N_BATCH
    flash = not any(site == "attn_pattern" for site, _ in keys)
    longest = max(len(r) for r in rows)
    n_ctx = max(N_BATCH, -(-longest // 256) * 256)
    text = TextCapture(ad, keys, slot, positions)
    notes = [] if flash else ["flash attention off in the capture context, to read attn_pattern"]
    it = range(len(rows))
    if progress and len(rows) > 4:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="capture (llama.cpp)", unit="text")
    with CaptureContext(backend, n_ctx, per_decode, per_decode if all_rows else 1, flash) as cc:
        for i in it:
            ids = rows[i]
            cc.clear()
            text.begin(i, len(ids))
            for start in range(0, len(ids), per_decode):
                chunk = ids[start:start + per_decode]
                flags = [True] * len(chunk) if all_rows else [False] * (len(chunk) - 1) + [True]
                cc.decode(chunk, start, flags, text.wanted(start, len(chunk)))
            text.finish()
    return notes

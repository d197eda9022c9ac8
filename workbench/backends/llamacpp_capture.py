"""Capture on the llama.cpp backend: each token row (a text) decoded alone (sequence 0 of an
empty cache, in chunks through the KV cache when long), the graph nodes asked for copied out by
the callback of :mod:`workbench.backends.llamacpp_graph` and handed on as raw arrays, decode by
decode. Which site a node holds, and how its data becomes the site's tensor, is inspection's
(:mod:`workbench.inspect.graph_capture`): the backend answers on token ids and node names.

Which rows a node has: llama.cpp keeps only the rows whose logits are asked for from the last
layer's attention output on (``inp_out_ids``). With ``every_row`` (asked for when a node of the
last layer, the final norm or the logits is wanted) every token is flagged as an output (and
decodes are cut to what the logits buffer holds, as in scoring); otherwise only one token per
decode is, and the callback stops the graph after the last node wanted, so the output head is
not computed at all.
"""
from __future__ import annotations

from tqdm.auto import tqdm

from workbench.backends.llamacpp_graph import CaptureContext, Wanted
from workbench.backends.llamacpp_lib import N_BATCH, OUTPUT_BYTES


def wanted(ops: dict, reader, start: int, n_tokens: int) -> dict:
    """The nodes of one decode as :class:`~workbench.backends.llamacpp_graph.GraphReader` asks for
    them: ``ops`` (node name -> op or None) to ``{name: Wanted}``, each node's data going to
    ``reader.take(name, start, n_tokens, array)``."""
    return {name.encode(): Wanted(None if op is None else op.encode(),
                                  lambda a, name=name: reader.take(name, start, n_tokens, a))
            for name, op in ops.items()}


def capture_nodes(backend, rows: list[list[int]], nodes, every_row: bool, progress: bool, reader) -> list:
    """Decode each token row alone, handing the data of ``nodes`` (:class:`~workbench.families.GraphTensor`,
    names with the layer filled in) to ``reader``: ``begin(i, n_tokens)``, ``take(name, start,
    n_tokens, array)`` per node and decode, ``finish()`` (see :meth:`workbench.backends.base.Backend.capture`).
    Returns notes."""
    ops = {node.name: node.op for node in nodes}
    per_decode = max(32, min(N_BATCH, OUTPUT_BYTES // (4 * int(backend.engine.n_vocab)))) if every_row else N_BATCH
    flash = not any(node.layout == "pattern" for node in nodes)
    longest = max(len(r) for r in rows)
    n_ctx = max(N_BATCH, -(-longest // 256) * 256)
    notes = [] if flash else ["flash attention off in the capture context, to read attn_pattern"]
    it = range(len(rows))
    if progress and len(rows) > 4:
        it = tqdm(it, desc="capture (llama.cpp)", unit="text")
    with CaptureContext(backend, n_ctx, per_decode, per_decode if every_row else 1, flash) as cc:
        for i in it:
            ids = rows[i]
            cc.clear()
            reader.begin(i, len(ids))
            for start in range(0, len(ids), per_decode):
                chunk = ids[start:start + per_decode]
                flags = [True] * len(chunk) if every_row else [False] * (len(chunk) - 1) + [True]
                cc.decode(chunk, start, flags, wanted(ops, reader, start, len(chunk)))
            reader.finish()
    return notes

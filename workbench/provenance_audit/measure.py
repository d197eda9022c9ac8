"""What the loaded model *is*, measured from its weights and tokenizer, to set beside what its
documentation declares: parameter count, architecture, context window, vocabulary size and
whether the weights carry the fingerprint of 4-bit quantisation.

The quantisation test: a 4-bit block quantiser (GGUF Q4_0/Q4_1/Q4_K) stores each block of 32
weights as 16 levels times a scale, so every 32-weight block of a de-quantised matrix takes at
most 16 distinct values; trained float weights take 32. A matrix counts as 4-bit when 99% of its
blocks have at most 16 values; the model as 4-bit when most of its matrices do (Q4_K_M keeps some
tensors at 6 bits).
"""
from __future__ import annotations

import torch

BLOCK = 32


def four_bit_share(weight: torch.Tensor, max_rows: int = 256) -> float | None:
    """Share of 32-weight blocks (of the first ``max_rows`` rows) holding at most 16 distinct values."""
    if weight.ndim != 2 or weight.shape[1] % BLOCK or weight.numel() < 4096:
        return None
    blocks = weight[:max_rows].detach().float().reshape(-1, BLOCK)
    s = blocks.sort(dim=1).values
    distinct = 1 + (s[:, 1:] != s[:, :-1]).sum(1)
    return float((distinct <= 16).float().mean())


def measure(model) -> dict:
    """{fact: (value, how it was measured)} for the facts the indicators check."""
    out = {"parameters": (int(model.n_params), "count of the loaded model's parameters (tied weights once)"),
           "architecture": (model.architecture, "model_type of the loaded model" + (
               f" ({type(model.hf).__name__})" if model.hf is not None else ""))}
    out["tokenizer_size"] = (len(model.tokenizer), "len(tokenizer)")
    if model.hf is None:
        return out
    hf = model.hf
    emb = hf.get_input_embeddings()
    if emb is not None and hasattr(emb, "weight"):
        out["vocab_size"] = (int(emb.weight.shape[0]), "rows of the input embedding matrix")
    pos = getattr(getattr(hf, "transformer", hf), "wpe", None)  # learned positions: the table's rows
    cfg = getattr(model.config, "text_config", model.config)
    if pos is not None and hasattr(pos, "weight"):
        out["context_length"] = (int(pos.weight.shape[0]), "rows of the learned position embeddings")
    else:
        for attr in ("max_position_embeddings", "n_positions"):
            if isinstance(getattr(cfg, attr, None), int):
                out["context_length"] = (int(getattr(cfg, attr)), f"the window the loaded model runs with ({attr}; "
                                         "rotary positions have no table to count)")
                break
    by_width: dict = {}  # row length -> [4-bit matrices, matrices]
    offloaded = 0          # weights on disk (device_map offload) are meta tensors here: not read
    for _, p in hf.named_parameters():
        if p.device.type == "meta":
            offloaded += p.ndim == 2
            continue
        share = four_bit_share(p)
        if share is not None:
            tally = by_width.setdefault(int(p.shape[1]), [0, 0])
            tally[0] += share >= 0.99
            tally[1] += 1
    if by_width:
        four, total = sum(t[0] for t in by_width.values()), sum(t[1] for t in by_width.values())
        widths = ", ".join(f"{w}: {t[0]}/{t[1]}" for w, t in sorted(by_width.items()))
        # K-quants work on super-blocks of 256: llama.cpp stores rows of other lengths in another type
        odd = [w for w, t in by_width.items() if w % 256 and t[0] < t[1]]
        note = (f"; rows of length {', '.join(map(str, sorted(odd)))} are not a multiple of the 256-weight "
                "super-block of K-quants, which llama.cpp then stores in another type") if odd and four else ""
        out["quantisation"] = ("4-bit levels" if four > total / 2 else "not 4-bit",
                               f"{four} of {total} weight matrices have at most 16 distinct values in 99% of their "
                               f"{BLOCK}-weight blocks (by row length: {widths}){note}"
                               + (f"; {offloaded} matrices offloaded to disk were not read" if offloaded else ""))
    return out

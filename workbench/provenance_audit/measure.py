"""What the loaded model *is*, measured from its weights and tokenizer, to set beside what its
documentation declares: parameter count, architecture, context window (the rows of a learned
position table; rotary positions leave nothing to count), vocabulary size (the rows of the input
embedding) and whether the weights carry the fingerprint of 4-bit quantisation. A fact that
cannot be measured on the loaded model (a served model's parameter count, a rotary model's
window) is left out with the reason (:func:`not_measurable`), so that no declaration is ever
"checked" against itself and nothing unknown is entered as 0.

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


def weights_reachable(model) -> bool:
    """False for a served model: no weights, no parameter count, nothing to hash."""
    return model.hf is not None or bool(model.fingerprint.get("weights_sha256"))


def measure(model) -> dict:
    """{fact: (value, how it was measured)} for the facts the indicators check; a fact that
    cannot be measured on this model is left out (:func:`not_measurable` says why), never 0."""
    out = {}
    n_params = int(model.n_params or 0)
    if n_params > 0:  # a served model's count is unknown, which is not zero
        out["parameters"] = (n_params, "count of the loaded model's parameters (tied weights once)"
                             if model.hf is not None else f"the {model.backend.name} engine's count of the weights")
    if weights_reachable(model):  # a served model's config is the one given with tokenizer=, a declaration
        out["architecture"] = (model.architecture, "model_type of the loaded model" + (
            f" ({type(model.hf).__name__})" if model.hf is not None else f" ({model.backend.name} engine)"))
    out["tokenizer_size"] = (len(model.tokenizer), "len(tokenizer)")
    if model.hf is None:
        return out
    hf = model.hf
    emb = hf.get_input_embeddings()
    if emb is not None and hasattr(emb, "weight"):
        out["vocab_size"] = (int(emb.weight.shape[0]), "rows of the input embedding matrix")
    table = _position_table(hf)
    if table is not None:
        out["context_length"] = (int(table.weight.shape[0]), "rows of the learned position embeddings")
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


def _position_table(hf):
    """The learned position-embedding table (GPT-2's ``wpe``, BERT's ``position_embeddings``), or
    None: rotary and other computed positions have no table whose rows count the window."""
    for owner, name in ((getattr(hf, "transformer", hf), "wpe"),
                        (getattr(getattr(hf, hf.base_model_prefix, hf), "embeddings", None), "position_embeddings")):
        table = getattr(owner, name, None) if owner is not None else None
        if table is not None and hasattr(table, "weight") and table.weight.ndim == 2:
            return table
    return None


def not_measurable(model, measured: dict) -> dict:
    """{fact: why it could not be measured} for the checked facts :func:`measure` left out."""
    served = not weights_reachable(model)
    where = (f"{model.name} is served ({model.backend.name} backend): its weights are not reachable from here"
             if served else f"the {model.backend.name} backend's weights are not read as tensors here")
    why = {}
    if served:
        why["parameters"] = f"{where}, so its parameter count is unknown (not zero)"
        why["architecture"] = f"{where}; the config given with tokenizer= declares one, it does not measure it"
    if model.hf is None:
        why["vocab_size"] = why["context_length"] = why["quantisation"] = where
    else:
        why["context_length"] = ("no learned position table: rotary (or other computed) positions leave nothing in "
                                 "the weights whose size is the window, which is the configuration's own number")
        why["vocab_size"] = "the model has no input embedding matrix to count"
        why["quantisation"] = "no weight matrix has rows of a multiple of 32 weights to test"
    return {k: v for k, v in why.items() if k not in measured}

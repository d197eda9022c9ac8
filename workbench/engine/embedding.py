"""Sentence embeddings for SEAT/WEAT and representation comparisons.

Pooling: ``"mean"`` (mean of the last hidden states over real tokens; what sentence-transformers
uses for all-MiniLM-L6-v2), ``"cls"`` (first token; BERT-style), ``"last"`` (last real token;
the usual choice for causal LMs, which only see the whole sentence at its end).
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.errors import InvalidInputError
from workbench.engine.padding import tokenizer_state_kept
from workbench.engine.padding import padding
from workbench.progress import show_progress

POOLINGS = ("mean", "cls", "last")


@torch.inference_mode()
def embed_rows(model, sentences: list[str], pooling: str, layer: int, normalize: bool, batch_size: int,
               progress=None, max_tokens: int | None = None) -> np.ndarray:
    """Pooled hidden states; ``max_tokens``: keep only each sentence's first tokens (truncate)."""
    if pooling not in POOLINGS:
        raise InvalidInputError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    tok = model.tokenizer
    out = []
    with padding(tok, "right"):
        starts = range(0, len(sentences), batch_size)
        show = show_progress(progress, default=len(starts) > 4)
        for s in tqdm(starts, desc="embedding", disable=not show, leave=False):
            cut = dict(truncation=True, max_length=max_tokens) if max_tokens else {}
            with tokenizer_state_kept(tok):  # truncation settings must not outlive this call
                enc = tok(sentences[s:s + batch_size], return_tensors="pt", padding=True, **cut)
            enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            res = model.hf.base_model(**enc, output_hidden_states=layer != -1)
            hidden = res.hidden_states[layer] if layer != -1 else res[0]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            if pooling == "mean":
                pooled = (hidden * mask).sum(1) / mask.sum(1)
            elif pooling == "cls":
                pooled = hidden[:, 0]
            else:
                last = enc["attention_mask"].sum(1) - 1
                pooled = hidden[torch.arange(hidden.shape[0]), last]
            out.append(pooled.float().cpu())
    emb = torch.cat(out).numpy() if out else np.zeros((0, model.hf.config.hidden_size), dtype=np.float32)
    if normalize:
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    return emb

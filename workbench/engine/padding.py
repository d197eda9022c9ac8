"""Temporarily set a tokenizer's padding side (and a pad token where it has none), then restore."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def padding(tokenizer, side: str):
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = side
    if tokenizer.pad_token is None:
        # padded positions are masked out, so which token pads does not change any score
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None


def pad_id(tokenizer) -> int:
    """The id that fills padded positions: the pad token, else EOS, else 0. Padded positions are
    masked out (or, on the right of a causal model, never attended to), so the choice does not
    change a score; one rule keeps every batch built the same way."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def pad_rows(rows, pad: int, width: int | None = None, side: str = "right"):
    """Token-id lists -> ``(input_ids, attention_mask)`` long tensors ``[len(rows), width]``
    (default width: the longest row), padded on ``side`` with ``pad``."""
    import torch

    width = max(map(len, rows)) if width is None else width
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[i, sl], mask[i, sl] = torch.tensor(list(r), dtype=torch.long), 1
    return ids, mask


@contextmanager
def tokenizer_state_kept(tok):
    """Calling a fast tokenizer can leave its backend's padding/truncation settings changed
    (e.g. padding direction), which would change the model's fingerprint; put them back."""
    backend = getattr(tok, "_tokenizer", None)
    if backend is None:
        yield
        return
    padding, truncation = backend.padding, backend.truncation
    try:
        yield
    finally:
        if padding is None:
            backend.no_padding()
        else:
            backend.enable_padding(**{k: v for k, v in padding.items() if k != "pad_to_multiple_of" or v})
        if truncation is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(**truncation)

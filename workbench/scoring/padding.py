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

"""Capture during greedy generation: every forward pass of ``generate`` is recorded (the
prompt in one pass, then one position per new token, through the KV cache)."""
from __future__ import annotations

import contextlib

import torch

from workbench.errors import InvalidInputError, UnsupportedSiteError
from workbench.inspect.cache import ActivationCache, check_fits, estimate_bytes
from workbench.inspect.hooks import attention_implementation, switch_note
from workbench.inspect.recording import (Recorder, capture_provenance, check_fits_window, resolve_sites, str_tokens,
                                         tokenize)
from workbench.inspect.sites import adapter
from workbench.validate import Int, checked


@checked(max_new_tokens=Int(min=1))
def capture_generation(model, prompts, max_new_tokens: int, sites=("resid_post",), layers=None, dtype=None,
                       max_memory: int | None = None):
    """Generate greedily ``max_new_tokens`` tokens from ``prompts`` (one left-padded batch) and
    capture the activations of prompt and generated tokens alike (an
    :class:`~workbench.inspect.cache.ActivationCache` whose ``tokens`` hold the whole text)."""
    return record_generation(model, prompts, resolve_sites(model, sites, layers), dtype, max_new_tokens, max_memory)


def record_generation(model, inputs, keys, dtype, max_new_tokens, max_memory):
    """The generation and its recording, for ``keys`` already resolved."""
    if any(s == "logits" for s, _ in keys):
        raise UnsupportedSiteError("site 'logits' during generation: transformers computes logits only at the last "
                                   "position while generating; capture 'final_norm' and apply the model's head, "
                                   "or capture logits of the finished text without max_new_tokens")
    if model.kind != "causal":
        raise InvalidInputError(f"max_new_tokens needs a causal LM; {model.name} is {model.kind}")
    enc = tokenize(model, inputs, padding_side="left")
    check_fits_window(model, enc["attention_mask"], max_new_tokens)
    ad = adapter(model)
    total = enc["input_ids"].shape[1] + max_new_tokens
    needs_eager = any(s == "attn_pattern" for s, _ in keys)
    el = torch.empty((), dtype=dtype or model.dtype).element_size()
    check_fits(estimate_bytes(ad, keys, enc["input_ids"].shape[0], total, None, el, enc["input_ids"].shape[0],
                              needs_eager, model.dtype.itemsize), max_memory,
               "fewer sites or layers, fewer max_new_tokens, or dtype=torch.float16")
    rec = Recorder(model, keys, dtype)
    tok = model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eager = attention_implementation(model) if needs_eager else contextlib.nullcontext()
    notes = []
    with eager as switched, rec.installed(), torch.inference_mode():
        if switched:
            notes.append(switch_note(switched))
        seqs = model.hf.generate(input_ids=enc["input_ids"].to(model.device),
                                 attention_mask=enc["attention_mask"].to(model.device),
                                 max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
    seqs = seqs.cpu()
    fed = seqs.shape[1] - 1
    data = {}
    for k in keys:
        steps = rec.take(k)
        if k[0] == "attn_pattern":  # each step attends to a longer prefix: pad keys to the full length
            steps = [torch.nn.functional.pad(s, (0, fed - s.shape[-1])) for s in steps]
            data[k] = torch.cat(steps, dim=2)
        else:
            data[k] = torch.cat(steps, dim=1)
    mask = torch.cat([enc["attention_mask"], torch.ones(seqs.shape[0], seqs.shape[1] - enc["attention_mask"].shape[1],
                                                          dtype=enc["attention_mask"].dtype)], dim=1)
    notes.append("generation: left-padded; activations cover tokens[:, :-1] (the last token is never fed back)")
    return ActivationCache(data, seqs, mask, str_tokens(model, seqs, mask), None, notes,
                           capture_provenance(model, keys, dtype, None, max_new_tokens=max_new_tokens))

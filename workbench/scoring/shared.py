"""Shared contexts: a context that several continuations follow is computed once.

Multiple-choice tasks ask for ``(context, choice_1) ... (context, choice_4)``. Instead of running
the context four times, the engine runs it once with a KV cache, copies the cache along the
batch dimension (one row per continuation) and runs only the continuations on top of it.

How it stays exact (equal to scoring each request alone, tested to 1e-4 on every architecture):

* contexts of one batch are right-padded; the padded cache slots are switched off through the
  2-D attention mask, which covers past + new tokens. Continuations are right-padded too, and
  their ``position_ids`` are given explicitly (``context_length + j``), so a short context's
  continuation sits at its real positions, not after the padding;
* the first continuation token is scored from the context's last real position; the others from
  the continuation pass, whose input is the continuation without its last token;
* the cache is a plain :class:`transformers.DynamicCache` built without the model config, so no
  layer trims it. Sliding-window layers (Gemma 3) compute their window from *cache slot*
  distances, which equal token distances only where there is no padding gap between context and
  continuation: for such models a batch holds contexts of one length only (no gap at all).
"""
from __future__ import annotations

import inspect

import torch

# layer kinds whose cached state is plain keys/values that can be copied along the batch
_KV_LAYER_TYPES = {"full_attention", "sliding_attention"}


def has_sliding_window(model) -> bool:
    cfg = model.hf.config.get_text_config(decoder=True)
    types = getattr(cfg, "layer_types", None) or []
    return "sliding_attention" in types or bool(getattr(cfg, "sliding_window", None))


def supports_shared_context(model) -> bool:
    """Whether the context's KV cache can be reused safely.

    Falls back (False) for models whose base forward takes no ``cache``/``past_key_values``
    (custom remote code), and for recurrent, linear-attention or chunked-attention layers
    (Mamba-style hybrids, Llama 4): their cached state is not a per-token key/value that can be
    padded, masked and copied, so those models use the plain path (one full forward per request).
    """
    cfg = model.hf.config.get_text_config(decoder=True)
    types = getattr(cfg, "layer_types", None)
    if types and not set(types) <= _KV_LAYER_TYPES:
        return False
    if getattr(cfg, "is_encoder_decoder", False):
        return False
    params = inspect.signature(model.hf.base_model.forward).parameters
    return "cache" in params and "position_ids" in params


def group_shared(requests: list[tuple[list[int], list[int]]], limit: int) -> tuple[list[list[int]], list[int]]:
    """Indices of requests grouped by identical context ids (groups of >= 2 only) and the rest.

    Requests whose context + continuation exceeds the model window go to the rest: the plain path
    truncates them from the left, which changes the context per continuation.
    """
    by_ctx: dict[tuple, list[int]] = {}
    for i, (ctx, cont) in enumerate(requests):
        if ctx and len(ctx) + len(cont) - 1 <= limit:
            by_ctx.setdefault(tuple(ctx), []).append(i)
    groups = [g for g in by_ctx.values() if len(g) >= 2]
    shared = {i for g in groups for i in g}
    rest = [i for i in range(len(requests)) if i not in shared]
    return groups, rest


def plan_shared_batches(groups: list[list[int]], requests, token_budget: int, max_rows: int,
                        same_length: bool) -> list[list[list[int]]]:
    """Groups packed into batches: rows x (padded context + padded continuation) <= token_budget.

    ``same_length``: only contexts of equal length share a batch (sliding-window models)."""
    def ctx_len(g):
        return len(requests[g[0]][0])

    order = sorted(groups, key=lambda g: (-ctx_len(g), -max(len(requests[i][1]) for i in g)))
    batches, current = [], []
    lc = lx = rows = 0
    for g in order:
        g_lx = max(len(requests[i][1]) for i in g) - 1
        n_lc, n_lx, n_rows = max(lc, ctx_len(g)), max(lx, g_lx), rows + len(g)
        too_big = n_rows * (n_lc + n_lx) > token_budget or n_rows > max_rows
        if current and (too_big or (same_length and ctx_len(g) != lc)):
            batches.append(current)
            current, n_lc, n_lx, n_rows = [], ctx_len(g), g_lx, len(g)
        current.append(g)
        lc, lx, rows = n_lc, n_lx, n_rows
    if current:
        batches.append(current)
    return batches


def run_shared_batch(model, requests, batch: list[list[int]], pad_id: int):
    """One batch of context groups. Returns (request indices, hidden states at the scored
    positions [n, d], their target ids [n], and per request the rows of those that are its tokens)."""
    from transformers import DynamicCache

    device = model.device
    base = model.hf.base_model
    ctxs = [requests[g[0]][0] for g in batch]
    lc = max(len(c) for c in ctxs)
    ids = torch.full((len(batch), lc), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), lc), dtype=torch.long)
    for r, c in enumerate(ctxs):
        ids[r, :len(c)] = torch.tensor(c)
        mask[r, :len(c)] = 1
    ctx_len = mask.sum(1)
    positions = torch.arange(lc).expand(len(batch), lc)
    cache = DynamicCache()
    out = base(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
               cache=cache, use_cache=True)
    last = out[0][torch.arange(len(batch), device=device), (ctx_len - 1).to(device)]  # [groups, d]

    # one row per continuation; its first token is scored from the context's last position
    order, owner = [], []
    for g_idx, g in enumerate(batch):
        order += g
        owner += [g_idx] * len(g)
    conts = [requests[i][1] for i in order]
    owner_t = torch.tensor(owner)
    picked = [last[owner_t.to(device)]]
    targets = [c[0] for c in conts]
    rows_rest = [r for r, c in enumerate(conts) if len(c) > 1]
    rest_targets, rest_rows, rest_cols = [], [], []
    slots = [[r] for r in range(len(conts))]
    if rows_rest:
        lx = max(len(conts[r]) - 1 for r in rows_rest)
        sel = owner_t[rows_rest]
        cache.batch_select_indices(sel.to(device))
        x = torch.full((len(rows_rest), lx), pad_id, dtype=torch.long)
        xmask = torch.zeros((len(rows_rest), lx), dtype=torch.long)
        for k, r in enumerate(rows_rest):
            inp = conts[r][:-1]
            slots[r] += range(len(conts) + len(rest_targets), len(conts) + len(rest_targets) + len(inp))
            x[k, :len(inp)] = torch.tensor(inp)
            xmask[k, :len(inp)] = 1
            rest_rows += [k] * len(inp)
            rest_cols += range(len(inp))
            rest_targets += conts[r][1:]
        full_mask = torch.cat([mask[sel], xmask], dim=1)
        pos = ctx_len[sel][:, None] + torch.arange(lx)[None, :]
        hidden = base(input_ids=x.to(device), attention_mask=full_mask.to(device), position_ids=pos.to(device),
                      cache=cache, use_cache=True)[0]
        picked.append(hidden[torch.tensor(rest_rows, device=device), torch.tensor(rest_cols, device=device)])
    del cache
    return order, torch.cat(picked), targets + rest_targets, slots

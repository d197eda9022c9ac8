"""Shared prefixes: tokens that several requests begin with are computed once.

Multiple-choice tasks ask for ``(context, choice_1) ... (context, choice_4)``; CrowS-Pairs' two
sentences often agree up to the word that differs. A causal model's states at a position depend
only on the tokens up to it, so the engine runs the common token prefix once with a KV cache,
copies the cache along the batch dimension (one row per request) and runs only the rest of each
request on top of it. Scores at positions inside the prefix are the same for every member and
are projected once. The first pass runs one member (the group's *lead*) whole, not just the
prefix, so a CrowS-Pairs pair is one pass over the first sentence and one over the rest of the
second: the same tokens as a prefix-only pass, in fewer forward calls.

How it stays exact (equal to scoring each request alone, tested to 1e-4 on several architectures):

* prefixes of one batch are right-padded; the padded cache slots are switched off through the
  2-D attention mask, which covers past + new tokens. The rest of each request is right-padded
  too, and its ``position_ids`` are given explicitly (``prefix_length + j``), so it sits at its
  real positions, not after the padding;
* the cache is a plain :class:`transformers.DynamicCache` built without the model config, so no
  layer trims it; the rests run in batches of similar length (little padding), each on a copy of
  the rows of the cache it needs. Sliding-window layers (Gemma 3) compute their window from *cache slot*
  distances, which equal token distances only where there is no padding gap between prefix and
  rest: for such models a batch holds prefixes of one length only (no gap at all).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from workbench.engine.batches import plan_batches
from workbench.engine.padding import pad_rows

# layer kinds whose cached state is plain keys/values that can be copied along the batch
_KV_LAYER_TYPES = {"full_attention", "sliding_attention"}
# A shorter shared prefix saves less than the extra forward pass costs (CrowS-Pairs' empty
# contexts alone are just the BOS token: those pairs share only when their sentences do).
MIN_SHARED_PREFIX = 4
# The prefix pass keeps its KV cache while the rests run, and each batch of rests holds a copy of
# the rows it needs: both are held to token_budget / CACHE_SHARE cached tokens, so the engine's
# peak memory stays below a plain batch of token_budget tokens.
CACHE_SHARE = 8


@dataclass
class Group:
    members: list[int]   # request indices
    n_prefix: int        # length of the token prefix all members' inputs start with


def has_sliding_window(model) -> bool:
    cfg = model.hf.config.get_text_config(decoder=True)
    types = getattr(cfg, "layer_types", None) or []
    return "sliding_attention" in types or bool(getattr(cfg, "sliding_window", None))


def supports_shared_context(model) -> bool:
    """Whether the prefix's KV cache can be reused safely.

    Falls back (False) for models whose base forward takes no ``cache`` or ``position_ids``
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


def _lcp(a, b, n: int) -> int:
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def group_shared(requests: list[tuple[list[int], list[int]]], limit: int,
                 max_rows: int = 64) -> tuple[list[Group], list[int]]:
    """Requests grouped by a common prefix of their input tokens (groups of >= 2) and the rest.

    The inputs of a request are ``context + continuation`` without its last token. Sorted, the
    requests with a common start are neighbours; a group grows while the tokens it saves,
    ``(members - 1) x prefix``, do not shrink, up to ``max_rows`` members. Prefixes shorter than
    ``MIN_SHARED_PREFIX`` are not shared; requests longer than the model window go to the rest
    (the plain path truncates them from the left, which changes every position).
    """
    inputs = {i: list(ctx) + list(cont[:-1]) for i, (ctx, cont) in enumerate(requests)
              if len(ctx) + len(cont) - 1 <= limit}
    order = sorted(inputs, key=lambda i: inputs[i])
    groups, current, n_prefix = [], [], 0

    def close():
        if len(current) >= 2 and n_prefix >= MIN_SHARED_PREFIX:
            groups.append(Group(list(current), n_prefix))

    for i in order:
        if current:
            p = _lcp(inputs[current[0]], inputs[i], min(n_prefix, len(inputs[i])))
            if p >= MIN_SHARED_PREFIX and len(current) < max_rows and len(current) * p >= (len(current) - 1) * n_prefix:
                current.append(i)
                n_prefix = p
                continue
            close()
        current, n_prefix = [i], len(inputs[i])
    if current:
        close()
    shared = {i for g in groups for i in g.members}
    return groups, [i for i in range(len(requests)) if i not in shared]


def plan_shared_batches(groups: list[Group], requests, token_budget: int, max_rows: int,
                        same_length: bool) -> list[list[Group]]:
    """Groups packed into batches for the prefix pass, by prefix length (see
    :func:`workbench.engine.batches.plan_batches`); the rest of each request is batched apart.

    ``same_length``: only prefixes of equal length share a batch (sliding-window models)."""
    lengths = [g.n_prefix if same_length else lead_length(g, requests) for g in groups]
    plan = plan_batches(lengths, token_budget, max_rows, same_length=same_length)
    return [[groups[k] for k in b] for b in plan]


def lead_length(group: Group, requests) -> int:
    """Input tokens of the group's first member, which runs whole in the first pass."""
    ctx, cont = requests[group.members[0]]
    return len(ctx) + len(cont) - 1


def _padded(seqs: list[list[int]], width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    return pad_rows(seqs, pad_id, width)


def run_shared_batch(model, requests, batch: list[Group], pad_id: int, token_budget: int, max_rows: int,
                     lead_whole: bool = True):
    """One batch of groups: a first pass over each group's *lead* (its first member's whole
    input, so that member needs no second pass; or, with ``lead_whole=False``, the shared prefix
    only), then the rest of every other member on a copy of the first ``n_prefix`` cache slots of
    its group, in batches of similar length. Returns (request indices, hidden states at the scored
    positions [n, d], their target ids [n], and per request the rows of those that are its
    tokens, in position order).

    ``lead_whole=False`` is for sliding-window models: the lead's own tokens after the prefix
    would sit, masked, between the prefix and another member's rest, and such layers measure
    their window in cache slots."""
    from transformers import DynamicCache

    device = model.device
    base = model.hf.base_model
    full = {i: list(requests[i][0]) + list(requests[i][1]) for g in batch for i in g.members}
    leads = [full[g.members[0]][:lead_length(g, requests) if lead_whole else g.n_prefix] for g in batch]
    ids, _ = _padded(leads, max(len(p) for p in leads), pad_id)
    cache = DynamicCache()
    # right padding under causal attention needs no mask here (the rest pass masks those slots)
    hidden1 = base(input_ids=ids.to(device),
                   position_ids=torch.arange(ids.shape[1]).expand_as(ids).to(device), cache=cache, use_cache=True)[0]
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    del cache

    # (row, column, target) of every projected position, and each request's share of them
    where1, targets1, order, slots = [], [], [], []
    rest_group, rest_inputs, rest_wanted = [], [], []   # per rest row: its group, inputs, (slot, column)
    for g_idx, g in enumerate(batch):
        n = g.n_prefix
        first = min(len(requests[i][0]) - 1 for i in g.members)   # first scored position in the group
        shared_at = {p: len(targets1) + k for k, p in enumerate(range(first, n - 1))}
        for p in range(first, n - 1):  # inside the prefix: the same target for every member
            where1.append((g_idx, p))
            targets1.append(full[g.members[0]][p + 1])
        for i in g.members:
            a, b = len(requests[i][0]) - 1, len(full[i]) - 2   # scored input positions of request i
            mine = [shared_at[p] for p in range(a, n - 1)]
            if a <= n - 1:  # the prefix's last position predicts the member's own next token
                mine.append(len(targets1))
                where1.append((g_idx, n - 1))
                targets1.append(full[i][n])
            if lead_whole and i == g.members[0]:   # the lead's rest ran in the first pass too
                for p in range(max(a, n), b + 1):
                    mine.append(len(targets1))
                    where1.append((g_idx, p))
                    targets1.append(full[i][p + 1])
            elif b >= n:    # the member's own rest runs on top of the cache: filled in below
                rest_group.append(g_idx)
                rest_inputs.append(full[i][n:b + 1])
                rest_wanted.append([(len(order), len(mine) + k, p - n) for k, p in enumerate(range(max(a, n), b + 1))])
                mine += [None] * (b + 1 - max(a, n))
            order.append(i)
            slots.append(mine)

    # dtype=long: with no member predicting from the prefix's last position, where1 is empty
    picked = [hidden1[torch.tensor([w[0] for w in where1], dtype=torch.long, device=device),
                      torch.tensor([w[1] for w in where1], dtype=torch.long, device=device)]]
    targets = list(targets1)
    n_prefix = torch.tensor([g.n_prefix for g in batch])
    rows_cap = max(2, min(max_rows, token_budget // CACHE_SHARE // max(g.n_prefix for g in batch)))
    for sub in plan_batches([len(r) for r in rest_inputs], token_budget, rows_cap):
        sel = torch.tensor([rest_group[r] for r in sub])
        lp = int(n_prefix[sel].max())  # the longest prefix among these rows: trim the cache to it
        on_device = sel.to(device)  # a generator: one layer's copy at a time, not two of every layer
        sub_cache = DynamicCache(ddp_cache_data=((k[on_device, :, :lp], v[on_device, :, :lp]) for k, v in kv))
        x, xmask = _padded([rest_inputs[r] for r in sub], max(len(rest_inputs[r]) for r in sub), pad_id)
        pos = n_prefix[sel][:, None] + torch.arange(x.shape[1])[None, :]
        # only the group's prefix slots are visible: not the padding, nor the lead's own tokens after it
        prefix_mask = (torch.arange(lp)[None, :] < n_prefix[sel][:, None]).long()
        hidden2 = base(input_ids=x.to(device), attention_mask=torch.cat([prefix_mask, xmask], 1).to(device),
                       position_ids=pos.to(device), cache=sub_cache, use_cache=True)[0]
        rows, cols = [], []
        for row, r in enumerate(sub):
            for req, slot, col in rest_wanted[r]:
                slots[req][slot] = len(targets)
                rows.append(row)
                cols.append(col)
                targets.append(full[order[req]][batch[rest_group[r]].n_prefix + col + 1])
        picked.append(hidden2[torch.tensor(rows, dtype=torch.long, device=device),
                              torch.tensor(cols, dtype=torch.long, device=device)])
    return order, torch.cat(picked), targets, slots

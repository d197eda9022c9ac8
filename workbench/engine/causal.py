"""The causal-LM hot path: batched log-probabilities of token continuations.

Every causal request (a continuation's log-likelihood, a rolling window of a long text) becomes
``(context_ids, continuation_ids)`` and goes through :func:`score_token_requests`, so batching,
truncation and numerics live in one place.

Why it is fast and exact:
* requests are sorted by length and packed into batches under a *token budget* (long sequences
  get small batches, short ones large; a batch closes early rather than pad much), with right
  padding, so no request sees another's padding (causal attention never looks right) and results
  do not depend on batch size or order;
* the output projection runs only at the scored positions (a 49k-vocabulary projection at every
  position is most of the cost of a small model);
* token prefixes shared by several requests (a multiple-choice context, the common start of a
  CrowS-Pairs pair) run once, through the KV cache (:mod:`workbench.engine.shared`);
* log-softmax in float32 (in chunks), under ``torch.inference_mode``.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from workbench.engine import padding, shared
from workbench.engine.batches import DEFAULT_TOKEN_BUDGET, MAX_BATCH, plan_batches
from workbench.families import GENERIC, family_for
from workbench.progress import show_progress
from workbench.validate import context_window

PROJECTION_ROWS = 128  # scored positions per output projection: 128 x 49k float32 = 25 MB
# rows per moments step (token_stats): 16 x 49k float32 = 3 MB stays in cache across the five
# element-wise passes, which then cost ~1/5 of the projection instead of ~1/2 at 128 rows
MOMENT_ROWS = 16


def max_length(model) -> int:
    """The scoring window: the model's context window (:func:`workbench.validate.context_window`),
    at most 32,768 tokens (memory), 2,048 when the config does not say."""
    window = context_window(model)
    return min(window, 1 << 15) if window else 2048


def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The model's own head on chosen hidden states (with Gemma-style final soft-capping): its
    family's head (:mod:`workbench.families`), the generic causal head for any other causal LM."""
    return family_for(model.hf.config.model_type, GENERIC).head(model.hf, hidden)


def _project(model, hidden: torch.Tensor, targets: list[int], moments: bool = False):
    """Log-prob of each target and whether it is the argmax, from hidden states at scored positions.

    ``log_softmax`` in float32, as transformers users and lm-evaluation-harness compute it (a
    ``logit - logsumexp`` form differs from it by ~1e-5 per token on a 49k vocabulary, which adds
    up over a long continuation), in chunks of ``PROJECTION_ROWS`` positions so that peak memory
    stays flat however many positions a batch scores.

    ``moments=True`` also returns, per position, the mean and variance of ``log p(z)`` over the
    vocabulary with ``z`` drawn from the model's own next-token distribution (what Min-K%++
    normalises by), from the same log-softmax: no second forward pass or projection. The
    target log-probs and greedy flags are computed exactly as without it."""
    tgt = torch.tensor(targets, device=hidden.device)
    token_lp, greedy, mean, var = [], [], [], []
    for s in range(0, hidden.shape[0], PROJECTION_ROWS):
        logprobs = torch.log_softmax(output_logits(model, hidden[s:s + PROJECTION_ROWS]).float(), dim=-1)
        t = tgt[s:s + PROJECTION_ROWS]
        token_lp += logprobs.gather(1, t[:, None])[:, 0].cpu().tolist()
        greedy += (logprobs.argmax(-1) == t).cpu().tolist()
        if moments:
            mean_var = [_moments(logprobs[r:r + MOMENT_ROWS]) for r in range(0, logprobs.shape[0], MOMENT_ROWS)]
            mean += torch.cat([m for m, _ in mean_var]).cpu().tolist()
            var += torch.cat([v for _, v in mean_var]).cpu().tolist()
    if moments:
        return token_lp, greedy, mean, var
    return token_lp, greedy


def _moments(logprobs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of log p(z), z ~ p, per row. ``E[(log p - mu)^2]`` directly, not
    ``E[log p^2] - mu^2``, which loses ~1e-4 relative precision in float32 on flat distributions."""
    p = logprobs.exp()
    mu = (p * logprobs).sum(-1)
    return mu, (p * (logprobs - mu[:, None]).square()).sum(-1)


@torch.inference_mode()
def score_token_requests(model, requests: list[tuple[list[int], list[int]]], *,
                         token_budget: int = DEFAULT_TOKEN_BUDGET, progress: bool | None = None,
                         desc: str = "scoring", share_contexts: bool = True,
                         moments: bool = False) -> list[dict]:
    """For each (context_ids, continuation_ids): per-token log-probs and greedy flags.

    ``moments=True`` adds ``logp_mean`` and ``logp_var`` per scored token (see :func:`_project`),
    computed in the same pass; without it the results are exactly as before.

    Inputs longer than the model's window are truncated from the left (the continuation is kept
    whole; a continuation longer than the window is an error upstream). Requests whose tokens
    start alike run their common prefix once (:mod:`workbench.engine.shared`) unless
    ``share_contexts=False`` or the model's cache cannot be reused.
    """
    limit = max_length(model)
    pad_id = padding.pad_id(model.tokenizer)
    results: list[dict | None] = [None] * len(requests)
    groups, rest = [], list(range(len(requests)))
    if share_contexts and shared.supports_shared_context(model):
        groups, rest = shared.group_shared(requests, limit, MAX_BATCH)
    sliding = shared.has_sliding_window(model)
    shared_batches = shared.plan_shared_batches(groups, requests, token_budget // shared.CACHE_SHARE,
                                                MAX_BATCH, same_length=sliding)
    inputs = {i: (list(requests[i][0]) + list(requests[i][1]))[:-1][-limit:] for i in rest}
    plain_batches = [[rest[j] for j in b] for b in plan_batches([len(inputs[i]) for i in rest], token_budget)]
    show = show_progress(progress, default=len(shared_batches) + len(plain_batches) > 4)
    bar = tqdm(total=len(requests), desc=desc, disable=not show, leave=False)
    for batch in shared_batches:
        order, hidden, targets, slots = shared.run_shared_batch(model, requests, batch, pad_id, token_budget,
                                                                 MAX_BATCH, lead_whole=not sliding)
        token_lp, greedy, *mom = _project(model, hidden, targets, moments)
        for i, sl in zip(order, slots):
            results[i] = {"token_logprobs": [token_lp[k] for k in sl], "greedy": [greedy[k] for k in sl]}
            if moments:
                results[i].update(logp_mean=[mom[0][k] for k in sl], logp_var=[mom[1][k] for k in sl])
        bar.update(len(order))
    device = model.device
    base = model.hf.base_model
    for batch in plain_batches:
        width = max(len(inputs[i]) for i in batch)
        ids, _ = padding.pad_rows([inputs[i] for i in batch], pad_id, width)
        rows, cols, targets = [], [], []
        for r, i in enumerate(batch):
            seq = inputs[i]
            n = len(requests[i][1])
            rows += [r] * n
            cols += range(len(seq) - n, len(seq))
            targets += requests[i][1]
        # no attention mask: padding is on the right and attention is causal, so no real token
        # sees it, and without a mask the attention takes its plain causal path
        hidden = base(input_ids=ids.to(device), use_cache=False)[0]
        picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        token_lp, greedy, *mom = _project(model, picked, targets, moments)
        k = 0
        for i in batch:
            n = len(requests[i][1])
            results[i] = {"token_logprobs": token_lp[k:k + n], "greedy": greedy[k:k + n]}
            if moments:
                results[i].update(logp_mean=mom[0][k:k + n], logp_var=mom[1][k:k + n])
            k += n
        bar.update(len(batch))
    bar.close()
    return results

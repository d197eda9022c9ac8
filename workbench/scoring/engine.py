"""The causal-LM hot path: batched log-probabilities of token continuations.

Every causal request (a continuation's log-likelihood, a rolling window of a long text) becomes
``(context_ids, continuation_ids)`` and goes through :func:`score_token_requests`, so batching,
truncation and numerics live in one place.

Why it is fast and exact:
* requests are sorted by length and packed into batches under a *token budget* (long sequences
  get small batches, short ones large), with right padding, so no request sees another's padding
  (causal attention never looks right) and results do not depend on batch size or order;
* the output projection runs only at the scored positions (a 49k-vocabulary projection at every
  position is most of the cost of a small model);
* log-softmax in float32, under ``torch.inference_mode``.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

DEFAULT_TOKEN_BUDGET = 8192
MAX_BATCH = 64


def max_length(model) -> int:
    cfg = model.hf.config
    cfg = getattr(cfg, "text_config", cfg)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return min(v, 1 << 15)
    return 2048


def output_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The model's own head on chosen hidden states (with Gemma-style final soft-capping)."""
    logits = model.hf.get_output_embeddings()(hidden)
    cfg = getattr(model.hf.config, "text_config", model.hf.config)
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def plan_batches(lengths: list[int], token_budget: int, max_batch: int = MAX_BATCH) -> list[list[int]]:
    """Indices grouped into batches, longest first, each padded size x rows <= token_budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current, width = [], [], 0
    for i in order:
        w = max(width, lengths[i])
        if current and (w * (len(current) + 1) > token_budget or len(current) >= max_batch):
            batches.append(current)
            current, w = [], lengths[i]
        current.append(i)
        width = w
    if current:
        batches.append(current)
    return batches


@torch.inference_mode()
def score_token_requests(model, requests: list[tuple[list[int], list[int]]], *,
                         token_budget: int = DEFAULT_TOKEN_BUDGET, progress: bool | None = None,
                         desc: str = "scoring") -> list[dict]:
    """For each (context_ids, continuation_ids): per-token log-probs and greedy flags.

    Inputs longer than the model's window are truncated from the left (the continuation is kept
    whole; a continuation longer than the window is an error upstream).
    """
    limit = max_length(model)
    inputs, n_scored = [], []
    for ctx, cont in requests:
        full = list(ctx) + list(cont)
        inputs.append(full[:-1][-limit:])
        n_scored.append(len(cont))
    results: list[dict | None] = [None] * len(requests)
    batches = plan_batches([len(x) for x in inputs], token_budget)
    pad_id = model.tokenizer.pad_token_id
    pad_id = 0 if pad_id is None else pad_id
    device = model.device
    base = model.hf.base_model
    show = progress if progress is not None else len(batches) > 4
    for batch in tqdm(batches, desc=desc, disable=not show, leave=False):
        width = max(len(inputs[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        rows, cols, targets = [], [], []
        for r, i in enumerate(batch):
            seq = inputs[i]
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            cont = requests[i][1]
            start = len(seq) - n_scored[i]
            rows += [r] * n_scored[i]
            cols += range(start, len(seq))
            targets += cont
        hidden = base(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)[0]
        picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
        logprobs = torch.log_softmax(output_logits(model, picked).float(), dim=-1)
        tgt = torch.tensor(targets, device=device)
        token_lp = logprobs.gather(1, tgt[:, None])[:, 0].cpu().tolist()
        greedy = (logprobs.argmax(-1) == tgt).cpu().tolist()
        k = 0
        for i in batch:
            n = n_scored[i]
            results[i] = {"token_logprobs": token_lp[k:k + n], "greedy": greedy[k:k + n]}
            k += n
    return results

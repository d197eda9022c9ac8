"""Per-token statistics of whole texts: the request kind behind membership inference.

``token_stats(model, texts)`` scores each text from its start (conditioned on BOS, or EOS when
there is no BOS, exactly as ``wb.loglikelihood(model, [("", text)])`` does) and returns, per
token, its log-probability and, with ``moments=True`` (the default), the mean and variance of
``log p(z)`` over the vocabulary under the model's own next-token distribution at that
position. Min-K%++ (Zhang et al. 2024) standardises each token's log-probability by these; they
come from the same forward pass and the same log-softmax as the log-probs
(:func:`workbench.engine.causal.score_token_requests` with ``moments=True``), so they cost a few
vocabulary-sized reductions per token, not a second pass.

Results are cached like other scores; the cache key holds the kind (``"token_stats"``) and the
options (``moments``, ``bos``, ``max_tokens``), so an entry never answers another request kind.

>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2")
>>> df = token_stats(m, ["The cat sat on the mat."], cache=False)
>>> list(df.columns)
['text', 'n_tokens', 'logprob', 'mean_logprob', 'token_logprobs', 'logp_mean', 'logp_var', 'truncated_tokens']
>>> len(df.token_logprobs[0]) == len(df.logp_var[0]) == int(df.n_tokens[0])
True
"""
from __future__ import annotations

from workbench.errors import ContextWindowError
from workbench.engine import causal as engine
from workbench.scoring import tokenize as T
from workbench.scoring.api import _BOS, _COMMON
from workbench.scoring.rows import cached_rows, score_frame
from workbench.engine.batches import DEFAULT_TOKEN_BUDGET
from workbench.results import ScoreFrame
from workbench.validate import BOOL, Int, Optional, check_texts, checked
from workbench.models.checks import check_model

COLUMNS = ["text", "n_tokens", "logprob", "mean_logprob", "token_logprobs", "logp_mean", "logp_var",
           "truncated_tokens"]


@checked(moments=BOOL, max_tokens=Optional(Int(min=1)), bos=_BOS, **_COMMON)
def token_stats(model, texts, *, moments: bool = True, max_tokens: int | None = None, bos="auto",
                token_budget: int = DEFAULT_TOKEN_BUDGET, cache: bool = True, progress=None):
    """Per-token log-probs (and, with ``moments``, the per-position mean and variance of the
    log-probs over the vocabulary) of each text, scored from its start.

    ``max_tokens``: score only each text's first ``max_tokens`` tokens (the number cut is in
    ``truncated_tokens``). Without it, a text longer than the model's scoring window is refused
    (:class:`~workbench.errors.ContextWindowError`): membership scores of a cut text are not
    those of the text.

    Returns one row per text: text, n_tokens, logprob (sum), mean_logprob, token_logprobs (list),
    logp_mean and logp_var (lists, empty when ``moments=False``), truncated_tokens.
    """
    check_model(model, ("causal",), "token_stats", needs="token_moments" if moments else "token_logprobs")
    texts = check_texts(texts, "token_stats")
    add_bos = T.resolve_bos(model.tokenizer, bos)
    limit = engine.max_length(model)
    options = {"bos": add_bos, "moments": moments, "max_tokens": max_tokens}

    def compute(batch):
        pairs = T.encode_pairs(model.tokenizer, [("", t) for t in batch], add_bos)
        cut = []
        for i, (ctx, cont) in enumerate(pairs):
            keep = min(len(cont), max_tokens) if max_tokens else len(cont)
            if len(ctx) + keep - 1 > limit:
                raise ContextWindowError(
                    f"text {i} is {keep} tokens{' (after max_tokens)' if max_tokens else ''}, longer than the "
                    f"window of {limit} tokens that {model.name} is scored with; pass max_tokens="
                    f"{limit - len(ctx) + 1} (or less) to score each text's first tokens, or split the long texts")
            cut.append(len(cont) - keep)
            pairs[i] = (ctx, cont[:keep])
        scored = model.backend.score_tokens(model, pairs, token_budget=token_budget, progress=progress,
                                      desc="token stats", moments=moments)
        return [{"token_logprobs": s["token_logprobs"], "logp_mean": s.get("logp_mean", []),
                 "logp_var": s.get("logp_var", []), "truncated_tokens": c} for s, c in zip(scored, cut)]

    rows = cached_rows(model, "token_stats", options, texts, compute, cache)
    out = []
    for text, r in zip(texts, rows):
        lp = r["token_logprobs"]
        out.append({"text": text, "n_tokens": len(lp), "logprob": float(sum(lp)),
                    "mean_logprob": float(sum(lp)) / max(len(lp), 1), **r})
    df = score_frame(out, model, options)
    return ScoreFrame.of(df[COLUMNS] if out else df.reindex(columns=COLUMNS))

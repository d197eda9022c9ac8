"""The scoring engine's public requests. Probes and benchmarks call only these, so batching,
caching and tokenisation conventions live in one place.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2")
>>> df = wb.loglikelihood(m, [("The doctor said", " hello"), ("", "The cat sat.")])
>>> list(df.columns[:4])
['context', 'continuation', 'logprob', 'n_tokens']
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.scoring import tokenize as T
from workbench.scoring.cache import ScoreCache, request_key
from workbench.scoring.embedding import embed_rows
from workbench.scoring import engine
from workbench.scoring.engine import DEFAULT_TOKEN_BUDGET, score_token_requests
from workbench.scoring.generation import generate_rows
from workbench.scoring.masked import fill_mask_rows, pseudo_loglikelihood_rows


def _check_model(model, kinds: tuple[str, ...], what: str):
    from workbench.models.model import Model
    if not isinstance(model, Model):
        raise InvalidInputError(f"{what} needs a workbench Model; got {type(model).__name__}. "
                                "Load one with wb.load_model(...) or wrap transformers objects with "
                                "wb.Model.from_hf(hf_model, tokenizer)")
    if model.kind not in kinds:
        hint = {"masked": "use wb.pseudo_loglikelihood for masked LMs",
                "causal": "use wb.loglikelihood / wb.perplexity for causal LMs",
                "encoder": "this model has no language-model head; load one with a head"}[model.kind]
        raise WrongModelKindError(f"{what} needs a {' or '.join(kinds)} model, but {model.name} is a "
                                  f"{model.kind} model: {hint}")


def _check_texts(texts, what: str, allow_empty: bool = False) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError(f"{what} takes a list of strings; wrap a single string in a list: [text]")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidInputError(f"{what}: item {i} is {type(t).__name__}, not a string")
        if not allow_empty and not t.strip():
            raise InvalidInputError(f"{what}: item {i} is empty; remove it or give text to score")
    return texts


def _cached(model, kind: str, options: dict, requests: list, compute, cache: bool) -> list:
    """Look every request up in the result cache; compute only the misses (in one batch)."""
    store = ScoreCache(enabled=cache)
    keys = [request_key(model.state_id, kind, options, r) for r in requests]
    found = store.get_many(sorted(set(keys)))
    first = {}  # key -> first request index with it: duplicates are computed once
    for i, k in enumerate(keys):
        if k not in found:
            first.setdefault(k, i)
    if first:
        computed = compute([requests[i] for i in first.values()])
        new = {k: row for k, row in zip(first, computed)}
        store.put_many(new)
        found.update(new)
    return [found[k] for k in keys]


def _frame(rows: list[dict], model, options: dict) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df.attrs["model"] = model.name
    df.attrs["fingerprint_id"] = model.fingerprint_id
    df.attrs["state_id"] = model.state_id
    df.attrs["scoring"] = options
    return df


def loglikelihood(model, requests, *, bos="auto", token_budget: int = DEFAULT_TOKEN_BUDGET,
                  cache: bool = True, progress=None, share_contexts: bool = True) -> pd.DataFrame:
    """Log-likelihood of each continuation given its context (causal LMs).

    Parameters
    ----------
    requests : list of (context, continuation) string pairs. An empty context scores the
        continuation from the start of text (conditioned on BOS, or EOS when there is no BOS).
    bos : "auto" (the tokenizer's own convention), True or False. See
        :mod:`workbench.scoring.tokenize` for the exact tokenisation rules.
    token_budget : most padded tokens per batch; results do not depend on it.
    cache : reuse and store results in the persistent cache (keyed by model state and options).
    share_contexts : run a token prefix shared by several requests (a multiple-choice context,
        the common start of two sentences) once and reuse its KV cache; results are the same
        within 1e-4 either way.

    Returns
    -------
    DataFrame, one row per request in order: context, continuation, logprob (sum), n_tokens,
    mean_logprob, is_greedy, token_logprobs (list), tokens (list). ``df.attrs`` records the
    model fingerprint and the scoring options.
    """
    _check_model(model, ("causal",), "loglikelihood")
    if isinstance(requests, tuple) and len(requests) == 2 and all(isinstance(x, str) for x in requests):
        raise InvalidInputError("loglikelihood takes a list of (context, continuation) pairs; "
                                "wrap a single pair in a list: [(context, continuation)]")
    reqs = []
    for i, r in enumerate(requests):
        if not (isinstance(r, (tuple, list)) and len(r) == 2 and all(isinstance(x, str) for x in r)):
            raise InvalidInputError(f"request {i} must be a (context, continuation) pair of strings, got {r!r}")
        if not r[1]:
            raise InvalidInputError(f"request {i} has an empty continuation: there is nothing to score")
        reqs.append((r[0], r[1]))
    add_bos = T.resolve_bos(model.tokenizer, bos)
    options = {"bos": add_bos, "split": "lm-eval whole-string split"}
    limit = engine.max_length(model)

    def compute(batch):
        pairs = T.encode_pairs(model.tokenizer, batch, add_bos)
        for (c, x), (_, cont) in zip(batch, pairs):
            if len(cont) > limit:
                raise InvalidInputError(f"a continuation of {len(cont)} tokens is longer than the model's "
                                        f"window ({limit}); use wb.perplexity for long texts")
        scored = score_token_requests(model, pairs, token_budget=token_budget, progress=progress,
                                      share_contexts=share_contexts)
        rows = []
        for (_, cont), s in zip(pairs, scored):
            lp = s["token_logprobs"]
            rows.append({"logprob": float(sum(lp)), "n_tokens": len(lp), "is_greedy": bool(all(s["greedy"])),
                         "token_logprobs": lp,
                         "tokens": model.tokenizer.convert_ids_to_tokens(cont)})
        return rows

    rows = _cached(model, "loglikelihood", options, reqs, compute, cache)
    out = [{"context": c, "continuation": x, **r, "mean_logprob": r["logprob"] / r["n_tokens"]}
           for (c, x), r in zip(reqs, rows)]
    cols = ["context", "continuation", "logprob", "n_tokens", "mean_logprob", "is_greedy", "token_logprobs", "tokens"]
    return _frame(out, model, options)[cols] if out else pd.DataFrame(columns=cols)


def perplexity(model, texts, *, max_length: int | None = None, stride: int | None = None, bos="auto",
               token_budget: int = DEFAULT_TOKEN_BUDGET, cache: bool = True, progress=None) -> pd.DataFrame:
    """Rolling log-likelihood and perplexity of whole texts with a sliding window.

    Every token is scored exactly once; windows hold at most ``max_length`` tokens (default: the
    model's window) and advance by ``stride`` (default: ``max_length``, i.e. disjoint windows as
    lm-evaluation-harness; smaller strides give tokens more context at more cost). The first
    token is conditioned on the BOS (or EOS) token.

    Returns one row per text: text, logprob, n_tokens, ppl, n_bytes, n_words, bits_per_byte,
    word_perplexity.
    """
    _check_model(model, ("causal",), "perplexity")
    texts = _check_texts(texts, "perplexity")
    window = min(max_length or engine.max_length(model), engine.max_length(model))
    stride = stride or window
    if not 1 <= stride <= window:
        raise InvalidInputError(f"stride must be between 1 and max_length ({window}), got {stride}")
    prefix = T.prefix_token_id(model.tokenizer)
    options = {"max_length": window, "stride": stride, "prefix": prefix, "bos": bos}

    def compute(batch):
        windows, owner = [], []
        for t_idx, text in enumerate(batch):
            for w in T.rolling_windows(T.encode(model.tokenizer, text), prefix, window, stride):
                windows.append(w)
                owner.append(t_idx)
        scored = score_token_requests(model, windows, token_budget=token_budget, progress=progress,
                                      desc="perplexity")
        sums, counts = [0.0] * len(batch), [0] * len(batch)
        for o, s in zip(owner, scored):
            sums[o] += sum(s["token_logprobs"])
            counts[o] += len(s["token_logprobs"])
        return [{"logprob": s, "n_tokens": n} for s, n in zip(sums, counts)]

    rows = _cached(model, "perplexity", options, texts, compute, cache)
    out = []
    for text, r in zip(texts, rows):
        n_bytes, n_words = len(text.encode("utf-8")), len(text.split())
        out.append({"text": text, "logprob": r["logprob"], "n_tokens": r["n_tokens"],
                    "ppl": math.exp(-r["logprob"] / r["n_tokens"]), "n_bytes": n_bytes, "n_words": n_words,
                    "bits_per_byte": -r["logprob"] / (n_bytes * math.log(2)),
                    "word_perplexity": math.exp(-r["logprob"] / max(n_words, 1))})
    return _frame(out, model, options)


def pseudo_loglikelihood(model, sentences, *, positions=None, token_budget: int = DEFAULT_TOKEN_BUDGET,
                         cache: bool = True, progress=None) -> pd.DataFrame:
    """Pseudo-log-likelihood of each sentence under a masked LM (Salazar et al. 2020).

    ``positions``: optional list (one entry per sentence, ``None`` for all) of token positions
    to score, indexing the tokenised sentence *with* its special tokens (see
    :func:`workbench.scoring.masked.shared_token_positions` for CrowS-Pairs' shared tokens).

    Returns one row per sentence: sentence, pll, n_tokens, mean_pll, token_logprobs, positions, tokens.
    """
    _check_model(model, ("masked",), "pseudo_loglikelihood")
    sentences = _check_texts(sentences, "pseudo_loglikelihood")
    if positions is not None and len(positions) != len(sentences):
        raise InvalidInputError(f"positions has {len(positions)} entries for {len(sentences)} sentences; "
                                "give one list (or None) per sentence")
    reqs = [(s, None if positions is None or positions[i] is None else list(map(int, positions[i])))
            for i, s in enumerate(sentences)]

    def compute(batch):
        return pseudo_loglikelihood_rows(model, [s for s, _ in batch], [p for _, p in batch],
                                         token_budget=token_budget, progress=progress)

    rows = _cached(model, "pll", {}, reqs, compute, cache)
    out = [{"sentence": s, **r, "mean_pll": r["pll"] / max(r["n_tokens"], 1)} for (s, _), r in zip(reqs, rows)]
    return _frame(out, model, {"method": "pseudo-log-likelihood, one mask at a time"})


def fill_mask(model, texts, *, top_k: int = 5, mask: str = "[M]", cache: bool = True, progress=None) -> pd.DataFrame:
    """Top-k fillers of a single ``mask`` placeholder per text (masked LMs), as HONEST scores them.
    Returns one row per (text, rank): text, rank, token, token_id, logprob."""
    _check_model(model, ("masked",), "fill_mask")
    texts = _check_texts(texts, "fill_mask")
    if top_k < 1:
        raise InvalidInputError(f"top_k must be at least 1, got {top_k}")

    def compute(batch):
        rows = fill_mask_rows(model, batch, top_k, mask, progress=progress)
        return [[r for r in rows if r["text"] == t] for t in batch]

    per_text = _cached(model, "fill_mask", {"top_k": top_k, "mask": mask}, texts, compute, cache)
    return _frame([r for rows in per_text for r in rows], model, {"top_k": top_k})


def generate(model, prompts, *, max_new_tokens: int = 32, seed: int = 0, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int | None = None,
             num_return_sequences: int = 1, batch_size: int = 8, chat: bool = False,
             cache: bool = True, progress=None) -> pd.DataFrame:
    """Seeded generation (greedy by default). ``chat=True`` wraps each prompt in the tokenizer's
    chat template as a user turn. Returns one row per completion: prompt, sample, completion,
    n_new_tokens, seed."""
    _check_model(model, ("causal",), "generate")
    prompts = _check_texts(prompts, "generate")
    if max_new_tokens < 1:
        raise InvalidInputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if num_return_sequences > 1 and not do_sample:
        raise InvalidInputError("num_return_sequences > 1 needs do_sample=True (greedy decoding gives one answer)")
    options = dict(max_new_tokens=max_new_tokens, seed=seed, do_sample=do_sample, temperature=temperature,
                   top_p=top_p, top_k=top_k, num_return_sequences=num_return_sequences,
                   batch_size=batch_size, chat=chat)
    # sampling depends on batch composition (see generation.py), so the whole call is one cache entry
    key_request = [prompts] if do_sample else prompts

    def compute(batch):
        if do_sample:
            return [generate_rows(model, batch[0], **options, progress=progress)]
        rows = generate_rows(model, batch, **options, progress=progress)
        return [[r] for r in rows]

    parts = _cached(model, "generate", options, key_request, compute, cache)
    return _frame([r for rows in parts for r in rows], model, options)


def embed(model, sentences, *, pooling: str | None = None, layer: int = -1, normalize: bool = False,
          batch_size: int = 32, progress=None) -> np.ndarray:
    """Sentence embeddings, shape [n, d_model]. Default pooling: "mean" for encoders and masked
    LMs, "last" (last real token) for causal LMs."""
    _check_model(model, ("causal", "masked", "encoder"), "embed")
    sentences = _check_texts(sentences, "embed")
    pooling = pooling or ("last" if model.kind == "causal" else "mean")
    return embed_rows(model, sentences, pooling, layer, normalize, batch_size, progress)

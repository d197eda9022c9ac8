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
import warnings

import numpy as np
import pandas as pd

from workbench.errors import ContextWindowError, InvalidInputError, InvalidTypeError, TruncationWarning
from workbench.engine import causal as engine
from workbench.engine.batches import DEFAULT_TOKEN_BUDGET
from workbench.engine.masked import fill_mask_rows, pseudo_loglikelihood_rows
from workbench.engine.prompts import prompt_text
from workbench.models.checks import check_model
from workbench.results import ScoreFrame
from workbench.scoring.chat import chat_requests, check_format
from workbench.scoring import tokenize as T
from workbench.scoring.rows import cached_rows, score_frame
from workbench.validate import (BOOL, Int, OneOf, Optional, Real, Rule, check_bool, check_context, check_pairs,
                                check_texts, checked, context_window)
# the module, not its names: importing it first (workbench.vision.scoring) runs this package,
# which reaches this line while vision.scoring is still being read
from workbench.vision import scoring as vision


def _check_bos(name, value):
    if isinstance(value, str) and value == "auto":
        return value
    try:
        return check_bool(name, value)
    except InvalidTypeError:
        raise InvalidTypeError(f"{name} must be 'auto', True or False, got {value!r}") from None


# rules shared by every request kind
_COMMON = dict(token_budget=Int(min=1), cache=BOOL, progress=Optional(BOOL))
_BOS = Rule(_check_bos, "'auto' or bool")


def _token_lengths(model, texts: list[str], add_special_tokens: bool = True) -> list[int]:
    """Token counts of many texts in one tokenizer call (for the window checks at the door)."""
    if not texts:
        return []
    return [len(ids) for ids in model.tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]]


def _check_fit(model, lengths: list[int], what: str, hint: str, extra: int = 0, extra_text: str = "") -> None:
    """Refuse the longest of ``lengths`` (+ ``extra`` tokens) if it is past the model's window."""
    if lengths:
        i = max(range(len(lengths)), key=lengths.__getitem__)
        label = f"{what} {i} ({lengths[i]} tokens{extra_text})" if extra_text else f"{what} {i}"
        check_context(model, lengths[i] + extra, label, hint)


def _all_greedy(flags: list) -> bool | None:
    """Whether every token is the argmax: False as soon as one is not, None (unknown) when the
    backend could not tell for some token (``None`` flags) and none is known not to be."""
    if any(f is not None and not f for f in flags):
        return False
    return None if any(f is None for f in flags) else True


def _cut(ctx: list, cont: list, limit: int) -> int:
    """Context tokens the engine drops to fit the window (inputs are ctx + cont[:-1], cut from
    the left; see :func:`workbench.engine.causal.score_token_requests`)."""
    return max(0, len(ctx) + len(cont) - 1 - limit)


@checked(bos=_BOS, share_contexts=BOOL, format=OneOf("raw", "chat"), **_COMMON)
def loglikelihood(model, requests, *, bos="auto", token_budget: int = DEFAULT_TOKEN_BUDGET,
                  cache: bool = True, progress=None, share_contexts: bool = True, format: str = "raw",
                  system_prompt: str | None = None, images=None) -> pd.DataFrame:
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
    format : "raw" (the text as given) or "chat": each context is the user turn of the model's
        chat template (``system_prompt``: an optional system turn), the continuation the
        assistant's reply; see :mod:`workbench.scoring.chat` for the exact token accounting.
        The ``context`` column then holds the rendered prompt that was scored.
    images : vision-language models only: one list of PIL images per request, scored through
        the model's processor (:mod:`workbench.vision.scoring` has the conventions; the cache
        keys on the pixels). Adds an ``images`` column (the images' hashes).

    Over-long requests: a context that does not fit in the model's window with its continuation
    loses its first tokens (the continuation is always scored whole; one longer than the window
    is an error). This is warned once per call (:class:`~workbench.errors.TruncationWarning`)
    and recorded: ``truncated_tokens`` per row, ``attrs["truncated_rows"]`` (their positions).

    Returns
    -------
    DataFrame, one row per request in order: context, continuation, logprob (sum), n_tokens,
    mean_logprob, is_greedy (None where the backend cannot tell: a server that sends no
    ``top_logprobs``), token_logprobs (list), tokens (list), truncated_tokens (context
    tokens dropped to fit the window; 0 for almost every request). ``df.attrs`` records the
    model fingerprint, the scoring options and the window.
    """
    if images is not None or getattr(model, "kind", None) == "vision-language":
        vision.check_vlm(model, "loglikelihood")
        return vision.loglikelihood_images(model, requests, images, format=format, system_prompt=system_prompt,
                                           cache=cache)
    check_model(model, ("causal",), "loglikelihood", needs="token_logprobs")
    reqs = check_pairs(requests, "loglikelihood")
    check_format(format, model, "loglikelihood", system_prompt)
    if format == "chat":
        if bos is True:
            raise InvalidInputError("bos=True with format='chat' would add a BOS before the chat template, "
                                    "which writes its own special tokens; leave bos='auto'")
        # the rendered prompt is the request (and the cache key): raw and chat never share entries
        reqs = chat_requests(model, reqs, system_prompt)
        add_bos, keep = False, True
        options = {"bos": False, "split": "chat: context tokenised whole", "format": "chat"}
    else:
        add_bos, keep = T.resolve_bos(model.tokenizer, bos), False
        options = {"bos": add_bos, "split": "lm-eval whole-string split"}
    limit = engine.max_length(model)

    def compute(batch):
        pairs = T.encode_pairs(model.tokenizer, batch, add_bos, keep_context=keep)
        for i, (_, cont) in enumerate(pairs):
            if len(cont) > limit:  # the scoring window (engine.max_length), which may be below the model's
                raise ContextWindowError(f"the continuation of request {i} is {len(cont)} tokens, longer than the "
                                         f"window of {limit} tokens that {model.name} is scored with; use "
                                         "wb.perplexity for long texts")
        scored = model.backend.score_tokens(model, pairs, token_budget=token_budget, progress=progress,
                                            share_contexts=share_contexts)
        rows = []
        for (ctx, cont), s in zip(pairs, scored):
            lp = s["token_logprobs"]
            rows.append({"logprob": float(sum(lp)), "n_tokens": len(lp), "is_greedy": _all_greedy(s["greedy"]),
                         "token_logprobs": lp,
                         "tokens": model.tokenizer.convert_ids_to_tokens(cont),
                         "truncated_tokens": _cut(ctx, cont, limit)})
        return rows

    rows = cached_rows(model, "loglikelihood", options, reqs, compute, cache)
    # entries cached before truncated_tokens was recorded: count it again (tokenising only; the
    # scores do not change, so the cache stays valid and ENGINE_VERSION stays as it is)
    old = [i for i, r in enumerate(rows) if "truncated_tokens" not in r]
    if old:
        for i, (ctx, cont) in zip(old, T.encode_pairs(model.tokenizer, [reqs[i] for i in old], add_bos,
                                                      keep_context=keep)):
            rows[i] = {**rows[i], "truncated_tokens": _cut(ctx, cont, limit)}
    out = [{"context": c, "continuation": x, **r, "mean_logprob": r["logprob"] / r["n_tokens"]}
           for (c, x), r in zip(reqs, rows)]
    cols = ["context", "continuation", "logprob", "n_tokens", "mean_logprob", "is_greedy", "token_logprobs", "tokens",
            "truncated_tokens"]
    df = ScoreFrame.of(score_frame(out, model, options)[cols]) if out else ScoreFrame(columns=cols)
    cut = [i for i, r in enumerate(rows) if r["truncated_tokens"]]
    df.attrs["context_window"] = limit
    df.attrs["truncated_rows"] = cut
    if cut:
        most = max(rows[i]["truncated_tokens"] for i in cut)
        warnings.warn(TruncationWarning(
            f"{len(cut)} of {len(rows)} requests do not fit in {model.name}'s window of {limit} tokens: "
            f"their contexts lost their first tokens (up to {most}; continuations are scored whole). "
            "See the truncated_tokens column and attrs['truncated_rows']; shorten those contexts to "
            "score them in full."), stacklevel=3)
    return df


@checked(max_length=Optional(Int(min=1)), stride=Optional(Int(min=1)), bos=_BOS, **_COMMON)
def perplexity(model, texts, *, max_length: int | None = None, stride: int | None = None, bos="auto",
               token_budget: int = DEFAULT_TOKEN_BUDGET, cache: bool = True, progress=None) -> pd.DataFrame:
    """Rolling log-likelihood and perplexity of whole texts with a sliding window.

    Every token is scored exactly once; windows hold at most ``max_length`` tokens (default: the
    model's window) and advance by ``stride`` (default: ``max_length``, i.e. disjoint windows as
    lm-evaluation-harness; smaller strides give tokens more context at more cost). The first
    token is conditioned on the BOS (or EOS) token. A ``max_length`` beyond the model's window is
    lowered to it, with a :class:`~workbench.errors.TruncationWarning`.

    Returns one row per text: text, logprob, n_tokens, ppl, n_bytes, n_words, bits_per_byte,
    word_perplexity, truncated_tokens (tokens not scored: always 0, as the rolling windows score
    every token; the column is there so that both long-text requests report it alike).
    """
    check_model(model, ("causal",), "perplexity", needs="token_logprobs")
    texts = check_texts(texts, "perplexity")
    limit = engine.max_length(model)
    if max_length is not None and max_length > limit:
        warnings.warn(TruncationWarning(
            f"max_length={max_length} is longer than {model.name}'s window of {limit} tokens; windows hold "
            f"{limit} tokens (every token is still scored, with less context). Pass max_length<={limit}."),
            stacklevel=3)
    window = min(max_length or limit, limit)
    if stride is not None and stride > window:
        raise InvalidInputError(f"stride must be between 1 and max_length ({window}), got {stride}")
    stride = stride or window
    prefix = T.prefix_token_id(model.tokenizer)
    options = {"max_length": window, "stride": stride, "prefix": prefix, "bos": bos}

    def compute(batch):
        windows, owner = [], []
        for t_idx, text in enumerate(batch):
            for w in T.rolling_windows(T.encode(model.tokenizer, text), prefix, window, stride):
                windows.append(w)
                owner.append(t_idx)
        scored = model.backend.score_tokens(model, windows, token_budget=token_budget, progress=progress,
                                            desc="perplexity")
        sums, counts = [0.0] * len(batch), [0] * len(batch)
        for o, s in zip(owner, scored):
            sums[o] += sum(s["token_logprobs"])
            counts[o] += len(s["token_logprobs"])
        return [{"logprob": s, "n_tokens": n} for s, n in zip(sums, counts)]

    rows = cached_rows(model, "perplexity", options, texts, compute, cache)
    out = []
    for text, r in zip(texts, rows):
        n_bytes, n_words = len(text.encode("utf-8")), len(text.split())
        out.append({"text": text, "logprob": r["logprob"], "n_tokens": r["n_tokens"],
                    "ppl": math.exp(-r["logprob"] / r["n_tokens"]), "n_bytes": n_bytes, "n_words": n_words,
                    "bits_per_byte": -r["logprob"] / (n_bytes * math.log(2)),
                    "word_perplexity": math.exp(-r["logprob"] / max(n_words, 1)), "truncated_tokens": 0})
    df = score_frame(out, model, options)
    df.attrs["context_window"] = limit
    df.attrs["truncated_rows"] = []
    return df


@checked(**_COMMON)
def pseudo_loglikelihood(model, sentences, *, positions=None, token_budget: int = DEFAULT_TOKEN_BUDGET,
                         cache: bool = True, progress=None) -> pd.DataFrame:
    """Pseudo-log-likelihood of each sentence under a masked LM (Salazar et al. 2020).

    ``positions``: optional list (one entry per sentence, ``None`` for all) of token positions
    to score, indexing the tokenised sentence *with* its special tokens (see
    :func:`workbench.engine.masked.shared_token_positions` for CrowS-Pairs' shared tokens).
    A sentence longer than the model's window is refused
    (:class:`~workbench.errors.ContextWindowError`) before anything runs.

    Returns one row per sentence: sentence, pll, n_tokens, mean_pll, token_logprobs, positions, tokens.
    """
    check_model(model, ("masked",), "pseudo_loglikelihood", needs="masked_logprobs")
    sentences = check_texts(sentences, "pseudo_loglikelihood")
    if positions is not None and len(positions) != len(sentences):
        raise InvalidInputError(f"positions has {len(positions)} entries for {len(sentences)} sentences; "
                                "give one list (or None) per sentence")
    _check_fit(model, _token_lengths(model, sentences), "sentence",
               "Split it into sentences that fit, or score it with a model that has a longer window.")
    reqs = [(s, None if positions is None or positions[i] is None else list(map(int, positions[i])))
            for i, s in enumerate(sentences)]

    def compute(batch):
        return pseudo_loglikelihood_rows(model, [s for s, _ in batch], [p for _, p in batch],
                                         token_budget=token_budget, progress=progress)

    rows = cached_rows(model, "pll", {}, reqs, compute, cache)
    out = [{"sentence": s, **r, "mean_pll": r["pll"] / max(r["n_tokens"], 1)} for (s, _), r in zip(reqs, rows)]
    return score_frame(out, model, {"method": "pseudo-log-likelihood, one mask at a time"})


@checked(top_k=Int(min=1), cache=BOOL, progress=Optional(BOOL))
def fill_mask(model, texts, *, top_k: int = 5, mask: str = "[M]", cache: bool = True, progress=None) -> pd.DataFrame:
    """Top-k fillers of a single ``mask`` placeholder per text (masked LMs), as HONEST scores them.
    Returns one row per (text, rank): text, rank, token, token_id, logprob."""
    check_model(model, ("masked",), "fill_mask", needs="masked_logprobs")
    texts = check_texts(texts, "fill_mask")
    if not isinstance(mask, str) or not mask:
        raise InvalidInputError(f"mask must be a non-empty placeholder string such as '[M]', got {mask!r}")
    _check_fit(model, _token_lengths(model, [t.replace(mask, model.tokenizer.mask_token or mask) for t in texts]),
               "text", "Shorten the text around the mask.")

    def compute(batch):
        rows = fill_mask_rows(model, batch, top_k, mask, progress=progress)
        return [[r for r in rows if r["text"] == t] for t in batch]

    per_text = cached_rows(model, "fill_mask", {"top_k": top_k, "mask": mask}, texts, compute, cache)
    return score_frame([r for rows in per_text for r in rows], model, {"top_k": top_k})


@checked(max_new_tokens=Int(min=1), seed=Int(min=0), do_sample=BOOL, temperature=Real(ge=0),
         top_p=Real(gt=0, le=1), top_k=Optional(Int(min=1)), num_return_sequences=Int(min=1),
         batch_size=Int(min=1), chat=BOOL, cache=BOOL, progress=Optional(BOOL))
def generate(model, prompts, *, max_new_tokens: int = 32, seed: int = 0, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int | None = None,
             num_return_sequences: int = 1, batch_size: int = 8, chat: bool = False,
             cache: bool = True, progress=None, system_prompt: str | None = None, images=None) -> pd.DataFrame:
    """Seeded generation (greedy by default). ``chat=True`` wraps each prompt in the tokenizer's
    chat template as a user turn (after a system turn ``system_prompt``, if given), as
    :mod:`workbench.scoring.chat` renders it. Returns one row per completion: prompt, sample,
    completion, n_new_tokens, seed.

    A prompt whose tokens plus ``max_new_tokens`` do not fit in the model's window is refused
    before anything runs (:class:`~workbench.errors.ContextWindowError`). ``images``: for
    vision-language models, one list of PIL images per prompt (:mod:`workbench.vision.scoring`)."""
    if images is not None or getattr(model, "kind", None) == "vision-language":  # workbench.vision.scoring
        vision.check_vlm(model, "generate")
        if num_return_sequences != 1:
            raise InvalidInputError("num_return_sequences > 1 is not supported with images; call again with other seeds")
        return vision.generate_images(model, prompts, images, max_new_tokens=max_new_tokens, seed=seed,
                                      do_sample=do_sample, temperature=temperature, top_p=top_p, top_k=top_k,
                                      chat=chat, system_prompt=system_prompt, cache=cache)
    check_model(model, ("causal",), "generate", needs="generate")
    prompts = check_texts(prompts, "generate")
    if do_sample and temperature == 0:  # sampling divides the logits by the temperature
        raise InvalidInputError("temperature must be greater than 0 when do_sample=True; for greedy decoding "
                                "use do_sample=False")
    if num_return_sequences > 1 and not do_sample:
        raise InvalidInputError("num_return_sequences > 1 needs do_sample=True (greedy decoding gives one answer)")
    check_format("chat" if chat else "raw", None, "generate", system_prompt)  # system_prompt needs chat=True
    texts = [prompt_text(model.tokenizer, p, chat, system_prompt) for p in prompts]
    _check_fit(model, _token_lengths(model, texts, add_special_tokens=not chat), "prompt",
               "Shorten the prompt or ask for fewer max_new_tokens.", extra=max_new_tokens,
               extra_text=f" plus max_new_tokens={max_new_tokens}")
    options = dict(max_new_tokens=max_new_tokens, seed=seed, do_sample=do_sample, temperature=temperature,
                   top_p=top_p, top_k=top_k, num_return_sequences=num_return_sequences,
                   batch_size=batch_size, chat=chat)
    if system_prompt is not None:  # only when given, so the cache keys of other calls are unchanged
        options["system_prompt"] = system_prompt
    # sampling depends on batch composition (see generation.py), so the whole call is one cache entry
    key_request = [prompts] if do_sample else prompts

    def compute(batch):
        if do_sample:
            return [model.backend.generate(model, batch[0], **options, progress=progress)]
        rows = model.backend.generate(model, batch, **options, progress=progress)
        return [[r] for r in rows]

    parts = cached_rows(model, "generate", options, key_request, compute, cache)
    return score_frame([r for rows in parts for r in rows], model, options)


@checked(pooling=Optional(OneOf("mean", "cls", "last")), layer=Int(), normalize=BOOL, batch_size=Int(min=1),
         progress=Optional(BOOL), truncate=BOOL)
def embed(model, sentences, *, pooling: str | None = None, layer: int = -1, normalize: bool = False,
          batch_size: int = 32, progress=None, truncate: bool = False) -> np.ndarray:
    """Sentence embeddings, shape [n, d_model]. Default pooling: "mean" for encoders and masked
    LMs, "last" (last real token) for causal LMs. ``layer`` indexes the hidden states (0: the
    embeddings, -1: the last layer's output). A sentence longer than the model's window is refused
    (:class:`~workbench.errors.ContextWindowError`) unless ``truncate=True``, which embeds its
    first tokens only (as sentence-transformers does)."""
    check_model(model, ("causal", "masked", "encoder"), "embed", needs="embed")
    sentences = check_texts(sentences, "embed")
    n = model.n_layers
    if not -(n + 1) <= layer <= n:
        raise InvalidInputError(f"layer {layer} out of range: {model.name} has {n} layers, so layer indexes its "
                                f"{n + 1} hidden states 0..{n} (0 = embeddings) or -{n + 1}..-1 from the end")
    max_tokens = context_window(model) if truncate else None
    if not truncate:
        _check_fit(model, _token_lengths(model, sentences), "sentence",
                   "Split it, or pass truncate=True to embed its first tokens only.")
    pooling = pooling or ("last" if model.kind == "causal" else "mean")
    return model.backend.embed(model, sentences, pooling, layer, normalize, batch_size, progress, max_tokens=max_tokens)

"""The scoring choices probes share, each a thin layer over :mod:`workbench.scoring.api`.

A sentence's score is its log-likelihood under the model:

- causal LMs: ``wb.loglikelihood(model, [("", sentence)])``: every token conditioned on the text
  before it, the first one on BOS (or EOS), as lm-evaluation-harness scores a sentence with an
  empty context (``start="bos"``). ``start="first_word"`` instead conditions on the first word
  and scores the rest: a defensible alternative that removes the unconditioned-start term.
- masked LMs: pseudo-log-likelihood (``wb.pseudo_loglikelihood``), over all tokens or the given
  positions (CrowS-Pairs: the tokens both sentences share).

``aggregate="sum"`` (total log-probability, what the papers compare) or ``"mean"`` (per scored
token, which removes the length advantage of shorter sentences).

``format="chat"`` (causal LMs with a chat template): the same requests through the model's chat
template (:mod:`workbench.scoring.chat`): a multiple-choice context becomes the user turn and each
answer the assistant's reply; a sentence becomes the reply to a neutral user turn. The chat
format scores the whole sentence, so it takes ``start="bos"`` only (``"first_word"`` exists to
remove the unconditioned first token of raw text, which the assistant prefix already conditions).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.scoring.api import loglikelihood, pseudo_loglikelihood

AGGREGATES = ("sum", "mean")
STARTS = ("bos", "first_word")


def check_choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise InvalidInputError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def require_kind(model, kinds, probe: str, why: str = "") -> None:
    if model.kind not in kinds:
        raise WrongModelKindError(
            f"probe {probe!r} needs a {' or '.join(kinds)} model, but {model.name} is a {model.kind} model"
            + (f": {why}" if why else "") + ". Load a suitable model (see wb.list_probes() for what each probe needs).")


def method_for(model, method: str, probe: str) -> str:
    """Resolve ``method="auto"`` to "pll" (masked LMs) or "ll" (causal LMs), and refuse a method
    the model cannot do (e.g. PLL asked of a causal LM)."""
    check_choice("method", method, ("auto", "ll", "pll"))
    if method == "auto":
        require_kind(model, ("causal", "masked"), probe, "it scores sentences with a language-model head")
        return "pll" if model.kind == "masked" else "ll"
    needed = {"ll": "causal", "pll": "masked"}[method]
    if model.kind != needed:
        raise WrongModelKindError(f"probe {probe!r} with method={method!r} needs a {needed} LM, but {model.name} "
                                  f"is a {model.kind} model; use method='auto' or load a {needed} LM")
    return method


def _split_first_word(sentence: str) -> tuple[str, str]:
    head, sep, tail = sentence.partition(" ")
    return (head, sep + tail) if tail.strip() else ("", sentence)


def sentence_scores(model, sentences, *, method: str = "ll", aggregate: str = "sum", start: str = "bos",
                    positions=None, cache: bool = True, format: str = "raw",
                    system_prompt: str | None = None) -> pd.DataFrame:
    """Score sentences; returns DataFrame ``score, n_tokens`` in order (see module doc)."""
    check_choice("aggregate", aggregate, AGGREGATES)
    sentences = list(sentences)
    if format == "chat" and method != "ll":
        raise WrongModelKindError(f"format='chat' scores sentences as a chat model's reply; method {method!r} "
                                  f"(a masked LM's pseudo-log-likelihood) has no chat format: use format='raw'")
    if method == "ll":
        check_choice("start", start, STARTS)
        if format == "chat" and start != "bos":
            raise InvalidInputError("format='chat' scores the whole sentence as the assistant's reply, so it "
                                    "takes start='bos' only; use format='raw' for start='first_word'")
        reqs = [("", s) if start == "bos" else _split_first_word(s) for s in sentences]
        df = _loglikelihood(model, reqs, cache, format, system_prompt)
        total, n = df["logprob"].to_numpy(float), df["n_tokens"].to_numpy(int)
    elif method == "pll":
        df = _pll(model, sentences, positions, cache)
        total, n = df["pll"].to_numpy(float), df["n_tokens"].to_numpy(int)
    else:
        raise InvalidInputError(f"method must be 'll' or 'pll', got {method!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        score = total if aggregate == "sum" else total / np.maximum(n, 1)
    return pd.DataFrame({"score": score, "n_tokens": n})


def continuation_scores(model, requests, *, aggregate: str = "sum", cache: bool = True, format: str = "raw",
                        system_prompt: str | None = None) -> pd.DataFrame:
    """Log-likelihood of continuations given contexts (multiple choice): ``score, n_tokens``."""
    check_choice("aggregate", aggregate, AGGREGATES)
    df = _loglikelihood(model, list(requests), cache, format, system_prompt)
    total, n = df["logprob"].to_numpy(float), df["n_tokens"].to_numpy(int)
    return pd.DataFrame({"score": total if aggregate == "sum" else total / np.maximum(n, 1), "n_tokens": n})


def _loglikelihood(model, reqs, cache, format="raw", system_prompt=None):
    if not reqs:
        return pd.DataFrame({"logprob": [], "n_tokens": []})
    if format == "raw":  # the call (and so the cache key) of a raw run is as it always was
        return loglikelihood(model, reqs, cache=cache)
    return loglikelihood(model, reqs, cache=cache, format=format, system_prompt=system_prompt)


def _pll(model, sentences, positions, cache):
    if not sentences:
        return pd.DataFrame({"pll": [], "n_tokens": []})
    return pseudo_loglikelihood(model, sentences, positions=positions, cache=cache)

"""Scoring a chunk of task items, per task kind, and the metrics each kind reports.

Every number comes from :mod:`workbench.scoring.api` (batching, caching and exactness live
there); this module only decides *which* requests a task makes and how an item is judged. The
records returned here are what the store keeps per item, so ``results.items(...)`` shows the
exact scores a metric was computed from.
"""
from __future__ import annotations

import math

import numpy as np

from workbench.errors import WrongModelKindError
from workbench.stats.metrics import Metric, mean_metric

_LN2 = math.log(2)


def _base(item: dict) -> dict:
    """What every record keeps: identity plus the task's ``keep`` fields."""
    skip = {"good", "bad", "text", "prompt", "context", "choices", "target"}
    return {k: v for k, v in item.items() if k not in skip}


def score_minimal_pairs(model, task, items, **kw) -> list[dict]:
    """Total log-probability of each sentence (from the start of the text, as BLiMP and lm-eval
    do); right when the good sentence scores higher."""
    from workbench.scoring.api import perplexity
    texts = [it["good"] for it in items] + [it["bad"] for it in items]
    df = perplexity(model, texts, **kw)
    n = len(items)
    lp, nt = df["logprob"].to_numpy(float), df["n_tokens"].to_numpy(int)
    return [{**_base(it), "logprob_good": float(lp[i]), "logprob_bad": float(lp[n + i]),
             "n_tokens_good": int(nt[i]), "n_tokens_bad": int(nt[n + i]),
             "correct": int(lp[i] > lp[n + i])} for i, it in enumerate(items)]


def score_multiple_choice(model, task, items, **kw) -> list[dict]:
    """Log-likelihood of ``target_delimiter + choice`` after the context, for every choice.
    ``acc``: argmax log-likelihood; ``acc_norm``: argmax of log-likelihood per character of the
    choice (lm-eval's length normalisation)."""
    from workbench.scoring.api import loglikelihood
    requests = [(it["context"], task.target_delimiter + c) for it in items for c in it["choices"]]
    if getattr(task, "format", "raw") == "chat":  # the context as the user turn, the choice as the reply
        kw = {**kw, "format": "chat", "system_prompt": task.system_prompt}
    lp = loglikelihood(model, requests, **kw)["logprob"].to_numpy(float)
    out, pos = [], 0
    for it in items:
        k = len(it["choices"])
        scores = lp[pos:pos + k]
        pos += k
        chars = np.array([len(c) for c in it["choices"]], float)
        pred, pred_norm = int(np.argmax(scores)), int(np.argmax(scores / chars))
        out.append({**_base(it), "target": it["target"], "logprobs": [float(x) for x in scores],
                    "pred": pred, "pred_norm": pred_norm, "correct": int(pred == it["target"]),
                    "correct_norm": int(pred_norm == it["target"])})
    return out


def score_perplexity(model, task, items, **kw) -> list[dict]:
    """Rolling log-likelihood of each document, with its token, word and UTF-8 byte counts."""
    from workbench.scoring.api import perplexity
    texts = [it["text"] for it in items]
    df = perplexity(model, texts, **kw)
    return [{**_base(it), "logprob": float(r.logprob), "n_tokens": int(r.n_tokens), "n_words": int(r.n_words),
             "n_bytes": int(r.n_bytes)} for it, r in zip(items, df.itertuples())]


def score_generation(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Greedy completion, cut at the stop strings; exact match (or regex-extracted match) with
    the target."""
    from workbench.scoring.api import generate
    if getattr(task, "format", "raw") == "chat":
        kw = {**kw, "chat": True, "system_prompt": task.system_prompt}
    df = generate(model, [it["prompt"] for it in items], max_new_tokens=task.max_new_tokens, seed=seed, **kw)
    out = []
    for it, completion in zip(items, df["completion"]):
        answer = task.extract_answer(str(completion))
        target = it["target"].strip().lower() if task.ignore_case else it["target"].strip()
        out.append({**_base(it), "target": it["target"], "completion": str(completion), "answer": answer,
                    "correct": int(answer == target)})
    return out


SCORERS = {"minimal_pairs": score_minimal_pairs, "multiple_choice": score_multiple_choice,
           "perplexity": score_perplexity, "generation": score_generation}


def score_items(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Score a chunk of ``task``'s items with ``model``; one JSON-able record per item."""
    if model.kind != "causal":
        raise WrongModelKindError(f"benchmark tasks score causal language models; {model.name!r} is "
                                  f"{model.kind}. Use a causal model (e.g. smollm2-135m-instruct).")
    if task.kind == "generation":
        return score_generation(model, task, items, seed=seed, **kw)
    return SCORERS[task.kind](model, task, items, **kw)


# ---- metrics -------------------------------------------------------------------------------
def _pooled(name, denom, transform, description):
    """A corpus-level metric: transform(-sum(logprob) / sum(denom)) over the documents."""
    def fn(cols):
        return transform(-np.sum(cols["logprob"], axis=-1) / np.sum(cols[denom], axis=-1))
    return Metric(name, fn, ("logprob", denom), kind="derived", description=description)


def task_metrics(kind: str) -> list[Metric]:
    """The metrics a task kind reports (all proportions are 0..1; perplexities pooled over
    documents, as lm-eval's word_perplexity / byte_perplexity / bits_per_byte)."""
    if kind == "minimal_pairs":
        return [mean_metric("acc", "correct", kind="binary", description="share of pairs where the good "
                            "sentence has the higher log-probability")]
    if kind == "multiple_choice":
        return [mean_metric("acc", "correct", kind="binary"),
                mean_metric("acc_norm", "correct_norm", kind="binary",
                            description="argmax of log-likelihood per character of the choice")]
    if kind == "generation":
        return [mean_metric("exact_match", "correct", kind="binary")]
    return [_pooled("word_perplexity", "n_words", np.exp, "exp(-sum logprob / sum words)"),
            _pooled("byte_perplexity", "n_bytes", np.exp, "exp(-sum logprob / sum bytes)"),
            _pooled("bits_per_byte", "n_bytes", lambda x: x / _LN2, "-sum logprob / sum bytes / ln 2"),
            _pooled("token_perplexity", "n_tokens", np.exp, "exp(-sum logprob / sum tokens)")]


# which metric ranks models on a leaderboard, and whether higher is better
PRIMARY = {"minimal_pairs": ("acc", True), "multiple_choice": ("acc", True),
           "generation": ("exact_match", True), "perplexity": ("bits_per_byte", False)}

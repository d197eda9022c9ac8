"""The measurements :func:`workbench.provenance_audit.lineage` reads: weights tensor by tensor,
tokenizer overlap, per-token log-probs through each model's backend, greedy next tokens and CKA.

Each function returns plain numbers; the wording of the verdict is in ``lineage.py``.

>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> w = weight_evidence(m, m)
>>> (w["equal"], w["n"]) == (w["n"], w["n_matrices"] + w["n_vectors"])
True
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from workbench.inspect.similarity import cka
from workbench.scoring.api import loglikelihood
from workbench.scoring.tokenize import encode, prefix_token_id

MAX_ROWS = 4096                  # rows compared per matrix (embeddings of 262k rows: a sample)


def _tensors(hf) -> dict:
    """Every parameter of the module (1-D norm scales and biases too); tied output embeddings once."""
    tied = getattr(hf.config, "tie_word_embeddings", False)
    return {name: p.detach() for name, p in hf.named_parameters()  # tied weights are yielded once
            if not (tied and name.endswith("lm_head.weight"))}


def _row_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two matrices after scaling every row to unit length."""
    a, b = a[:MAX_ROWS].double(), b[:MAX_ROWS].double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    den = a.norm() * b.norm()
    return float(a @ b / den) if den > 0 else float("nan")


def _relative_change(a: torch.Tensor, b: torch.Tensor, rows: int = 8192) -> float:
    """‖b − a‖ / ‖a‖ over the whole tensor, a block of rows at a time (an embedding of 262k rows
    in float64 at once would take gigabytes)."""
    a, b = a.reshape(a.shape[0] if a.ndim else 1, -1), b.reshape(b.shape[0] if b.ndim else 1, -1)
    num = den = 0.0
    for i in range(0, a.shape[0], rows):
        x, y = a[i:i + rows].double(), b[i:i + rows].double()
        num += float(((y - x) ** 2).sum())
        den += float((x ** 2).sum())
    return (num / den) ** 0.5 if den > 0 else (0.0 if num == 0 else float("inf"))


def weight_evidence(model_a, model_b) -> dict:
    """Tensor-by-tensor comparison of two models of the same architecture.

    Every parameter is compared for exact equality and relative change (‖b − a‖ / ‖a‖); the
    correlation is computed on the matrices (tensors of 2 or more dimensions, flattened to rows):
    a 1-D norm scale starts as a constant vector, which has no correlation to measure.
    ``all_equal`` is True only when both models have the same tensors and every one is equal."""
    ta, tb = _tensors(model_a.hf), _tensors(model_b.hf)
    shared = [n for n in ta if n in tb and ta[n].shape == tb[n].shape]
    if not shared or len(shared) < 0.9 * max(len(ta), len(tb)):
        return {"same_architecture": False, "n": len(shared), "of": max(len(ta), len(tb))}
    matrices = [n for n in shared if ta[n].ndim >= 2]
    vectors = [n for n in shared if ta[n].ndim < 2]
    cors = pd.Series({n: _row_correlation(ta[n].reshape(ta[n].shape[0], -1), tb[n].reshape(tb[n].shape[0], -1))
                      for n in matrices}, dtype=float)
    equal = {n: bool(torch.equal(ta[n], tb[n])) for n in shared}
    change = pd.Series({n: _relative_change(ta[n], tb[n]) for n in shared}, dtype=float)
    finite = cors.dropna()
    return {"same_architecture": True, "n": len(shared), "of": max(len(ta), len(tb)),
            "n_matrices": len(matrices), "n_vectors": len(vectors),
            "median": float(finite.median()) if len(finite) else float("nan"),
            "min": float(finite.min()) if len(finite) else float("nan"),
            "least_similar": str(finite.idxmin()) if len(finite) else "",
            "equal": sum(equal.values()), "equal_matrices": sum(equal[n] for n in matrices),
            "equal_vectors": sum(equal[n] for n in vectors),
            "changed": [n for n in shared if not equal[n]],
            "all_equal": len(shared) == len(ta) == len(tb) and all(equal.values()),
            "largest_change": float(change.max()), "largest_change_in": str(change.idxmax())}


def tokenizer_evidence(model_a, model_b) -> dict:
    va, vb = model_a.tokenizer.get_vocab(), model_b.tokenizer.get_vocab()
    shared = va.keys() & vb.keys()
    same_id = sum(va[t] == vb[t] for t in shared)
    return {"jaccard": len(shared) / len(va.keys() | vb.keys()), "same_id": same_id / len(shared) if shared else 0.0,
            "sizes": (len(va), len(vb))}


def function_evidence(model_a, model_b, texts) -> dict:
    """Per-token log-probs of each text's own tokens under both models, each through its own
    backend (``wb.loglikelihood``: the Hugging Face, llama.cpp and server backends alike): each
    text is split after its first word, which is the context (with a BOS), and the rest is scored.

    ``agreement`` is 1 − mean((a − b)²) / variance, the variance being the mean of the two
    models' variances of their per-token log-probs: 1 for the same function, about 0 when one
    model's log-probs tell nothing about the other's, negative when they differ more than that.
    It is not invariant to a change of temperature (sharper or flatter distributions lower it).
    Returns ``{"comparable": False, "why": ...}`` when the two tokenize the texts differently."""
    pairs = [(head, " " + rest) for head, _, rest in (t.strip().partition(" ") for t in texts) if rest.strip()]
    if not pairs:
        return {"comparable": False, "why": "no text has more than one word to score"}
    fa = loglikelihood(model_a, pairs, bos=True, cache=False)
    fb = loglikelihood(model_b, pairs, bos=True, cache=False)
    if list(map(list, fa.tokens)) != list(map(list, fb.tokens)):
        return {"comparable": False, "why": "the two tokenizers split the texts differently"}
    a = np.concatenate([np.asarray(x, dtype=float) for x in fa.token_logprobs])
    b = np.concatenate([np.asarray(x, dtype=float) for x in fb.token_logprobs])
    diff = np.abs(a - b)
    var = (a.var() + b.var()) / 2
    msd = float(np.mean((a - b) ** 2))
    agreement = 1.0 - msd / var if var > 0 else (1.0 if msd == 0 else float("-inf"))
    return {"comparable": True, "agreement": float(agreement), "max_abs": float(diff.max()),
            "median_abs": float(np.median(diff)), "n_tokens": int(len(a)), "n_texts": len(pairs)}


def _greedy(model, texts):
    tok = model.tokenizer
    prefix = prefix_token_id(tok)
    ids, preds = [], []
    with torch.no_grad():
        for t in texts:
            seq = ([prefix] if prefix is not None else []) + encode(tok, t)
            logits = model.hf(input_ids=torch.tensor([seq], device=model.device)).logits[0]
            ids.append(seq)
            preds.append(logits.argmax(-1).tolist())
    return ids, preds


def prediction_evidence(model_a, model_b, texts) -> dict:
    """Agreement of the greedy next token (two in-process causal models)."""
    ia, pa = _greedy(model_a, texts)
    ib, pb = _greedy(model_b, texts)
    if ia == ib:
        same = sum(x == y for ra, rb in zip(pa, pb) for x, y in zip(ra, rb))
        total = sum(len(r) for r in pa)
        return {"agreement": same / total, "how": f"greedy next token at all {total} positions (same tokenization)"}
    da = [model_a.tokenizer.decode([r[-1]]).strip().lower() for r in pa]
    db = [model_b.tokenizer.decode([r[-1]]).strip().lower() for r in pb]
    return {"agreement": sum(x == y for x, y in zip(da, db)) / len(texts),
            "how": f"greedy next token after each of {len(texts)} texts, compared as text (different tokenizations)"}


def cka_last_layer(model_a, model_b, texts) -> float:
    f = cka(model_a, model_b, texts, site="resid_post", pooling="mean").to_frame()
    return float(f[(f.layer_a == f.layer_a.max()) & (f.layer_b == f.layer_b.max())].cka.iloc[0])

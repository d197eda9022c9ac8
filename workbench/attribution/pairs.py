"""Minimal pairs as clean and corrupted runs: how the two sentences of a probe item line up, and
the exact split of their log-likelihood difference over the tokens that differ and those shared.

For a causal LM, ``LL(a) - LL(b) = sum over a's tokens of log p - sum over b's tokens``. After
aligning the two token sequences (difflib, on the tokens the scoring engine scored), each
shared token contributes ``log p_a(t) - log p_b(t)`` (same token, different context) and the
differing tokens contribute their own log-probabilities. Shared tokens *before* the first
difference have identical contexts, so they contribute exactly zero: the split is exact and is a
check on itself.
"""
from __future__ import annotations

import difflib
import os

import numpy as np
import pandas as pd

# probe -> (stereotyped-side column, other column, category column, labels of the two sides)
PAIR_PROBES = {
    "winobias": ("sent_pro", "sent_anti", "type", ("pro-stereotyped", "anti-stereotyped")),
    "crows_pairs": ("sent_more", "sent_less", "bias_type", ("more stereotyping", "less stereotyping")),
}


def decompose(model, items: pd.DataFrame, col_a: str, col_b: str, cache: bool = True) -> pd.DataFrame:
    """One row per item: ``diff_total = LL(a) - LL(b)`` and its exact parts ``diff_differing``,
    ``diff_shared_before`` (0 up to float rounding), ``diff_shared_after``; the differing text."""
    from workbench.scoring.api import loglikelihood
    sents = list(items[col_a]) + list(items[col_b])
    ll = loglikelihood(model, [("", s) for s in sents], cache=cache)
    n = len(items)
    rows = []
    for i in range(n):
        ra, rb = ll.iloc[i], ll.iloc[n + i]
        ta, tb = list(ra["tokens"]), list(rb["tokens"])
        la, lb = np.asarray(ra["token_logprobs"], float), np.asarray(rb["token_logprobs"], float)
        before = after = differing = 0.0
        seen_diff = False
        da, db = [], []
        for op, a0, a1, b0, b1 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
            if op == "equal":
                d = float(np.sum(la[a0:a1] - lb[b0:b1]))
                if seen_diff:
                    after += d
                else:
                    before += d
            else:
                seen_diff = True
                differing += float(np.sum(la[a0:a1]) - np.sum(lb[b0:b1]))
                da += ta[a0:a1]
                db += tb[b0:b1]
        tok = model.tokenizer
        rows.append({"diff_total": float(la.sum() - lb.sum()), "diff_differing": differing,
                     "diff_shared_before": before, "diff_shared_after": after,
                     "differing_a": tok.convert_tokens_to_string(da).strip(),
                     "differing_b": tok.convert_tokens_to_string(db).strip(),
                     "n_differing_a": len(da), "n_differing_b": len(db)})
    out = pd.DataFrame(rows, index=items.index)
    out["share_differing"] = np.where(out.diff_total != 0, out.diff_differing / out.diff_total, np.nan)
    return out


def split_pair(a: str, b: str) -> dict:
    """Character-level split of two sentences at word boundaries: the shared ``prefix`` (text before
    the first differing word), the two differing middles and the shared ``suffix``.

    ``prefix + rest_a == a``; ``clean + suffix == a`` and ``corrupted + suffix == b``.
    """
    cp = os.path.commonprefix([a, b])
    k = cp.rfind(" ") if len(cp) < min(len(a), len(b)) else len(cp)
    k = max(k, 0)
    cs = os.path.commonprefix([a[::-1], b[::-1]])[::-1]
    cs = cs[: max(0, min(len(a), len(b)) - k)]          # the suffix may not overlap the prefix
    j = cs.find(" ")
    suffix = cs[j:] if j >= 0 else ""
    return {"prefix": a[:k], "rest_a": a[k:], "rest_b": b[k:], "suffix": suffix,
            "clean": a[: len(a) - len(suffix)], "corrupted": b[: len(b) - len(suffix)]}

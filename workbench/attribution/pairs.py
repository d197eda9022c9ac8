"""Minimal pairs as clean and corrupted runs: how the two sentences of a probe item line up, and
the exact split of their log-likelihood difference over the tokens that differ and those shared.

The audit (:mod:`workbench.attribution.audit`) reaches a probe's items through a *pair adapter*
(:class:`SentencePairs` here, :class:`~workbench.attribution.bbq_pairs.BBQAnswers` for BBQ), which
says per item what the two sentences are, and what the clean/corrupted runs and the metric are
for patching and for head ablation. An item an adapter cannot use raises :class:`SkipItem` with
the reason, which the audit reports.

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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.inspect import LogprobDiff
from workbench.scoring.api import loglikelihood


class SkipItem(Exception):
    """An item a step cannot use; the message is the reason reported in the audit's ``skipped``."""


@dataclass(frozen=True)
class SentencePairs:
    """Pair adapter for probes whose items are two sentences (``col_a``: the stereotyped side).

    Patching: clean = sentence a up to the end of the differing words, corrupted = b likewise, the
    metric = log-probability of the shared rest. Head ablation: the shared prefix, metric =
    log p(rest of a) - log p(rest of b).
    """

    col_a: str
    col_b: str
    category: str
    sides: tuple
    headline: str | None = None        # the metric the report plots (None: the probe's first)
    context_col: str | None = None     # a shared prefix column for decompose (None: whole sentences)

    def prepare(self, items: pd.DataFrame) -> pd.DataFrame:
        return items

    def patch_run(self, row):
        sp = split_pair(row[self.col_a], row[self.col_b])
        if not sp["suffix"].strip() or not sp["clean"].strip() or not sp["corrupted"].strip():
            raise SkipItem("no shared text after the differing words to measure")
        return sp["clean"], sp["corrupted"], sp["suffix"]

    def ablation_run(self, row):
        sp = split_pair(row[self.col_a], row[self.col_b])
        if not sp["prefix"].strip():
            raise SkipItem("the sentences differ in their first word: no shared prefix")
        return sp["prefix"], LogprobDiff(sp["rest_a"], sp["rest_b"])

    def probe_diff(self, items: pd.DataFrame, options: dict):
        """The probe's own LL(a) - LL(b) per item (what step 1 must reproduce), or None."""
        if "diff" in items and options.get("aggregate", "sum") == "sum":
            return items["diff"].to_numpy(float)
        return None


def decompose(model, items: pd.DataFrame, col_a: str, col_b: str, cache: bool = True,
              context_col: str | None = None) -> pd.DataFrame:
    """One row per item: ``diff_total = LL(a) - LL(b)`` and its exact parts ``diff_differing``,
    ``diff_shared_before`` (0 up to float rounding), ``diff_shared_after``; the differing text.

    ``context_col``: a column holding a prefix both sentences start with (BBQ's prompt); the
    sentences are then scored as continuations of it, as the probe scores them (so long prompts
    are cut to the model's window the same way), and the prefix, whose tokens have identical
    contexts in both runs, is left out of the split (its contribution is exactly zero).
    """
    sents = list(items[col_a]) + list(items[col_b])
    ctx = [""] * len(sents) if context_col is None else list(items[context_col]) * 2
    if any(not s.startswith(c) for s, c in zip(sents, ctx)):
        raise InvalidInputError(f"every sentence must start with its {context_col!r}: pass the shared prefix column")
    ll = loglikelihood(model, [(c, s[len(c):]) for c, s in zip(ctx, sents)], cache=cache)
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

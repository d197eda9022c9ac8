"""Per-text membership scores, every one oriented so that HIGHER = MORE LIKELY A MEMBER.

All come from the scoring engine's ``token_stats`` request (:mod:`workbench.scoring.token_stats`):
one pass over the texts gives loss, zlib, Min-K% and Min-K%++; "lowercase" adds a pass over the
lowercased texts, "reference" a pass of the reference model.

============  ======================================================================================
method        score (higher = member)
============  ======================================================================================
loss          mean token log-likelihood (Yeom et al. 2018; the negative of the usual loss)
zlib          mean token log-likelihood / zlib-compressed size in bytes (Carlini et al. 2021, as
              MIMIR computes it: loss / zlib entropy, negated)
lowercase     -(NLL(text) / NLL(text.lower())), mean NLLs per token (Carlini et al. 2021's ratio of
              log-perplexities, negated): memorised casing makes the original much likelier
min_k         mean of the lowest ``k`` share of the token log-probs (Shi et al. 2024, Min-K% Prob;
              ``max(1, int(k * n_tokens))`` tokens, as the authors' code)
min_k_pp      the same over standardised log-probs ``(log p(x_t) - mu_t) / sigma_t``, ``mu_t`` and
              ``sigma_t^2`` the mean and variance of ``log p(z)`` for ``z`` drawn from the model at
              position t (Zhang et al. 2024, Min-K%++); a position where the model is certain
              (``sigma_t = 0``) is left out
reference     mean log-likelihood under the model minus under the reference model (Carlini et al.
              2021 / MIMIR "ref"): the reference model discounts texts that are simply easy
============  ======================================================================================

**The lowercase score depends on a text's case structure** (how many words are capitalised,
which ones), since that is what lowercasing changes. Every number here is printed by
``benchmarks/lowercase_control.py --text-seeds 0 ... 24 --splits 12`` (SmolLM2-135M-Instruct, 200
testbed sentences per text seed, the ORIGINAL model, which saw none of them). The lowercase score
correlates with the number of capitalised words (Spearman -0.19 to -0.45 over 25 text seeds;
loss and zlib are tied to it too, +0.39 to +0.61 and +0.59 to +0.76). So a member set that
happens to hold more sentences of one case shape than the non-member set moves its AUROC. That
happened on the testbed's split for text seed 0: lowercase AUROC 0.620, which ``findings()``
reads as "evidence on this model alone", a false positive. It is chance, not a bug: that split
put more "... soon." (no weekday: nothing but "The" to lowercase; 26 members, 17 non-members) and
fewer "... on Friday." (10 and 17) sentences among the members, and the template fields alone
give AUROC 0.583. Over 25 text seeds with the testbed's own split, the lowercase AUROC is 0.511
(sd 0.048, 0.422 to 0.620); an AUROC of 0.620 has one-sided p 0.0018 under chance, about one
split in 571. Over 300 independent random splits of the same texts (25 text seeds x 12) it is
0.502 (sd 0.040, max 0.601) and never read as evidence (min_k once, min_k_pp twice). The blind
baseline cannot catch such a chance imbalance (cross-fitted, it only finds differences that hold
across folds); what bounds how often it fools a verdict is the test's level, and what exposes it
is a control: the same attack on a model that never saw the texts (``wb.membership(...,
control=)``), or the split re-drawn where you can.

>>> import numpy as np
>>> round(min_k_score(np.array([-1.0, -5.0, -2.0, -0.5]), 0.5), 2)   # the 2 lowest: -5 and -2
-3.5
"""
from __future__ import annotations

import zlib

import numpy as np

from workbench.scoring.token_stats import token_stats

MODEL_METHODS = ("loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference")
DEFAULT_METHODS = ("loss", "zlib", "min_k", "min_k_pp")


def min_k_score(values: np.ndarray, k: float) -> float:
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan")
    n = max(1, int(len(values) * k))
    return float(np.sort(values)[:n].mean())


def min_k_pp_values(token_lp, mean, var) -> np.ndarray:
    lp, mu, var = (np.asarray(x, float) for x in (token_lp, mean, var))
    sigma = np.sqrt(np.clip(var, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (lp - mu) / sigma
    return z[sigma > 0]


def zlib_bytes(text: str) -> int:
    return len(zlib.compress(text.encode("utf-8")))


def attack_scores(model, texts: list[str], methods, k: float, reference=None, *, max_tokens=None,
                  cache: bool = True, progress=None) -> dict[str, np.ndarray]:
    """``{method: per-text scores}`` for the model methods in ``methods``."""
    need_moments = "min_k_pp" in methods
    ts = token_stats(model, texts, moments=need_moments, max_tokens=max_tokens, cache=cache, progress=progress)
    mean_lp = ts.mean_logprob.to_numpy(float)
    out = {}
    if "loss" in methods:
        out["loss"] = mean_lp
    if "zlib" in methods:
        out["zlib"] = mean_lp / np.array([zlib_bytes(t) for t in texts], float)
    if "min_k" in methods:
        out["min_k"] = np.array([min_k_score(lp, k) for lp in ts.token_logprobs])
    if "min_k_pp" in methods:
        out["min_k_pp"] = np.array([min_k_score(min_k_pp_values(lp, mu, v), k)
                                    for lp, mu, v in zip(ts.token_logprobs, ts.logp_mean, ts.logp_var)])
    if "lowercase" in methods:
        low = token_stats(model, [t.lower() for t in texts], moments=False, max_tokens=max_tokens, cache=cache,
                          progress=progress).mean_logprob.to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["lowercase"] = -(mean_lp / low)   # both NLLs are -mean_lp, -low: the ratio is the same
    if "reference" in methods:
        ref = token_stats(reference, texts, moments=False, max_tokens=max_tokens, cache=cache,
                          progress=progress).mean_logprob.to_numpy(float)
        out["reference"] = mean_lp - ref
    return out

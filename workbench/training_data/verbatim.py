"""Verbatim completion: does the model continue the first half of an item with its true rest?

Each item is cut at the middle word: the first half is the prompt, the rest the truth. The model
continues the prompt greedily (``wb.generate``, as many new tokens as the rest has, plus a few),
and the continuation is compared with the truth: **exact** (the continuation starts with the
rest, whitespace-normalised) and **LCS ratio** (the longest common substring, in characters,
over the rest's length; 1 = the whole rest appears verbatim).

The control: the same measure on *perturbed* items, whose prompt has every ``perturb_every``-th
pair of adjacent words swapped (seeded), with the same true rest. A model that memorised the
items reproduces the rest from the exact prompt far more often than from a slightly different
one. The statistic is the mean per-item gain: the LCS ratio from the exact prompt minus that
from the perturbed one.

**The gain alone is no test of "never trained on these items".** The perturbation costs any
model fluency, so an unseen text may also be continued better from its exact prompt. An earlier
version tested the gain against zero (one-sided sign-flip), which rejects whenever that effect
exists: in a simulation with a small positive gain on items and unseen texts alike (mean 0.05,
sd 0.1, n = 20) it rejected at 0.05 in 69% of runs. On SmolLM2 with synthetic sentences no model
has seen (``benchmarks/verbatim_null.py``, 8 batches of 20) it gave p < 0.05 in 2 of 8 (0.005,
0.046). So the p-value now compares the items' gain with the gain on ``unseen`` texts of the
same kind that the model cannot have seen: a one-sided two-sample permutation test, valid at
every n when the items were not trained on and are exchangeable with the unseen texts (the same
simulation: 5.1% at 0.05, 10.4% at 0.10; at n = 1 and 2 every partition is enumerated; on
SmolLM2: 1 of 8 batches under 0.05). Without ``unseen`` the p-value is NaN and the row's ``note`` says why.

What it misses (measured on the SmolLM2 testbed, ``benchmarks/training_data.py``): each prompt is
an item alone after BOS, so an item trained inside a longer document (the testbed plants the
benchmark as shards of several items) is prompted out of its context; and a model that learnt
the items' *kind* (the testbed's benchmark shares its template with the member texts) writes
the template after exact and perturbed prompts alike, so the LCS ratio is high on both and their
difference near zero. There the earlier gain-vs-zero test found nothing (p 0.22 to 0.99) where the exchangeability
test found the planted benchmark (p 0.01); prompted with the shard before each item, the same
model gave p 0.014 (that test too). A large p is no evidence of a clean model.

>>> prompt, rest = split_item("the cat sat on the mat today")
>>> prompt, rest
('the cat sat', ' on the mat today')
>>> round(lcs_ratio(" on the mat", " on the mat today"), 2)
0.65
"""
from __future__ import annotations

from difflib import SequenceMatcher

import numpy as np
import pandas as pd

from workbench.scoring.api import generate
from workbench.training_data.prompts import perturb, with_prefix

EXTRA_TOKENS = 4


def split_item(text: str) -> tuple[str, str]:
    """(prompt, rest): cut at the middle word (at the middle character for a single word)."""
    words = text.split(" ")
    if len(words) < 2:
        return text[:len(text) // 2], text[len(text) // 2:]
    cut = len(words) // 2
    return " ".join(words[:cut]), " " + " ".join(words[cut:])


def _norm(s: str) -> str:
    return " ".join(s.split())


def lcs_ratio(completion: str, truth: str) -> float:
    if not truth:
        return float("nan")
    m = SequenceMatcher(None, completion, truth, autojunk=False).find_longest_match(0, len(completion), 0, len(truth))
    return m.size / len(truth)


def exact(completion: str, truth: str) -> bool:
    return _norm(completion).startswith(_norm(truth)) and bool(_norm(truth))


def _measure(model, items: list[str], rng: np.random.Generator, perturb_every: int, cache: bool,
             progress) -> pd.DataFrame:
    """Per item: the completions from the exact and the perturbed prompt and how much of the true
    rest each reproduces."""
    parts = [split_item(t) for t in items]
    prompts = [p for p, _ in parts]
    perturbed = [perturb(p, rng, perturb_every) for p in prompts]
    n_new = max(len(model.tokenizer(r, add_special_tokens=False)["input_ids"]) for _, r in parts) + EXTRA_TOKENS
    # conditioned on BOS as the engine scores and the testbed fine-tunes a text: a memorised text is
    # recalled from the context it was seen in
    gen = generate(model, [with_prefix(model.tokenizer, q) for q in prompts + perturbed], max_new_tokens=n_new,
                      cache=cache, progress=progress)
    outs = gen.completion.tolist()
    rows = []
    for i, (prompt, rest) in enumerate(parts):
        a, b = outs[i], outs[len(items) + i]
        rows.append({"item": i, "prompt": prompt, "truth": rest, "completion": a, "perturbed_prompt": perturbed[i],
                     "perturbed_completion": b, "exact": exact(a, rest), "lcs_ratio": lcs_ratio(a, rest),
                     "exact_perturbed": exact(b, rest), "lcs_ratio_perturbed": lcs_ratio(b, rest)})
    return pd.DataFrame(rows)


def _gain(df: pd.DataFrame) -> np.ndarray:
    return (df.lcs_ratio - df.lcs_ratio_perturbed).to_numpy(float)


def _greater(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """One-sided p of mean(x) > mean(y), two independent samples: scipy's permutation test (exact
    where the partitions are few); with one observation in a sample, which scipy refuses, every
    partition is enumerated (n + m of them), so the p-value is exact at every n."""
    from itertools import combinations

    from scipy.stats import permutation_test
    if min(len(x), len(y)) >= 2:
        return float(permutation_test((x, y), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
                                      permutation_type="independent", alternative="greater", vectorized=True,
                                      n_resamples=9999, random_state=seed).pvalue)
    pooled, n = np.concatenate([x, y]), len(x)
    observed = x.mean() - y.mean()
    stats = []
    for idx in combinations(range(len(pooled)), n):
        mask = np.zeros(len(pooled), bool)
        mask[list(idx)] = True
        stats.append(pooled[mask].mean() - pooled[~mask].mean())
    # a tolerance for ties computed in another order (as scipy does)
    return float(np.mean(np.asarray(stats) >= observed - 1e-12 * max(1.0, abs(observed))))


def verbatim(model, items: list[str], *, seed: int = 0, perturb_every: int = 3, cache: bool = True,
             progress=None, unseen: list[str] | None = None) -> tuple[dict, pd.DataFrame]:
    """(summary row, per-item frame) of the verbatim-completion test (see the module doc).

    ``unseen``: texts of the same kind that the model cannot have been trained on. With them, the
    p-value is a one-sided two-sample permutation test (:func:`scipy.stats.permutation_test`) of
    the mean gain (LCS ratio from the exact prompt minus from the perturbed one) on the items
    against the unseen texts: valid when the items were not trained on and are exchangeable
    with the unseen texts. Without them there is no valid p-value (NaN; see the module doc)."""
    rng = np.random.default_rng(seed)
    df = _measure(model, items, rng, perturb_every, cache, progress)
    d = _gain(df)
    row = {"test": "verbatim", "statistic": float(np.nanmean(d)), "p_value": float("nan"), "n": len(items),
           "exact_rate": float(df.exact.mean()), "exact_rate_perturbed": float(df.exact_perturbed.mean()),
           "lcs_ratio": float(df.lcs_ratio.mean()), "lcs_ratio_perturbed": float(df.lcs_ratio_perturbed.mean())}
    if unseen is None:
        row["note"] = ("no p-value: the exact prompt helps any model more than a perturbed one; pass unseen= texts "
                       "of the same kind to test the items' gain against theirs")
        return row, df
    ref = _measure(model, list(unseen), rng, perturb_every, cache, progress)
    d_ref = _gain(ref)
    d, d_ref = d[~np.isnan(d)], d_ref[~np.isnan(d_ref)]
    if len(d) == 0 or len(d_ref) == 0:
        row["note"] = "no p-value: no item or no unseen text has a rest to compare"
        return row, df
    row.update(p_value=_greater(d, d_ref, seed), statistic_unseen=float(d_ref.mean()), n_unseen=len(d_ref),
               note="one-sided two-sample permutation test of the gain, items against unseen texts")
    return row, df

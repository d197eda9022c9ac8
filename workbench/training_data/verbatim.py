"""Verbatim completion: does the model continue the first half of an item with its true rest?

Each item is cut at the middle word: the first half is the prompt, the rest the truth. The model
continues the prompt greedily (``wb.generate``, as many new tokens as the rest has, plus a few),
and the continuation is compared with the truth: **exact** (the continuation starts with the
rest, whitespace-normalised) and **LCS ratio** (the longest common substring, in characters,
over the rest's length; 1 = the whole rest appears verbatim).

The control: the same measure on *perturbed* items, whose prompt has every ``perturb_every``-th
pair of adjacent words swapped (seeded), with the same true rest. A model that memorised the
items reproduces the rest from the exact prompt far more often than from a slightly different
one. The test is the paired sign-flip test (:func:`workbench.stats.sign_flip`) of the per-item
LCS-ratio difference (original minus perturbed), reported one-sided (original better).

**Its p-value is not a valid test of "never trained on these items".** The perturbation costs
any model fluency, so an unseen text is also continued better from its exact prompt: on batches
of synthetic sentences no model has seen, SmolLM2 gave p < 0.05 in 2 of 6 batches (0.005 and
0.046; a valid test: about 0.3 of 6), ``benchmarks/verbatim_null.py``. Read the p-value as
"the exact prompt helps more than a perturbed one", and compare the statistic with the same
test on texts the model cannot have seen (the testbed's clean model, or new texts of the same
kind), never alone. The exchangeability test is exact under its null.

What it misses (measured on the SmolLM2 testbed, ``benchmarks/training_data.py``): each prompt is
an item alone after BOS, so an item trained inside a longer document (the testbed plants the
benchmark as shards of several items) is prompted out of its context; and a model that learnt
the items' *kind* (the testbed's benchmark shares its template with the member texts) writes
the template after exact and perturbed prompts alike, so the LCS ratio is high on both and their
difference near zero. There the test found nothing (p 0.22 to 0.99) where the exchangeability
test found the planted benchmark (p 0.01); prompted with the shard before each item, the same
model gave p 0.014. A large p is no evidence of a clean model.

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

EXTRA_TOKENS = 4


def split_item(text: str) -> tuple[str, str]:
    """(prompt, rest): cut at the middle word (at the middle character for a single word)."""
    words = text.split(" ")
    if len(words) < 2:
        return text[:len(text) // 2], text[len(text) // 2:]
    cut = len(words) // 2
    return " ".join(words[:cut]), " " + " ".join(words[cut:])


def perturb(prompt: str, rng: np.random.Generator, every: int = 3) -> str:
    words = prompt.split(" ")
    if len(words) < 2:
        return prompt
    start = int(rng.integers(0, min(every, len(words) - 1)))
    for i in range(start, len(words) - 1, every):
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def _norm(s: str) -> str:
    return " ".join(s.split())


def lcs_ratio(completion: str, truth: str) -> float:
    if not truth:
        return float("nan")
    m = SequenceMatcher(None, completion, truth, autojunk=False).find_longest_match(0, len(completion), 0, len(truth))
    return m.size / len(truth)


def exact(completion: str, truth: str) -> bool:
    return _norm(completion).startswith(_norm(truth)) and bool(_norm(truth))


def verbatim(model, items: list[str], *, seed: int = 0, perturb_every: int = 3, cache: bool = True,
             progress=None) -> tuple[dict, pd.DataFrame]:
    """(summary row, per-item frame) of the verbatim-completion test (see the module doc)."""
    import workbench as wb
    from workbench.stats import sign_flip

    rng = np.random.default_rng(seed)
    parts = [split_item(t) for t in items]
    prompts = [p for p, _ in parts]
    perturbed = [perturb(p, rng, perturb_every) for p in prompts]
    n_new = max(len(model.tokenizer(r, add_special_tokens=False)["input_ids"]) for _, r in parts) + EXTRA_TOKENS
    from workbench.training_data.ts_guessing import with_prefix
    # conditioned on BOS as the engine scores and the testbed fine-tunes a text: a memorised text is
    # recalled from the context it was seen in
    gen = wb.generate(model, [with_prefix(model.tokenizer, q) for q in prompts + perturbed], max_new_tokens=n_new,
                      cache=cache, progress=progress)
    outs = gen.completion.tolist()
    rows = []
    for i, (prompt, rest) in enumerate(parts):
        a, b = outs[i], outs[len(items) + i]
        rows.append({"item": i, "prompt": prompt, "truth": rest, "completion": a, "perturbed_prompt": perturbed[i],
                     "perturbed_completion": b, "exact": exact(a, rest), "lcs_ratio": lcs_ratio(a, rest),
                     "exact_perturbed": exact(b, rest), "lcs_ratio_perturbed": lcs_ratio(b, rest)})
    df = pd.DataFrame(rows)
    d = (df.lcs_ratio - df.lcs_ratio_perturbed).to_numpy(float)
    if np.allclose(d, 0):
        p = 1.0
    else:
        two = sign_flip(d, seed=seed).p_value
        p = two / 2 if d.mean() > 0 else 1 - two / 2
    row = {"test": "verbatim", "statistic": float(np.nanmean(d)), "p_value": float(min(1.0, p)), "n": len(items),
           "exact_rate": float(df.exact.mean()), "exact_rate_perturbed": float(df.exact_perturbed.mean()),
           "lcs_ratio": float(df.lcs_ratio.mean()), "lcs_ratio_perturbed": float(df.lcs_ratio_perturbed.mean())}
    return row, df

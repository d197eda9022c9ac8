"""The exchangeability test of Oren et al. 2023 ("Proving test set contamination in black box
language models").

If a model never saw a data set, every ordering of its items is equally likely to it: the items
are exchangeable, so the canonical order (the order the data set is published in) is just one
draw among all orders. A model trained on the data set *in that order* gives the canonical order
a higher log-likelihood than shuffled orders. The test:

1. cut the items, in canonical order, into ``n_shards`` contiguous shards (as the paper: short
   sequences fit the window and give a sum over shards, each shard ordered or shuffled on its own);
2. score each shard as ONE text, its items joined by ``separator``, in canonical order and
   under ``n_permutations`` seeded random orders (each permutation shuffles within every shard);
3. the statistic is ``L(canonical) - mean L(permuted)`` (nats; summed over shards), and the
   one-sided permutation p-value is ``(1 + #{b: L_b >= L(canonical)}) / (1 + B)``, which is a
   valid p-value at every B (Phipson & Smyth 2010); the smallest possible is ``1 / (B + 1)``.

Cost: ``(B + 1) x n_shards`` scored sequences of about ``len(data) / n_shards`` items each.

>>> from workbench.testing import tiny_model
>>> r = exchangeability(tiny_model("gpt2"), ["One two three.", "Four five six.", "Seven eight.", "Nine ten."],
...                     n_shards=1, n_permutations=19, cache=False)
>>> r["n"], 0.05 <= r["p_value"] <= 1     # 20 orders: p is at least 1/20
(4, True)
"""
from __future__ import annotations

import numpy as np

from workbench.errors import InvalidInputError


def shard_bounds(n_items: int, n_shards: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n_items, n_shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def exchangeability(model, items: list[str], *, n_shards: int = 1, n_permutations: int = 99, seed: int = 0,
                    separator: str = "\n", cache: bool = True, progress=None) -> dict:
    """``{test, statistic, p_value, n, ...}`` of the exchangeability test (see the module doc)."""
    from workbench.scoring.token_stats import token_stats

    if len(items) < 2:
        raise InvalidInputError(f"the exchangeability test needs at least 2 items to reorder, got {len(items)}")
    if n_shards > len(items) // 2:
        raise InvalidInputError(f"n_shards={n_shards} is too many for {len(items)} items: each shard needs at least "
                                f"2 items to reorder; use n_shards <= {len(items) // 2}")
    rng = np.random.default_rng(seed)
    shards = shard_bounds(len(items), n_shards)
    texts = []   # row b * n_shards + s: order b (0 = canonical) of shard s
    for b in range(n_permutations + 1):
        for a, z in shards:
            order = np.arange(a, z) if b == 0 else a + rng.permutation(z - a)
            texts.append(separator.join(items[i] for i in order))
    # scored through the engine as whole texts; token_stats refuses a shard longer than the window
    lp = token_stats(model, texts, moments=False, cache=cache, progress=progress).logprob.to_numpy(float)
    totals = lp.reshape(n_permutations + 1, len(shards)).sum(1)
    canonical, permuted = totals[0], totals[1:]
    p = (1 + int(np.count_nonzero(permuted >= canonical))) / (1 + n_permutations)
    return {"test": "exchangeability", "statistic": float(canonical - permuted.mean()), "p_value": float(p),
            "n": len(items), "n_shards": len(shards), "n_permutations": n_permutations,
            "logprob_canonical": float(canonical), "logprob_permuted_mean": float(permuted.mean())}

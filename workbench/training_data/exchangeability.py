"""The exchangeability test of Oren et al. 2023 ("Proving test set contamination in black box
language models"), as a sharded permutation test, and its power against a planted preference.

If a model never saw a data set, every ordering of its items is equally likely to it: the items
are exchangeable, so the canonical order (the order the data set is published in) is just one
draw among all orders. A model trained on the data set *in that order* gives the canonical order
a higher log-likelihood than shuffled orders. The test:

1. cut the items, in canonical order, into ``n_shards`` contiguous shards (short sequences that
   fit the window, as in the paper);
2. score each shard as ONE text, its items joined by ``separator``, in canonical order and in
   ``n_permutations`` seeded random orders of its own items (drawn independently per shard; an
   order that repeats another is scored once);
3. the statistic is the sum over shards of ``L(canonical) - mean L(shuffled)`` (nats), the
   paper's per-shard statistic;
4. the p-value is that of the **randomization test over shards**: under exchangeability, within
   each shard the canonical order and the shuffled ones are independent uniform draws of one
   order, so which of a shard's ``n_permutations + 1`` orders is the canonical one is uniform,
   independently across shards. The statistic's null distribution is that of the sum with the
   "canonical" order of every shard re-drawn: enumerated exactly when there are at most
   ``n_resamples + 1`` such labellings, else ``n_resamples`` seeded ones with
   ``p = (1 + count) / (1 + n_resamples)`` (valid at every size: Phipson & Smyth 2010). The
   smallest possible p is ``(n_permutations + 1) ** -n_shards`` (exact) or ``1 / (n_resamples + 1)``.

How this differs from the paper: Oren et al. also shard and compare each shard's canonical
log-likelihood with the mean over its permutations, but they combine the shards with a t-test
across shards (asymptotic); here they are combined by the exact randomization distribution above,
which needs no normality and holds with any number of shards. With one shard this is the paper's
plain permutation test, ``p = (1 + #{b: L_b >= L(canonical)}) / (1 + B)``. Sharding is what gives
the test its reach at a fixed cost: with 60 shards and ONE shuffled order each, the smallest p is
2**-60, where one shard needs B = 99 shuffled orders (100 times the cost) to reach 0.01.

Cost: ``(n_permutations + 1) x`` the data set's tokens, in sequences of about
``len(items) / n_shards`` items.

**Power** (:func:`exchangeability_power`): on the model's own shard scores, a planted canonical-order
preference of ``delta`` nats per item is simulated: in each simulated data set one of every shard's
scored orders (drawn at random: a null draw) plays the canonical order and gets a bonus of
``delta x`` (its items), and the test is run on that. The rejection rate at ``alpha`` is the power
against that preference; the ``delta`` detected 80% of the time is what the test can see. The
orders themselves are the model's, so the noise is the real one; if the model did prefer the
canonical order, that order is one of the draws and the estimate is slightly low (conservative).

>>> from workbench.testing import tiny_model
>>> r = exchangeability(tiny_model("gpt2"), ["One two three.", "Four five six.", "Seven eight.", "Nine ten."],
...                     n_shards=2, n_permutations=3, cache=False)
>>> r["n"], r["n_shards"], r["min_p_value"], 0 < r["p_value"] <= 1    # 4 ** 2 labellings: exact
(4, 2, 0.0625, True)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.scoring.token_stats import token_stats
from workbench.stats import proportion_ci

N_RESAMPLES = 9999
POWER_SIMULATIONS = 400
POWER_RESAMPLES = 999


def shard_bounds(n_items: int, n_shards: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n_items, n_shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _labelling_sums(scores: np.ndarray, n_resamples: int, rng) -> tuple[np.ndarray, bool]:
    """Sums over shards of one chosen order per shard: every labelling (exact) when there are at
    most n_resamples + 1, else n_resamples random ones. ``scores``: (shards, orders)."""
    m, k = scores.shape
    if k ** m <= n_resamples + 1:
        sums = np.zeros(1)
        for row in scores:                       # all k ** m sums, shard by shard
            sums = (sums[:, None] + row[None, :]).ravel()
        return sums, True
    pick = rng.integers(0, k, (n_resamples, m))
    return scores[np.arange(m), pick].sum(1), False


def randomization_p(scores: np.ndarray, n_resamples: int = N_RESAMPLES, seed=0) -> tuple[float, float]:
    """(p, smallest possible p) of the sharded randomization test; column 0 is the canonical order."""
    scores = np.asarray(scores, float)
    observed = scores[:, 0].sum()
    tol = 1e-9 * max(1.0, abs(observed))         # a tie in exact arithmetic counts as one
    sums, exact = _labelling_sums(scores, n_resamples, np.random.default_rng(seed))
    count = int(np.count_nonzero(sums >= observed - tol))
    if exact:
        return count / len(sums), 1 / len(sums)
    return (1 + count) / (1 + n_resamples), 1 / (1 + n_resamples)


def exchangeability(model, items: list[str], *, n_shards: int = 1, n_permutations: int = 99, seed: int = 0,
                    separator: str = "\n", n_resamples: int = N_RESAMPLES, cache: bool = True, progress=None) -> dict:
    """``{test, statistic, p_value, n, ...}`` of the exchangeability test (see the module doc);
    ``shard_logprobs`` (per shard: the canonical order's log-likelihood, then the shuffled ones')
    and ``shard_sizes`` are what :func:`exchangeability_power` reads."""
    if len(items) < 2:
        raise InvalidInputError(f"the exchangeability test needs at least 2 items to reorder, got {len(items)}")
    if n_shards > len(items) // 2:
        raise InvalidInputError(f"n_shards={n_shards} is too many for {len(items)} items: each shard needs at least "
                                f"2 items to reorder; use n_shards <= {len(items) // 2}")
    rng = np.random.default_rng(seed)
    shards = shard_bounds(len(items), n_shards)
    texts = []   # row s * (n_permutations + 1) + b: order b (0 = canonical) of shard s
    for a, z in shards:
        for b in range(n_permutations + 1):
            order = np.arange(a, z) if b == 0 else a + rng.permutation(z - a)
            texts.append(separator.join(items[i] for i in order))
    unique = list(dict.fromkeys(texts))   # a repeated order is scored once: equal orders, equal numbers
    # scored through the engine as whole texts; token_stats refuses a shard longer than the window
    lp = token_stats(model, unique, moments=False, cache=cache, progress=progress).logprob.to_numpy(float)
    by_text = dict(zip(unique, lp))
    scores = np.array([by_text[t] for t in texts]).reshape(len(shards), n_permutations + 1)
    p, min_p = randomization_p(scores, n_resamples, seed)
    row = {"test": "exchangeability", "statistic": float((scores[:, 0] - scores[:, 1:].mean(1)).sum()),
           "p_value": float(p), "n": len(items), "n_shards": len(shards), "n_permutations": n_permutations,
           "min_p_value": float(min_p), "logprob_canonical": float(scores[:, 0].sum()),
           "logprob_permuted_mean": float(scores[:, 1:].mean(1).sum()),
           "shard_logprobs": scores.tolist(), "shard_sizes": [z - a for a, z in shards]}
    if min_p >= 0.05:   # rejecting at 0.05 means p < 0.05
        row["note"] = (f"the smallest p this design can give is {min_p:.3g}: it cannot reject at 0.05; use more "
                       "shards (n_shards=) or shuffled orders (n_permutations=)")
    return row


def _null_sd(scores: np.ndarray) -> float:
    """Standard deviation of the statistic's randomization distribution (one uniform order per shard)."""
    return float(np.sqrt(scores.var(axis=1).sum()))


def exchangeability_power(shard_logprobs, shard_sizes, deltas=None, *, alpha: float = 0.05,
                          n_sim: int = POWER_SIMULATIONS, n_resamples: int = POWER_RESAMPLES,
                          seed: int = 0) -> pd.DataFrame:
    """Power of the test against a planted canonical-order bonus of ``delta`` nats per item, on
    the model's own shard scores (see the module doc): one row per delta with ``power`` (the
    rejection rate at ``alpha`` over ``n_sim`` simulated data sets) and its Clopper-Pearson 95%
    interval. ``deltas`` defaults to a grid whose bonus moves the statistic by 0 to 5 of its null
    standard deviations.
    ``attrs["delta_80"]``: the bonus detected 80% of the time (interpolated; NaN if the grid does
    not reach it).

    >>> import numpy as np
    >>> noise = np.random.default_rng(0).normal(0, 1.0, (40, 2))       # 40 shards, 2 orders each
    >>> pw = exchangeability_power(noise, [10] * 40, deltas=[0.0, 0.2], n_sim=200)
    >>> bool(pw.power[0] <= 0.1), bool(pw.power[1] > 0.9)               # 0.05 at no bonus; 2 nats a shard: found
    (True, True)
    """
    scores = np.asarray(shard_logprobs, float)
    sizes = np.asarray(shard_sizes, float)
    if scores.ndim != 2 or scores.shape[1] < 2 or len(sizes) != len(scores):
        raise InvalidInputError("exchangeability_power needs the per-shard scores of an exchangeability result "
                                "(shard_logprobs: one row per shard, the canonical order and at least one shuffled "
                                "one) and shard_sizes, one per shard")
    m, k = scores.shape
    per_item_sd = _null_sd(scores) / sizes.sum()
    if deltas is None:   # the bonus moves the statistic by (1 - 1/k) of it, against the null sd
        step = per_item_sd / (1 - 1 / k)
        deltas = [float(f"{c * step:.2g}") for c in (0, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5)]
    rng = np.random.default_rng(seed)
    rows = []
    for delta in deltas:
        rejected = 0
        for _ in range(n_sim):
            canonical = rng.integers(0, k, m)                   # a null draw plays the canonical order ...
            planted = scores.copy()
            planted[np.arange(m), canonical] += float(delta) * sizes   # ... with the bonus on its items
            # the test reads column 0 as the canonical order: swap each shard's pick there
            planted[np.arange(m), 0], planted[np.arange(m), canonical] = (planted[np.arange(m), canonical],
                                                                          planted[np.arange(m), 0])
            p, _ = randomization_p(planted, n_resamples, rng.integers(1 << 31))
            rejected += p < alpha                          # as findings() reads it: p < alpha
        low, high = proportion_ci(rejected, n_sim)
        rows.append({"delta": float(delta), "power": rejected / n_sim, "power_ci_low": low,
                     "power_ci_high": high, "n_sim": n_sim, "alpha": alpha})
    out = pd.DataFrame(rows)
    out.attrs.update(delta_80=_crossing(out.delta.to_numpy(), out.power.to_numpy(), 0.8), unit="nats per item",
                     null_sd_per_item=per_item_sd, n_shards=m, n_orders=k, n_items=int(sizes.sum()))
    return out


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """The x where y first reaches ``level`` (linear interpolation); NaN if it never does."""
    order = np.argsort(x)
    x, y = x[order], y[order]
    above = np.flatnonzero(y >= level)
    if len(above) == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(x[0])
    return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))

"""Calibration by simulation: false-positive rates and interval coverage of every test and interval.

Each procedure draws ``n_sim`` data sets of ``n`` items where the truth is known and counts how
often the test rejects at alpha (``false_pos_rate``, under a true null) and how often the interval
covers the true value (``coverage``). A valid procedure has rate <= alpha and coverage >= level,
up to the Monte Carlo error ``mc_se = sqrt(0.05 * 0.95 / n_sim)``.

Paired null data: two "models" with the SAME item-outcome distribution, paired through an item
effect (items differ in difficulty; both models see the same items):

- binary: item difficulty ``p_i ~ Beta(2, 2)``, outcomes ``a_i, b_i ~ Bernoulli(p_i)``;
- continuous: ``a_i = u_i + e_ai``, ``b_i = u_i + e_bi``, ``u_i ~ N(0, 1)``, noise ``e`` from
  ``normal``, ``lognormal`` (skewed) or ``t2`` (Student t, 2 df: infinite variance);
- derived: a pooled ratio like bits per byte, ``sum(loss) / sum(tokens)``, with ``tokens_i``
  an item property and ``loss_i = tokens_i * r_i * (1 + |e_i|)`` (item rate ``r_i``).

Single results: a proportion with true rate 0.1 or 0.5 (Clopper-Pearson), a mean of ``normal``,
``lognormal`` or ``t3`` values (BCa bootstrap, computed at every n >= 2 to show why it is only
reported from ``MIN_N_BOOTSTRAP``).

``benchmarks/stats_calibration.py`` prints the full table; ``tests/test_stats_calibration.py``
checks a fast version.

>>> rows = calibrate(["sign_flip"], ns=[3], n_sim=50, dists=["normal"])
>>> rows[0]["false_pos_rate"], rows[0]["coverage"]     # 3 items: can never reject, interval (-inf, inf)
(0.0, 1.0)
"""
from __future__ import annotations

import zlib

import numpy as np

from workbench.stats.bootstrap import bootstrap_ci
from workbench.stats.inference import mcnemar_exact, paired_bootstrap_ci
from workbench.stats.intervals import MIN_N_BOOTSTRAP, paired_proportion_ci, proportion_ci
from workbench.stats.permutation import paired_permutation, sign_flip

ALPHA = 0.05


def _noise(dist, rng, size):
    if dist == "normal":
        return rng.normal(size=size)
    if dist == "lognormal":
        return rng.lognormal(0.0, 1.0, size)
    if dist == "exponential":
        return rng.exponential(size=size)
    if dist in ("t2", "t3"):
        return rng.standard_t(int(dist[1]), size)
    raise ValueError(f"unknown distribution {dist!r}")


TRUE_MEAN = {"normal": 0.0, "lognormal": float(np.exp(0.5)), "exponential": 1.0, "t3": 0.0}


def _pooled(c):
    return np.sum(c["loss"], axis=-1) / np.sum(c["tokens"], axis=-1)


def _one_sim(proc, dist, n, rng, n_perm, n_boot):
    """(p_value or NaN, ci_low, ci_high, truth) for one simulated data set."""
    seed = int(rng.integers(2 ** 31))
    if proc == "mcnemar_exact":
        p = rng.beta(2, 2, n)
        a, b = (rng.random(n) < p).astype(float), (rng.random(n) < p).astype(float)
        _, lo, hi, _ = paired_proportion_ci(a, b)
        return mcnemar_exact(a, b).p_value, lo, hi, 0.0
    if proc == "sign_flip":
        u = rng.normal(size=n)
        d = (u + _noise(dist, rng, n)) - (u + _noise(dist, rng, n))
        r = sign_flip(d, n_resamples=n_perm, seed=seed)
        return r.p_value, r.ci_low, r.ci_high, 0.0
    if proc == "paired_permutation":
        tokens, rate = rng.integers(5, 50, n).astype(float), rng.lognormal(0, 0.5, n)
        ca = {"loss": tokens * rate * (1 + np.abs(_noise(dist, rng, n))), "tokens": tokens}
        cb = {"loss": tokens * rate * (1 + np.abs(_noise(dist, rng, n))), "tokens": tokens}
        r = paired_permutation(ca, cb, _pooled, n_resamples=n_perm, seed=seed)
        lo, hi, _ = paired_bootstrap_ci(ca, cb, _pooled, n_boot=n_boot, seed=seed, min_n=2)
        return r.p_value, lo, hi, 0.0
    if proc == "clopper_pearson":
        true_p = float(dist.split("=")[1])
        lo, hi = proportion_ci(int(np.sum(rng.random(n) < true_p)), n)
        return np.nan, lo, hi, true_p
    if proc == "bca_bootstrap":
        if n < 2:
            return np.nan, np.nan, np.nan, TRUE_MEAN[dist]
        ci = bootstrap_ci(_noise(dist, rng, n), n_boot=n_boot, method="bca", seed=seed, min_n=2)  # to show why
        return np.nan, ci.low, ci.high, TRUE_MEAN[dist]
    raise ValueError(f"unknown procedure {proc!r}")


PROCEDURES = {
    "mcnemar_exact": ("McNemar exact / paired Clopper-Pearson CI", ["binary"]),
    "sign_flip": ("sign-flip test / inverted CI", ["normal", "lognormal", "t2"]),
    "paired_permutation": ("paired permutation / paired BCa CI (pooled ratio)", ["normal", "lognormal", "t2"]),
    "clopper_pearson": ("summary: Clopper-Pearson", ["p=0.1", "p=0.5"]),
    "bca_bootstrap": ("summary: BCa bootstrap of a mean", ["normal", "lognormal", "t3"]),
}
# which n the library reports an interval at (below it: NaN, or (-inf, inf) for sign_flip)
REPORTED_FROM = {"paired_permutation": MIN_N_BOOTSTRAP, "bca_bootstrap": MIN_N_BOOTSTRAP}


def calibrate(procedures=None, ns=(1, 2, 3, 5, 10, 30, 100), n_sim: int = 400, dists=None, n_perm: int = 999,
              n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One row per procedure x distribution x n: ``procedure, data, n, n_sim, false_pos_rate,
    coverage, mc_se, reported`` (NaN rate for intervals of single results; NaN coverage where
    no interval was computed)."""
    rows = []
    for proc in procedures or list(PROCEDURES):
        for dist in PROCEDURES[proc][1]:
            if dists is not None and dist not in dists and proc not in ("mcnemar_exact", "clopper_pearson"):
                continue
            for n in ns:
                rng = np.random.default_rng([seed, n, zlib.crc32(f"{proc}:{dist}".encode())])
                sims = np.array([_one_sim(proc, dist, n, rng, n_perm, n_boot) for _ in range(n_sim)], dtype=float)
                p, lo, hi, truth = sims.T
                computed = ~(np.isnan(lo) | np.isnan(hi))
                rows.append(dict(procedure=proc, data=dist, n=n, n_sim=n_sim,
                                 false_pos_rate=float(np.mean(p <= ALPHA)) if np.isfinite(p).all() else np.nan,
                                 coverage=float(np.mean((lo <= truth) & (truth <= hi))) if computed.any() else np.nan,
                                 mc_se=float(np.sqrt(ALPHA * (1 - ALPHA) / n_sim)),
                                 reported=n >= REPORTED_FROM.get(proc, 1)))
    return rows

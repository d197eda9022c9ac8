"""How well a score separates members from non-members: AUROC, TPR at a low FPR, intervals, tests.

Scores are oriented so that higher means "more likely a member". The metrics:

- **AUROC** (``sklearn.metrics.roc_auc_score``; ties count one half): the chance that a random
  member scores above a random non-member (the Mann-Whitney statistic over ``n1 * n0``).
- **TPR at FPR alpha**: the largest true-positive rate over thresholds whose false-positive rate is
  at most ``alpha`` (the ROC curve's point, as Carlini et al. 2022 report it). It needs at least
  ``ceil(1 / alpha)`` non-members (100 for 1%): with fewer, the smallest non-zero FPR is above
  ``alpha``, so the number would be a TPR at 0% FPR under another name; it is NaN then, with a note.

**The AUROC's interval** is valid at every n, 1 member and 1 non-member included, and at an
AUROC of 0 or 1: the Clopper-Pearson interval of a proportion of ``k = min(n1, n0)`` trials, at
``k * AUROC`` successes (beta quantiles, which take a non-integer count). Why it holds: with
``n1 = n0 = 1`` the AUROC *is* one Bernoulli trial; in general Hoeffding (1963) writes the
two-sample U-statistic as an average of averages of ``k`` independent terms in [0, 1] with mean
AUROC, so it is less dispersed (in convex order) than a binomial proportion of ``k`` trials,
whose exact interval this is. It is conservative: coverage 96-100% in the simulations of
``tests/test_training_membership.py`` (normal, extreme two-point and tied scores, n from 1 to
64 per class), where the stratified bootstrap it replaces covered 86-90% at an AUROC of
0.97-0.99 with 50-64 per class and gave no interval at all at 1.0. At an AUROC of 1.0 with 64
members and 64 non-members it is [0.944, 1].

**TPR intervals** (percentile, ``n_boot`` seeded resamples): a *stratified* bootstrap, members
resampled among members and non-members among non-members, so every resample keeps the class
sizes. The rule of :mod:`workbench.stats.intervals` applied per class: an interval only when
each class has at least ``MIN_N_BOOTSTRAP // 2`` (50) texts, NaN below it with the reason. The
blind baseline's out-of-fold scores are treated as fixed numbers (the classifier is not refitted
per resample), so its intervals leave out the refitting noise.

**Two scores of the same texts** (an attack and the blind baseline, or one attack on two
models): the AUROC difference with a paired stratified bootstrap interval (the same resampled
texts for both scores; 50 per class, as above) and a two-sided test of equal AUROCs:
**DeLong's test** (DeLong, DeLong & Clarke-Pearson 1988; the fast form of Sun & Xu 2014) where
it holds, and where it does not, an **interval-overlap test**: p is the smallest alpha at which
the two AUROCs' own ``1 - alpha/2`` intervals (above) do not overlap, valid whatever the scales
of the two scores and their dependence (if both AUROCs are theta, a rejection needs one of the
intervals to miss theta), and conservative. DeLong does not hold with fewer than
``MIN_PER_CLASS_DELONG`` texts in a class (in simulation its normal approximation rejected 7% at
5% and 3% at 1% with 2 per class) or where its variance estimate collapses (e.g. a score that
separates the classes perfectly beside a constant one: DeLong said p = 0). A permutation test
that swaps the two scores of a text is exact only for scores on one scale; on ranks within
each score it rejected 66% at 50% with 2 per class in simulation, so it is not used. No p-value is ever 0.

>>> import numpy as np
>>> y = np.r_[np.ones(4, bool), np.zeros(4, bool)]
>>> auroc(np.array([4, 3, 2, 1, 4, 0, 0, 0.]), y)   # 12.5 of 16 pairs (the 4-4 tie counts 1/2)
0.78125
>>> [round(v, 3) for v in auroc_interval(1.0, 64, 64)]   # perfect separation still has an interval
[0.944, 1.0]
>>> d, p, test = compare_aurocs(np.arange(8.)[::-1], np.ones(8), y)   # DeLong said p = 0 here
>>> d, test, 0 < p <= 1
(0.5, 'interval overlap', True)
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from workbench.stats import MIN_N_BOOTSTRAP

MIN_PER_CLASS = MIN_N_BOOTSTRAP // 2
MIN_PER_CLASS_DELONG = 10
N_BOOT = 2000
FPRS = (0.01, 0.05)
AUROC_INTERVAL = "Clopper-Pearson on min(n1, n0) trials (conservative at every n; Hoeffding 1963)"


def auroc(scores, is_member) -> float:
    y = np.asarray(is_member, bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, float)))


def auroc_interval(value: float, n1: int, n0: int, level: float = 0.95) -> tuple[float, float]:
    """The AUROC's interval: Clopper-Pearson at ``k * value`` successes of ``k = min(n1, n0)``
    trials (see the module doc). NaN when a class is empty or the AUROC is NaN."""
    return _clopper_pearson(value, min(int(n1), int(n0)), (1 - level) / 2)


def _clopper_pearson(value: float, k: int, tail: float) -> tuple[float, float]:
    """Bounds with ``tail`` probability outside each (the tail given as such: no 1 - level rounding)."""
    if k < 1 or not np.isfinite(value):
        return float("nan"), float("nan")
    x = float(value) * k
    low = 0.0 if x <= 0 else float(sps.beta.ppf(tail, x, k - x + 1))
    high = 1.0 if x >= k else float(sps.beta.isf(tail, x + 1, k - x))
    return low, high


def _auroc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of each row of (B, n1) member and (B, n0) non-member scores (Mann-Whitney U)."""
    n1, n0 = pos.shape[-1], neg.shape[-1]
    ranks = sps.rankdata(np.concatenate([pos, neg], axis=-1), axis=-1)
    return (ranks[..., :n1].sum(-1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _tpr_rows(pos: np.ndarray, neg: np.ndarray, alpha: float) -> np.ndarray:
    """TPR at FPR <= alpha per row: members above the (m+1)-th largest non-member, m = floor(alpha n0)
    (the best threshold that lets at most m non-members through)."""
    n0 = neg.shape[-1]
    m = int(math.floor(alpha * n0 + 1e-9))
    cut = np.sort(neg, axis=-1)[..., n0 - 1 - m]
    return (pos > cut[..., None]).mean(-1)


def tpr_at_fpr(scores, is_member, alpha: float) -> float:
    """TPR at FPR <= alpha; NaN with fewer than ceil(1/alpha) non-members (see the module doc)."""
    s, y = np.asarray(scores, float), np.asarray(is_member, bool)
    if (~y).sum() < math.ceil(1 / alpha - 1e-9) or not y.any():
        return float("nan")
    return float(_tpr_rows(s[y][None], s[~y][None], alpha)[0])


def _resample(n1: int, n0: int, n_boot: int, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n1, (n_boot, n1)), rng.integers(0, n0, (n_boot, n0))


def _percentile(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0 or np.ptp(values) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def interval_note(n1: int, n0: int) -> str | None:
    """Why a bootstrap interval is not given (None when it is)."""
    if min(n1, n0) < MIN_PER_CLASS:
        return (f"{n1} members and {n0} non-members: a stratified bootstrap interval needs at least "
                f"{MIN_PER_CLASS} of each (MIN_N_BOOTSTRAP // 2); it would under-cover")
    return None


def metric_rows(scores, is_member, n_boot: int = N_BOOT, level: float = 0.95, seed=0) -> list[dict]:
    """``{metric, value, ci_low, ci_high, n, note}`` for AUROC (its interval: :func:`auroc_interval`)
    and TPR at each FPR in ``FPRS`` (stratified bootstrap intervals)."""
    s, y = np.asarray(scores, float), np.asarray(is_member, bool)
    pos, neg = s[y], s[~y]
    n1, n0 = len(pos), len(neg)
    value = auroc(s, y)
    low, high = auroc_interval(value, n1, n0, level)
    rows = [{"metric": "auroc", "value": value, "ci_low": low, "ci_high": high, "n": n1 + n0,
             "note": None if np.isfinite(low) else "no interval without both members and non-members"}]
    note = interval_note(n1, n0)
    idx = None if note else _resample(n1, n0, n_boot, seed)
    for alpha in FPRS:
        low = high = float("nan")
        why = note
        if n0 < math.ceil(1 / alpha - 1e-9):
            why = f"{n0} non-members: TPR at {alpha:.0%} FPR needs at least {math.ceil(1 / alpha)}"
        elif idx is not None:
            low, high = _percentile(_tpr_rows(pos[idx[0]], neg[idx[1]], alpha), level)
            if not np.isfinite(low):
                why = "degenerate bootstrap (every resample gives the same value)"
        rows.append({"metric": f"tpr@{alpha:.0%}fpr", "value": tpr_at_fpr(s, y, alpha), "ci_low": low,
                     "ci_high": high, "n": n1 + n0, "note": why})
    return rows


def _placements(pos: np.ndarray, neg: np.ndarray):
    """DeLong's structural components: V10 (per member) and V01 (per non-member)."""
    n1, n0 = len(pos), len(neg)
    both = np.concatenate([pos, neg])
    r_all = sps.rankdata(both)
    r_pos, r_neg = sps.rankdata(pos), sps.rankdata(neg)
    v10 = (r_all[:n1] - r_pos) / n0
    v01 = 1 - (r_all[n1:] - r_neg) / n1
    return v10, v01


def _delong_variance(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    va10, va01 = _placements(a[y], a[~y])
    vb10, vb01 = _placements(b[y], b[~y])
    s10 = np.cov(np.vstack([va10, vb10]))
    s01 = np.cov(np.vstack([va01, vb01]))
    return float((s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(va10)
                 + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(va01))


def overlap_p(auc_a: float, auc_b: float, n1: int, n0: int) -> float:
    """Two-sided p of "equal AUROCs" from the two AUROCs' own intervals (:func:`auroc_interval`):
    the smallest ``alpha`` at which their ``1 - alpha / 2`` intervals are disjoint. Valid whatever
    the dependence between the two scores and whatever their scales (if both AUROCs equal theta,
    rejecting needs one interval to miss theta: probability at most alpha / 2 + alpha / 2);
    conservative."""
    if not (np.isfinite(auc_a) and np.isfinite(auc_b)):
        return float("nan")

    k = min(int(n1), int(n0))

    def disjoint(alpha: float) -> bool:   # each interval at 1 - alpha/2: alpha/4 outside each side
        with warnings.catch_warnings():   # boost's root finder gives up quietly enough in tails below 1e-300
            warnings.simplefilter("ignore", RuntimeWarning)
            la, ha = _clopper_pearson(auc_a, k, alpha / 4)
            lb, hb = _clopper_pearson(auc_b, k, alpha / 4)
        return la > hb or lb > ha

    if not disjoint(1.0):
        return 1.0
    lo, hi = -745.0, 0.0          # log(alpha): disjoint at exp(hi), not at exp(lo) (the intervals are [0, 1] there)
    if disjoint(math.exp(lo)):
        return float(np.finfo(float).tiny)
    for _ in range(45):   # log(alpha) to 2e-11
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if disjoint(math.exp(mid)) else (mid, hi)
    return max(float(math.exp(hi)), float(np.finfo(float).tiny))


def compare_aurocs(a, b, is_member) -> tuple[float, float, str]:
    """(AUROC(a) - AUROC(b), two-sided p, test) for two scores of the same texts: DeLong's test, or
    the interval-overlap test where DeLong does not hold (see the module doc)."""
    a, b, y = np.asarray(a, float), np.asarray(b, float), np.asarray(is_member, bool)
    if not (y.any() and (~y).any()):
        return float("nan"), float("nan"), "none"
    diff = auroc(a, y) - auroc(b, y)
    n1, n0 = int(y.sum()), int((~y).sum())
    if min(n1, n0) >= MIN_PER_CLASS_DELONG:
        var = _delong_variance(a, b, y)
        # a collapsed variance (below rounding noise of the placements) is no variance at all
        if np.isfinite(var) and var > 1e-12:
            p = float(2 * sps.norm.sf(abs(diff) / math.sqrt(var)))
            return float(diff), max(p, np.finfo(float).tiny), "delong"   # never 0: below 2.2e-308, not 0
    return float(diff), overlap_p(auroc(a, y), auroc(b, y), n1, n0), "interval overlap"


def delong(a, b, is_member) -> tuple[float, float]:
    """(AUROC(a) - AUROC(b), two-sided p) for two scores of the same texts (:func:`compare_aurocs`:
    DeLong's test, or the interval-overlap test where DeLong does not hold)."""
    diff, p, _ = compare_aurocs(a, b, is_member)
    return diff, p


def difference_row(a, b, is_member, n_boot: int = N_BOOT, level: float = 0.95, seed=0,
                   metric: str = "auroc_minus_blind") -> dict:
    """AUROC(a) - AUROC(b) with a paired stratified bootstrap interval and a two-sided p
    (:func:`compare_aurocs`; the test's name in ``test``)."""
    a, b, y = np.asarray(a, float), np.asarray(b, float), np.asarray(is_member, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    value, p, test = compare_aurocs(a, b, y)
    note = interval_note(n1, n0)
    low = high = float("nan")
    if note is None:
        i1, i0 = _resample(n1, n0, n_boot, seed)
        boot = _auroc_rows(a[y][i1], a[~y][i0]) - _auroc_rows(b[y][i1], b[~y][i0])
        low, high = _percentile(boot, level)
        if not np.isfinite(low):
            note = "degenerate bootstrap (every resample gives the same difference)"
    return {"metric": metric, "value": value, "ci_low": low, "ci_high": high, "n": n1 + n0,
            "note": note, "p_value": p, "test": test}

"""How well a score separates members from non-members: AUROC, TPR at a low FPR, intervals, tests.

Scores are oriented so that higher means "more likely a member". The metrics:

- **AUROC** (``sklearn.metrics.roc_auc_score``; ties count one half): the chance that a random
  member scores above a random non-member.
- **TPR at FPR alpha**: the largest true-positive rate over thresholds whose false-positive rate is
  at most ``alpha`` (the ROC curve's point, as Carlini et al. 2022 report it). It needs at least
  ``ceil(1 / alpha)`` non-members (100 for 1%): with fewer, the smallest non-zero FPR is above
  ``alpha``, so the number would be a TPR at 0% FPR under another name; it is NaN then, with a note.

**Intervals** (percentile, ``n_boot`` seeded resamples): a *stratified* bootstrap, members
resampled among members and non-members among non-members, so every resample keeps the class
sizes (AUROC is undefined without both classes). The rule of :mod:`workbench.stats.intervals`
applied per class: an interval only when each class has at least ``MIN_N_BOOTSTRAP // 2`` (50)
texts, NaN below it with the reason, because the bootstrap under-covers at small n. The blind
baseline's out-of-fold scores are resampled as fixed numbers (the classifier is not refitted per
resample), so its interval leaves out the refitting noise.

**Attack minus blind**: the AUROC difference on the same texts, with a paired stratified
bootstrap interval (the same resampled texts for both scores) and **DeLong's test** for two
correlated AUROCs (DeLong, DeLong & Clarke-Pearson 1988; the fast form of Sun & Xu 2014), two-sided.

>>> import numpy as np
>>> y = np.r_[np.ones(4), np.zeros(4)].astype(bool)
>>> auroc(np.array([4, 3, 2, 1, 4, 0, 0, 0.]), y)   # 12.5 of 16 pairs (the 4-4 tie counts 1/2)
0.78125
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from workbench.stats import MIN_N_BOOTSTRAP

MIN_PER_CLASS = MIN_N_BOOTSTRAP // 2
N_BOOT = 2000
FPRS = (0.01, 0.05)


def auroc(scores, is_member) -> float:
    y = np.asarray(is_member, bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, float)))


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
    """``{metric, value, ci_low, ci_high, n, note}`` for AUROC and TPR at each FPR in ``FPRS``."""
    s, y = np.asarray(scores, float), np.asarray(is_member, bool)
    pos, neg = s[y], s[~y]
    n1, n0 = len(pos), len(neg)
    note = interval_note(n1, n0)
    idx = None if note else _resample(n1, n0, n_boot, seed)
    rows = []
    for name, alpha in [("auroc", None)] + [(f"tpr@{a:.0%}fpr", a) for a in FPRS]:
        value = auroc(s, y) if alpha is None else tpr_at_fpr(s, y, alpha)
        low = high = float("nan")
        why = note
        if alpha is not None and n0 < math.ceil(1 / alpha - 1e-9):
            why = f"{n0} non-members: TPR at {alpha:.0%} FPR needs at least {math.ceil(1 / alpha)}"
        elif idx is not None:
            boot = _auroc_rows(pos[idx[0]], neg[idx[1]]) if alpha is None else _tpr_rows(pos[idx[0]], neg[idx[1]], alpha)
            low, high = _percentile(boot, level)
            if not np.isfinite(low):
                why = "degenerate bootstrap (every resample gives the same value)"
        rows.append({"metric": name, "value": value, "ci_low": low, "ci_high": high, "n": n1 + n0, "note": why})
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


def delong(a, b, is_member) -> tuple[float, float]:
    """(AUROC(a) - AUROC(b), two-sided p) of DeLong's test for two scores of the same texts."""
    a, b, y = np.asarray(a, float), np.asarray(b, float), np.asarray(is_member, bool)
    if min(y.sum(), (~y).sum()) < 2:
        return float("nan"), float("nan")
    va10, va01 = _placements(a[y], a[~y])
    vb10, vb01 = _placements(b[y], b[~y])
    diff = va10.mean() - vb10.mean()
    s10 = np.cov(np.vstack([va10, vb10]))
    s01 = np.cov(np.vstack([va01, vb01]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(va10) + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(va01)
    if var <= 0:
        return float(diff), (1.0 if diff == 0 else 0.0)
    z = diff / math.sqrt(var)
    return float(diff), float(2 * sps.norm.sf(abs(z)))


def difference_row(a, b, is_member, n_boot: int = N_BOOT, level: float = 0.95, seed=0) -> dict:
    """AUROC(a) - AUROC(b) with a paired stratified bootstrap interval and DeLong's p-value."""
    a, b, y = np.asarray(a, float), np.asarray(b, float), np.asarray(is_member, bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    value, p = delong(a, b, y)
    note = interval_note(n1, n0)
    low = high = float("nan")
    if note is None:
        i1, i0 = _resample(n1, n0, n_boot, seed)
        boot = _auroc_rows(a[y][i1], a[~y][i0]) - _auroc_rows(b[y][i1], b[~y][i0])
        low, high = _percentile(boot, level)
    return {"metric": "auroc_minus_blind", "value": value, "ci_low": low, "ci_high": high, "n": n1 + n0,
            "note": note, "p_value": p}

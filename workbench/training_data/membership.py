"""``wb.membership``: was this text in the model's training data? With the blind baseline beside it.

Every run scores the texts with the chosen attacks (:mod:`workbench.training_data.attacks`) and
with a model-free classifier (:mod:`workbench.training_data.blind`) fitted to tell the same two
sets apart. The headline is "attack minus blind": an attack that does no better than the blind
baseline shows how the two sets differ, not what the model was trained on.

``summary()`` rows (``method, metric, value, ci_low, ci_high, n``), for every method and "blind":
``auroc``, ``tpr@1%fpr``, ``tpr@5%fpr`` (intervals: :mod:`workbench.training_data.metrics`),
``p_vs_chance`` (one-sided Mann-Whitney test of AUROC > 0.5, in ``value``); and for every attack
``auroc_minus_blind`` (paired stratified bootstrap interval) and ``p_vs_blind`` (DeLong's
two-sided test of equal AUROCs on the same texts, in ``value``). ``findings()`` says in words
which attacks show evidence beyond the blind baseline.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2")
>>> mia = wb.membership(m, members=["The cat sat on the mat.", "A dog ran home."] * 3,
...                     nonmembers=["Paris is in France.", "One two three four."] * 3, cache=False)
>>> sorted(mia.summary().method.unique())
['blind', 'loss', 'min_k', 'min_k_pp', 'zlib']
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.errors import InvalidInputError
from workbench.results import Result
from workbench.training_data import metrics as M
from workbench.training_data.attacks import DEFAULT_METHODS, MODEL_METHODS, attack_scores
from workbench.training_data.blind import N_FOLDS, blind_scores
from workbench.validate import BOOL, Int, Optional, Real, check_texts, checked
from workbench.models.checks import check_model

ALPHA = 0.05
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".gz")


def read_texts(data, what: str, column: str = "text") -> list[str]:
    """Texts from a list, a pandas Series or DataFrame (``column``), or a .jsonl/.json/.csv/.tsv file."""
    from workbench.datafiles import read_table
    if isinstance(data, Path) or (isinstance(data, str) and data.lower().endswith(_DATA_SUFFIXES)
                                  and os.path.isfile(data)):
        data = read_table(data, required=(column,), what=what)
    if isinstance(data, pd.DataFrame):
        if column not in data.columns:
            raise InvalidInputError(f"{what}: the DataFrame has no column {column!r} (columns: {list(data.columns)}); "
                                    "pass text_column= naming the column that holds the texts")
        data = data[column]
    if isinstance(data, pd.Series):
        data = data.tolist()
    return check_texts(data, what)


@dataclass
class MembershipResult(Result):
    """``items`` (text, is_member, one score column per method and ``blind``; higher = member),
    ``summary()``, ``findings()``, ``plot()`` (ROC curves), ``provenance``."""

    methods: tuple = ()
    n_boot: int = M.N_BOOT
    seed: int = 0
    _summary: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def items(self) -> pd.DataFrame:
        return self.frame

    def summary(self) -> pd.DataFrame:
        if self._summary is None:
            self._summary = _summary(self.frame, self.methods, self.n_boot, self.seed)
        out = self._summary.copy()
        out.attrs = dict(self._summary.attrs)
        return out

    def findings(self, alpha: float = ALPHA) -> pd.DataFrame:
        """One row per attack: its AUROC, the blind AUROC, the difference with its interval, DeLong's
        p (raw, and Holm-adjusted across the attacks), and ``verdict``: "evidence beyond the blind
        baseline" only when the attack beats the baseline (difference > 0, Holm-adjusted DeLong
        p < alpha) AND chance (Holm-adjusted Mann-Whitney p < alpha). The second
        condition matters because a cross-fitted blind AUROC falls below 0.5 on sets with no shift
        (each text's own n-grams are missing from the folds that score it, so they lean to the
        other class): below 0.5 it says "no shift found", and 0.5 is then the bar."""
        from workbench.stats import holm

        s = self.summary()
        get = lambda m, k, col="value": float(s[(s.method == m) & (s.metric == k)][col].iloc[0])  # noqa: E731
        rows = []
        blind_auc, blind_p = get("blind", "auroc"), get("blind", "p_vs_chance")
        # several attacks are tried on the same texts: Holm-adjust each family of p-values across them
        adjust = lambda key: dict(zip(self.methods, holm([get(m, key) for m in self.methods])))  # noqa: E731
        p_blind, p_chance = adjust("p_vs_blind"), adjust("p_vs_chance")
        for m in self.methods:
            diff, p = get(m, "auroc_minus_blind"), p_blind[m]
            # beating a blind score that fell below chance is no evidence: chance must be beaten too
            beyond = bool(diff > 0 and p < alpha and p_chance[m] < alpha)
            verdict = "evidence beyond the blind baseline" if beyond else "no evidence beyond the blind baseline"
            if not beyond and blind_p < alpha:
                verdict += " (the blind baseline itself separates the sets: they differ in distribution)"
            rows.append({"method": m, "auroc": get(m, "auroc"), "blind_auroc": blind_auc, "auroc_minus_blind": diff,
                         "ci_low": get(m, "auroc_minus_blind", "ci_low"),
                         "ci_high": get(m, "auroc_minus_blind", "ci_high"), "p_vs_blind": get(m, "p_vs_blind"),
                         "p_vs_blind_holm": p,
                         "beyond_blind": beyond, "verdict": verdict})
        return pd.DataFrame(rows)

    def plot(self, ax=None, **kwargs):
        """ROC curves of every method, the blind baseline dashed, chance dotted."""
        import matplotlib.pyplot as plt
        from sklearn.metrics import roc_curve

        if ax is None:
            _, ax = plt.subplots(figsize=(4.8, 4.5))
        y = self.frame.is_member.to_numpy(bool)
        for m in (*self.methods, "blind"):
            s = self.frame[m].to_numpy(float)
            ok = np.isfinite(s)
            if not (y[ok].any() and (~y[ok]).any()):
                continue
            fpr, tpr, _ = roc_curve(y[ok], s[ok])
            style = dict(color="black", ls="--", lw=1.5) if m == "blind" else dict(lw=1.5)
            ax.plot(fpr, tpr, label=f"{m} (AUROC {M.auroc(s[ok], y[ok]):.2f})", **style, **kwargs)
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate",
               title=f"membership: {self.provenance.get('model', {}).get('name', '')}")
        ax.legend(fontsize="small", loc="lower right")
        return ax


def _p_vs_chance(scores: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(scores)
    pos, neg = scores[ok & y], scores[ok & ~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(sps.mannwhitneyu(pos, neg, alternative="greater").pvalue)


def _summary(items: pd.DataFrame, methods, n_boot: int, seed) -> pd.DataFrame:
    y = items.is_member.to_numpy(bool)
    rows, notes = [], []

    def add(method, r):
        rows.append({"method": method, **{k: r[k] for k in ("metric", "value", "ci_low", "ci_high", "n")}})
        if r.get("note"):
            notes.append({"method": method, "metric": r["metric"], "note": r["note"]})

    blind = items["blind"].to_numpy(float)
    for m in (*methods, "blind"):
        s = items[m].to_numpy(float)
        ok = np.isfinite(s)
        for r in M.metric_rows(s[ok], y[ok], n_boot=n_boot, seed=seed):
            add(m, r)
        add(m, {"metric": "p_vs_chance", "value": _p_vs_chance(s, y), "ci_low": np.nan, "ci_high": np.nan,
                "n": int(ok.sum())})
        if m != "blind":
            ok &= np.isfinite(blind)
            d = M.difference_row(s[ok], blind[ok], y[ok], n_boot=n_boot, seed=seed)
            add(m, d)
            add(m, {"metric": "p_vs_blind", "value": d["p_value"], "ci_low": np.nan, "ci_high": np.nan,
                    "n": d["n"], "note": None})
    out = pd.DataFrame(rows, columns=["method", "metric", "value", "ci_low", "ci_high", "n"])
    out.attrs.update(notes=notes, level=0.95, n_boot=n_boot, seed=seed, min_per_class=M.MIN_PER_CLASS,
                     intervals="percentile, stratified bootstrap by class (paired for auroc_minus_blind)",
                     tests={"p_vs_blind": "DeLong (two-sided)", "p_vs_chance": "Mann-Whitney U (one-sided)"},
                     orientation="every score: higher = more likely a member")
    return out


@checked(k=Real(gt=0, le=1), n_boot=Int(min=100), seed=Int(min=0), n_folds=Int(min=2),
         max_tokens=Optional(Int(min=1)), cache=BOOL, progress=Optional(BOOL))
def membership(model, members, nonmembers, methods=DEFAULT_METHODS, reference=None, *, k: float = 0.2,
               text_column: str = "text", n_folds: int = N_FOLDS, n_boot: int = M.N_BOOT, seed: int = 0,
               max_tokens: int | None = None, cache: bool = True, progress=None) -> MembershipResult:
    """Membership-inference attacks on ``members`` vs ``nonmembers``, beside the blind baseline.

    Parameters
    ----------
    members, nonmembers : texts known (or suspected) to be in / out of the training data: lists,
        a DataFrame or Series (``text_column``), or a .jsonl/.json/.csv/.tsv file with that column.
    methods : any of "loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference" (see
        :mod:`workbench.training_data.attacks`). "reference" needs ``reference`` (a second loaded
        causal model) and is added when one is given.
    k : share of lowest-scoring tokens for Min-K% and Min-K%++ (0.2 as the papers' default).
    n_folds, seed : the blind baseline's cross-fitting (stratified, seeded); ``seed`` also seeds
        the bootstrap.
    max_tokens : score only each text's first tokens (texts longer than the window are refused
        otherwise).

    Returns a :class:`MembershipResult`; every score is oriented so that higher = member.
    """
    check_model(model, ("causal",), "membership")
    mem = read_texts(members, "membership members", text_column)
    non = read_texts(nonmembers, "membership nonmembers", text_column)
    if not mem or not non:
        raise InvalidInputError("membership needs at least one member and one non-member text; got "
                                f"{len(mem)} members and {len(non)} non-members")
    both = set(mem) & set(non)
    if both:
        raise InvalidInputError(f"{len(both)} text(s) are both members and non-members (e.g. {next(iter(both))!r}); "
                                "a text is one or the other: remove the duplicates")
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(dict.fromkeys(methods))
    bad = [m for m in methods if m not in MODEL_METHODS]
    if bad:
        hint = " (the blind baseline is always included)" if "blind" in bad else ""
        raise InvalidInputError(f"unknown membership method(s) {bad}{hint}; choose from {MODEL_METHODS}")
    if reference is not None:
        check_model(reference, ("causal",), "membership reference")
        if "reference" not in methods:
            methods += ("reference",)
    elif "reference" in methods:
        raise InvalidInputError("method 'reference' needs a reference model: pass reference=wb.load_model(...)")
    if not methods:
        raise InvalidInputError(f"give at least one membership method from {MODEL_METHODS}")

    texts = mem + non
    y = np.r_[np.ones(len(mem), bool), np.zeros(len(non), bool)]
    t0 = time.perf_counter()
    scores = attack_scores(model, texts, methods, k, reference, max_tokens=max_tokens, cache=cache, progress=progress)
    t1 = time.perf_counter()
    items = pd.DataFrame({"text": texts, "is_member": y, **{m: scores[m] for m in methods},
                          "blind": blind_scores(texts, y, n_folds=n_folds, seed=seed)})
    prov = {"model": {"name": model.name, "fingerprint_id": model.fingerprint_id, "state_id": model.state_id,
                      "licence": model.licence},
            "reference": None if reference is None else {"name": reference.name,
                                                         "fingerprint_id": reference.fingerprint_id},
            "options": {"methods": list(methods), "k": k, "n_folds": n_folds, "n_boot": n_boot, "seed": seed,
                        "max_tokens": max_tokens},
            "n_members": len(mem), "n_nonmembers": len(non),
            "timings_s": {"scoring": t1 - t0, "blind": time.perf_counter() - t1}}
    return MembershipResult(frame=items, provenance=prov, methods=methods, n_boot=n_boot, seed=seed)

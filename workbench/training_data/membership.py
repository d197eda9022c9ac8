"""``wb.membership``: was this text in the model's training data? With its controls beside it.

Every run scores the texts with the chosen attacks (:mod:`workbench.training_data.attacks`) and
with a model-free classifier (:mod:`workbench.training_data.blind`) fitted to tell the same two
sets apart. How to read it (``findings()``), in this order:

1. **Each attack against chance**: its AUROC with its own interval (valid at every n, see
   :mod:`workbench.training_data.metrics`) and a one-sided test of AUROC > 0.5, Holm-adjusted
   across the attacks. This is the headline; "beats chance" needs both (the interval is
   conservative, so near 0.5 the test may reject while the interval still holds 0.5: no verdict).
2. **The blind baseline is a detector of distribution shift**, not a bar to subtract: if its
   interval lies above 0.5, the sets can be told apart without the model, so any attack may be
   measuring that, and there is no verdict. If it lies below 0.5, the blind classifier leans away
   from this split (cross-fitting on few texts does that now and then); it found no shift to use,
   and "attack minus blind" would only flatter the attack, so that comparison is void and the
   attack is read against chance. Only a blind AUROC above 0.5 whose interval holds 0.5 is a bar
   the attack must also beat (paired test on the same texts).
3. **A single model cannot show what the attack scores on a model that never saw the texts**:
   an attack can separate two random halves of one source on any model by chance or by what the
   texts are (notebook 08's "lowercase" scored 0.606 on the fine-tuned copy and 0.576 on the
   original). Give ``control=`` a model that never saw them (the base model of a fine-tune, or
   one of the same family trained before the texts existed): each attack's AUROC there and the
   paired difference on the same texts, which the attack must beat too.

``summary()`` rows (``method, metric, value, ci_low, ci_high, n``; the interval is that of the
row's own ``value``), for every method and "blind": ``auroc``, ``tpr@1%fpr``, ``tpr@5%fpr``,
``p_vs_chance`` (one-sided Mann-Whitney test of AUROC > 0.5, in ``value``); for every attack
``auroc_minus_blind`` (paired stratified bootstrap interval) and ``p_vs_blind`` (two-sided test
of equal AUROCs on the same texts: DeLong, or a conservative interval-overlap test where DeLong
does not hold); with ``control=``, ``control_auroc``, ``auroc_minus_control`` and ``p_vs_control`` alike.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> m = tiny_model("gpt2")
>>> mia = wb.membership(m, members=["The cat sat on the mat.", "A dog ran home.", "We ate rice today."],
...                     nonmembers=["Paris is in France.", "One two three four.", "Rain fell at noon."], cache=False)
>>> sorted(mia.summary().method.unique())
['blind', 'loss', 'min_k', 'min_k_pp', 'zlib']
>>> list(mia.findings().columns[:5])
['method', 'auroc', 'auroc_ci_low', 'auroc_ci_high', 'p_vs_chance_holm']
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.datafiles import read_table
from workbench.errors import InvalidInputError
from workbench.models.checks import check_model
from workbench.results import Result
from workbench.stats import holm
from workbench.training_data import metrics as M
from workbench.training_data.attacks import DEFAULT_METHODS, MODEL_METHODS, attack_scores
from workbench.training_data.blind import N_FOLDS, blind_scores
from workbench.validate import BOOL, Int, Optional, Real, check_texts, checked

ALPHA = 0.05
CONTROL = "control_"   # items column of an attack's score on the control model: control_<method>
_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".gz")
SINGLE_MODEL_NOTE = ("A verdict on one model cannot see what the attack scores on a model that never saw these "
                     "texts: an attack can separate two halves of one source on any model (notebook 08's "
                     "'lowercase': 0.606 on the fine-tuned copy, 0.576 on the original). Pass control= a model "
                     "that never saw them (e.g. the base model of a fine-tune) for that comparison.")


def _looks_like_path(s: str) -> bool:
    """A string meant as a file name rather than a text: one 'word' with a data suffix or a folder."""
    return "\n" not in s and len(s) < 4096 and (s.lower().endswith(_DATA_SUFFIXES)
                                               or (os.sep in s and " " not in s.strip()))


def read_texts(data, what: str, column: str = "text") -> list[str]:
    """Texts from a list, a pandas Series or DataFrame (``column``), or a .jsonl/.json/.csv/.tsv file."""
    if isinstance(data, (str, Path)) and not os.path.isfile(data):
        if os.path.isdir(data):
            raise InvalidInputError(f"{what}: {str(data)!r} is a folder; give the path of a .jsonl/.json/.csv/.tsv "
                                    "file in it, or the texts as a list")
        if isinstance(data, Path) or _looks_like_path(data):
            raise InvalidInputError(f"{what}: the file {str(data)!r} does not exist (looked from {os.getcwd()!r}); "
                                    "give the path of a .jsonl/.json/.csv/.tsv file, or the texts as a list")
    if isinstance(data, (str, Path)) and os.path.isfile(data):
        data = read_table(data, required=(column,), what=what)
    if isinstance(data, pd.DataFrame):
        if column not in data.columns:
            raise InvalidInputError(f"{what}: the DataFrame has no column {column!r} (columns: {list(data.columns)}); "
                                    "pass text_column= naming the column that holds the texts")
        data = data[column]
    if isinstance(data, pd.Series):
        data = data.tolist()
    return check_texts(data, what)


def _unique(texts: list[str]) -> tuple[list[str], int]:
    """The texts once each, in first-seen order, and how many repeats were dropped."""
    out = list(dict.fromkeys(texts))
    return out, len(texts) - len(out)


@dataclass
class MembershipResult(Result):
    """``items`` (text, is_member, one score column per method, ``blind``, and ``control_<method>``
    with a control model; higher = member), ``summary()``, ``findings()``, ``plot()`` (ROC
    curves), ``provenance``."""

    methods: tuple = ()
    n_boot: int = M.N_BOOT
    seed: int = 0
    _summary: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def items(self) -> pd.DataFrame:
        return self.frame

    @property
    def has_control(self) -> bool:
        return bool(self.methods) and all(f"{CONTROL}{m}" in self.frame.columns for m in self.methods)

    def summary(self) -> pd.DataFrame:
        if self._summary is None:
            self._summary = _summary(self.frame, self.methods, self.n_boot, self.seed, self.has_control)
        out = self._summary.copy()
        out.attrs = dict(self._summary.attrs)
        return out

    def findings(self, alpha: float = ALPHA) -> pd.DataFrame:
        """One row per attack, read in the order of the module doc: the attack against chance
        (``auroc`` with ``auroc_ci_low``/``auroc_ci_high``, ``p_vs_chance_holm``), the blind
        baseline as a shift detector (``blind_auroc`` with ``blind_ci_low``/``blind_ci_high``,
        ``blind_reading``), the comparison with the blind baseline where it is a bar
        (``auroc_minus_blind`` with ``diff_ci_low``/``diff_ci_high``, ``p_vs_blind_holm``; NaN where
        the blind AUROC is at or below 0.5, or its interval excludes 0.5), with ``control=`` the
        control model (``control_auroc`` [...], ``auroc_minus_control`` [...], ``p_vs_control_holm``),
        then ``beyond_blind`` (the attack beats chance: Holm p < alpha AND its interval above 0.5;
        the blind check passes; and the attack beats a blind baseline above chance),
        ``beyond_control`` (also beats the control model; None without one) and the ``verdict`` in
        words. p-values are Holm-adjusted across the attacks,
        one family per comparison. ``attrs["note"]``: what a verdict without a control cannot see."""
        s = self.summary()
        get = lambda m, k, col="value": float(s[(s.method == m) & (s.metric == k)][col].iloc[0])  # noqa: E731
        adjust = lambda key: dict(zip(self.methods, holm([get(m, key) for m in self.methods])))  # noqa: E731
        p_chance, p_blind = adjust("p_vs_chance"), adjust("p_vs_blind")
        p_control = adjust("p_vs_control") if self.has_control else {}
        blind = (get("blind", "auroc"), get("blind", "auroc", "ci_low"), get("blind", "auroc", "ci_high"))
        shifted, leaning = blind[1] > 0.5, blind[2] < 0.5
        blind_is_bar = blind[0] > 0.5 and not (shifted or leaning)
        if shifted:
            blind_reading = "sets differ: the blind baseline tells them apart without the model (no verdict)"
        elif leaning:
            blind_reading = ("below chance: no shift found; the blind classifier leans away from this split, "
                             "so the comparison with it is void and chance is the bar")
        elif blind_is_bar:
            blind_reading = "no shift shown; the blind AUROC is above 0.5, so the attack must beat it too"
        else:
            blind_reading = "no shift shown (at or below 0.5: chance is the bar)"
        rows = []
        for m in self.methods:
            auc, lo, hi = get(m, "auroc"), get(m, "auroc", "ci_low"), get(m, "auroc", "ci_high")
            # both rows the reading rests on must say so: the test (Holm) and the AUROC's own interval
            beats_chance = bool(auc > 0.5 and p_chance[m] < alpha and lo > 0.5)
            diff = {k: get(m, "auroc_minus_blind", c) for k, c in
                    (("auroc_minus_blind", "value"), ("diff_ci_low", "ci_low"), ("diff_ci_high", "ci_high"))}
            beats_blind = bool(diff["auroc_minus_blind"] > 0 and p_blind[m] < alpha)
            if not blind_is_bar:   # a blind at or below chance, or a void one, is no bar: never shown as one
                diff = dict.fromkeys(diff, np.nan)
            beyond = bool(not shifted and beats_chance and (beats_blind or not blind_is_bar))
            row = {"method": m, "auroc": auc, "auroc_ci_low": lo, "auroc_ci_high": hi,
                   "p_vs_chance_holm": p_chance[m], "blind_auroc": blind[0], "blind_ci_low": blind[1],
                   "blind_ci_high": blind[2], "blind_reading": blind_reading, **diff,
                   "p_vs_blind_holm": p_blind[m] if blind_is_bar else np.nan}
            beyond_control = None
            if self.has_control:
                c = {"control_auroc": get(m, "control_auroc"), "control_ci_low": get(m, "control_auroc", "ci_low"),
                     "control_ci_high": get(m, "control_auroc", "ci_high"),
                     "auroc_minus_control": get(m, "auroc_minus_control"),
                     "control_diff_ci_low": get(m, "auroc_minus_control", "ci_low"),
                     "control_diff_ci_high": get(m, "auroc_minus_control", "ci_high"),
                     "p_vs_control_holm": p_control[m]}
                row.update(c)
                if np.isfinite(c["control_auroc"]):
                    beyond_control = bool(beyond and c["auroc_minus_control"] > 0 and p_control[m] < alpha)
            row.update(beyond_blind=beyond, beyond_control=beyond_control,
                       verdict=_verdict(auc, lo, hi, p_chance[m], beats_chance, blind, shifted, blind_is_bar,
                                        beats_blind, p_blind[m], beyond, beyond_control, row, alpha))
            rows.append(row)
        out = pd.DataFrame(rows)
        out.attrs.update(note=SINGLE_MODEL_NOTE if not self.has_control else
                         "control: each attack on a model that never saw the texts, on the same texts (paired)",
                         alpha=alpha, adjustment="Holm across the attacks, one family per comparison",
                         auroc_interval=M.AUROC_INTERVAL, duplicates_dropped=self.provenance.get("duplicates_dropped"))
        return out

    def plot(self, ax=None, log: bool = False, **kwargs):
        """ROC curves of every method, the blind baseline dashed, chance dotted. ``log=True``: both
        axes on a log scale, the view of the low false-positive region where a membership attack
        must work to be of use (Carlini et al. 2022), from one false positive in the non-members
        (the smallest rate this data can show) to 1, with 1% and 5% marked."""
        import matplotlib.pyplot as plt
        from sklearn.metrics import roc_curve

        if ax is None:
            _, ax = plt.subplots(figsize=(4.8, 4.5))
        y = self.frame.is_member.to_numpy(bool)
        n0 = int((~y).sum())
        floor = 1.0 / max(n0, 1)
        for m in (*self.methods, "blind"):
            s = self.frame[m].to_numpy(float)
            ok = np.isfinite(s)
            if not (y[ok].any() and (~y[ok]).any()):
                continue
            fpr, tpr, _ = roc_curve(y[ok], s[ok])
            style = dict(color="black", ls="--", lw=1.5) if m == "blind" else dict(lw=1.5)
            if log:   # a step at FPR 0 cannot be drawn on a log axis: start at one false positive
                fpr, tpr = np.clip(fpr, floor, 1.0), np.clip(tpr, floor, 1.0)
            ax.plot(fpr, tpr, label=f"{m} (AUROC {M.auroc(s[ok], y[ok]):.2f})", drawstyle="steps-post" if log else None,
                    **style, **kwargs)
        if log:
            grid = np.logspace(np.log10(floor), 0, 50)
            ax.plot(grid, grid, color="grey", ls=":", lw=1, label="chance")
            for rate in (0.01, 0.05):
                if rate >= floor:
                    ax.axvline(rate, color="grey", lw=0.8, alpha=0.6)
                    ax.text(rate, floor * 1.15, f" {rate:.0%}", fontsize=8, color="grey")
            ax.set(xscale="log", yscale="log", xlim=(floor, 1), ylim=(floor, 1.05))
        else:
            ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1, label="chance")
        name = self.provenance.get("model", {}).get("name", "")
        ax.set(xlabel="false-positive rate" + (" (log)" if log else ""), ylabel="true-positive rate" + (" (log)" if log else ""),
               title=f"membership: {name}" + (f"\nlow false-positive region ({n0} non-members)" if log else ""))
        ax.legend(fontsize="small", loc="lower right")
        return ax


def _fmt(v, lo, hi) -> str:
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _verdict(auc, lo, hi, p_chance, beats_chance, blind, shifted, blind_is_bar, beats_blind, p_blind, beyond,
             beyond_control, row, alpha) -> str:
    if shifted:
        return (f"no verdict: the blind baseline separates the sets without the model (AUROC {_fmt(*blind)}); they "
                "differ in distribution, and the attack may measure that")
    if not beats_chance:
        return (f"no evidence: AUROC {_fmt(auc, lo, hi)} does not beat chance (Holm p = {p_chance:.3g}"
                f"{'; its interval holds 0.5' if lo <= 0.5 < auc and p_chance < alpha else ''})")
    if blind_is_bar and not beats_blind:
        return (f"no evidence beyond the blind baseline: AUROC {auc:.3f} beats chance, but not the blind "
                f"{blind[0]:.3f} (Holm p = {p_blind:.3g})")
    words = f"AUROC {_fmt(auc, lo, hi)} beats chance (interval above 0.5, Holm p = {p_chance:.2g})"
    if blind_is_bar:
        words += " and the blind baseline"
    if beyond_control is None and "control_auroc" in row:   # the control is this attack's own reference model
        return (f"evidence relative to the reference model, which is also the control: {words}; the score already "
                "subtracts what the control gives each text")
    if beyond_control is None:
        return (f"evidence on this model alone: {words}; what the attack scores on a model that never saw the texts "
                "is not known (pass control=)")
    if beyond_control:
        return f"evidence: {words} and the control model ({row['control_auroc']:.3f})"
    return (f"no evidence beyond the control model: {words}, but the control model, which never saw the texts, "
            f"scores {_fmt(row['control_auroc'], row['control_ci_low'], row['control_ci_high'])} "
            f"(Holm p = {row['p_vs_control_holm']:.3g})")


def _p_vs_chance(scores: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(scores)
    pos, neg = scores[ok & y], scores[ok & ~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(sps.mannwhitneyu(pos, neg, alternative="greater").pvalue)


def _summary(items: pd.DataFrame, methods, n_boot: int, seed, control: bool = False) -> pd.DataFrame:
    y = items.is_member.to_numpy(bool)
    rows, notes, tests = [], [], {}

    def add(method, r):
        rows.append({"method": method, **{k: r[k] for k in ("metric", "value", "ci_low", "ci_high", "n")}})
        if r.get("note"):
            notes.append({"method": method, "metric": r["metric"], "note": r["note"]})

    def paired(m, s, other, ok, name):
        ok = ok & np.isfinite(other)
        d = M.difference_row(s[ok], other[ok], y[ok], n_boot=n_boot, seed=seed, metric=f"auroc_minus_{name}")
        add(m, d)
        add(m, {"metric": f"p_vs_{name}", "value": d["p_value"], "ci_low": np.nan, "ci_high": np.nan, "n": d["n"]})
        tests[f"{m}/p_vs_{name}"] = d["test"]

    blind = items["blind"].to_numpy(float)
    for m in (*methods, "blind"):
        s = items[m].to_numpy(float)
        ok = np.isfinite(s)
        for r in M.metric_rows(s[ok], y[ok], n_boot=n_boot, seed=seed):
            add(m, r)
        add(m, {"metric": "p_vs_chance", "value": _p_vs_chance(s, y), "ci_low": np.nan, "ci_high": np.nan,
                "n": int(ok.sum())})
        if m == "blind":
            continue
        paired(m, s, blind, ok, "blind")
        if control:
            c = items[f"{CONTROL}{m}"].to_numpy(float)
            okc = np.isfinite(c)
            (r,) = [r for r in M.metric_rows(c[okc], y[okc], n_boot=n_boot, seed=seed) if r["metric"] == "auroc"]
            add(m, {**r, "metric": "control_auroc"})
            paired(m, s, c, ok, "control")
    out = pd.DataFrame(rows, columns=["method", "metric", "value", "ci_low", "ci_high", "n"])
    out.attrs.update(notes=notes, level=0.95, n_boot=n_boot, seed=seed, min_per_class=M.MIN_PER_CLASS,
                     intervals={"auroc": M.AUROC_INTERVAL,
                                "tpr, auroc_minus_*": "percentile, stratified bootstrap by class (paired for "
                                                      "the differences); only from 50 texts per class"},
                     tests={"p_vs_blind, p_vs_control": "DeLong (two-sided), or an interval-overlap test where "
                                                        "DeLong does not hold (see workbench.training_data.metrics)",
                            "p_vs_chance": "Mann-Whitney U (one-sided)"},
                     test_used=tests, orientation="every score: higher = more likely a member")
    return out


def _model_info(model) -> dict:
    return {"name": model.name, "fingerprint_id": model.fingerprint_id, "state_id": model.state_id,
            "licence": getattr(model, "licence", None)}


@checked(k=Real(gt=0, le=1), n_boot=Int(min=100), seed=Int(min=0), n_folds=Int(min=2),
         max_tokens=Optional(Int(min=1)), cache=BOOL, progress=Optional(BOOL))
def membership(model, members, nonmembers, methods=DEFAULT_METHODS, reference=None, *, control=None, k: float = 0.2,
               text_column: str = "text", n_folds: int = N_FOLDS, n_boot: int = M.N_BOOT, seed: int = 0,
               max_tokens: int | None = None, cache: bool = True, progress=None) -> MembershipResult:
    """Membership-inference attacks on ``members`` vs ``nonmembers``, beside the blind baseline.

    Parameters
    ----------
    members, nonmembers : texts known (or suspected) to be in / out of the training data: lists,
        a DataFrame or Series (``text_column``), or a .jsonl/.json/.csv/.tsv file with that column.
        A text repeated within a set is scored once (the blind baseline's cross-fitting must not
        see a copy of a text it scores); the count dropped is warned about and kept in
        ``provenance["duplicates_dropped"]``. A text in both sets is refused.
    methods : any of "loss", "zlib", "lowercase", "min_k", "min_k_pp", "reference" (see
        :mod:`workbench.training_data.attacks`). "reference" needs ``reference`` (a second loaded
        causal model) and is added when one is given.
    control : a causal model that never saw the texts (e.g. the base model of a fine-tune): every
        attack is scored on it too, and ``findings()`` asks each attack to beat its own AUROC there
        (paired, on the same texts). Without it, a verdict is about this model alone.
    k : share of lowest-scoring tokens for Min-K% and Min-K%++ (0.2 as the papers' default).
    n_folds, seed : the blind baseline's cross-fitting (stratified, seeded); ``seed`` also seeds
        the bootstrap.
    max_tokens : score only each text's first tokens (texts longer than the window are refused
        otherwise).

    Returns a :class:`MembershipResult`; every score is oriented so that higher = member.
    """
    check_model(model, ("causal",), "membership")
    mem, dropped_mem = _unique(read_texts(members, "membership members", text_column))
    non, dropped_non = _unique(read_texts(nonmembers, "membership nonmembers", text_column))
    if not mem or not non:
        raise InvalidInputError("membership needs at least one member and one non-member text; got "
                                f"{len(mem)} members and {len(non)} non-members")
    both = set(mem) & set(non)
    if both:
        raise InvalidInputError(f"{len(both)} text(s) are both members and non-members (e.g. {next(iter(both))!r}); "
                                "a text is one or the other: remove the duplicates")
    if dropped_mem or dropped_non:
        warnings.warn(f"membership: {dropped_mem} repeated member text(s) and {dropped_non} repeated non-member "
                      f"text(s) were dropped; each text is scored once ({len(mem)} members, {len(non)} non-members "
                      "remain), because a copy in another fold would let the blind baseline's cross-fitting see the "
                      "text it scores", UserWarning, stacklevel=3)
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
    if control is not None:
        check_model(control, ("causal",), "membership control")
        if control is model or control.state_id == model.state_id:
            raise InvalidInputError("control= is the model under test itself; give a model that never saw the texts "
                                    "(e.g. the base model the tested one was fine-tuned from)")

    texts = mem + non
    y = np.r_[np.ones(len(mem), bool), np.zeros(len(non), bool)]
    t0 = time.perf_counter()
    scores = attack_scores(model, texts, methods, k, reference, max_tokens=max_tokens, cache=cache, progress=progress)
    t1 = time.perf_counter()
    columns = {"text": texts, "is_member": y, **{m: scores[m] for m in methods},
               "blind": blind_scores(texts, y, n_folds=n_folds, seed=seed)}
    t2 = time.perf_counter()
    if control is not None:
        on_control = attack_scores(control, texts, methods, k, reference, max_tokens=max_tokens, cache=cache,
                                   progress=progress)
        columns.update({f"{CONTROL}{m}": on_control[m] for m in methods})
        if reference is not None and reference.state_id == control.state_id and "reference" in methods:
            # the reference attack on its own reference model is 0 for every text: no comparison, not a 0.5
            columns[f"{CONTROL}reference"] = np.full(len(texts), np.nan)
    prov = {"model": _model_info(model),
            "reference": None if reference is None else {"name": reference.name,
                                                         "fingerprint_id": reference.fingerprint_id},
            "control": None if control is None else _model_info(control),
            "options": {"methods": list(methods), "k": k, "n_folds": n_folds, "n_boot": n_boot, "seed": seed,
                        "max_tokens": max_tokens},
            "n_members": len(mem), "n_nonmembers": len(non),
            "duplicates_dropped": {"members": dropped_mem, "nonmembers": dropped_non},
            "timings_s": {"scoring": t1 - t0, "blind": t2 - t1,
                          **({"control": time.perf_counter() - t2} if control is not None else {})}}
    return MembershipResult(frame=pd.DataFrame(columns), provenance=prov, methods=methods, n_boot=n_boot, seed=seed)

"""Dataset inference (Maini et al. 2024, "LLM Dataset Inference: Did you train on my dataset?").

Single-text membership inference is often near chance: one text's loss says little. A whole
collection says more. Given a **suspect** collection (texts you think were trained on) and a
**validation** collection from the same distribution that the model is known NOT to have seen,
the paper's recipe is:

1. per-text features from the membership attacks (:mod:`workbench.training_data.attacks`):
   loss, zlib ratio, Min-K% and Min-K%++ at several ``k``, and the reference-model ratio when a
   reference model is given; all from one ``token_stats`` pass (a second with ``reference``);
2. split each collection at random (seeded) into two halves A and B;
3. on the A halves, learn a linear combination of the (standardised) features that tells suspect
   (1) from validation (0): logistic regression, so the data decide which attacks carry signal;
4. apply it to the held-out B halves and run a one-sided Welch t-test that the suspect texts'
   combined scores exceed the validation texts'. The p-value is the answer.

Because the combination is learnt on texts the test never sees, the test is valid when the
suspect collection is unseen too: the B-half scores of both collections then come from the same
distribution. This is why the validation collection must match the suspect's distribution: a
shifted validation set makes any model look "trained on" the suspect (the same trap the blind
baseline of ``wb.membership`` exposes for single texts). The paper also removes outliers and
uses more features; this is the core test.

``summary()``: one row ``test, statistic (Welch t), p_value, n`` (the B-half size of both
collections together), with the mean difference and the halves' sizes in ``details``.
``items``: one row per text with its features, collection, half, and (B half) combined score.

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> from workbench.training_data.testbed import synthetic_texts
>>> texts = synthetic_texts(24, "a", seed=0)
>>> di = wb.dataset_inference(tiny_model("gpt2"), suspect=texts[:12], validation=texts[12:], cache=False)
>>> list(di.summary().columns), 0 <= di.p_value <= 1
(['test', 'statistic', 'p_value', 'n'], True)
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.display import p_equals
from workbench.errors import InvalidInputError
from workbench.models.checks import check_model
from workbench.results import Result
from workbench.scoring.token_stats import token_stats
from workbench.training_data.attacks import min_k_pp_values, min_k_score, zlib_bytes
from workbench.training_data.membership import _unique, read_texts
from workbench.validate import BOOL, Int, Optional, checked

KS = (0.05, 0.1, 0.2, 0.3, 0.5)
MIN_PER_HALF = 2


def features(model, texts: list[str], reference=None, *, ks=KS, max_tokens=None, cache: bool = True,
             progress=None) -> pd.DataFrame:
    """Per-text membership features (higher = more member-like), one column each."""
    ts = token_stats(model, texts, moments=True, max_tokens=max_tokens, cache=cache, progress=progress)
    mean_lp = ts.mean_logprob.to_numpy(float)
    cols = {"loss": mean_lp, "zlib": mean_lp / np.array([zlib_bytes(t) for t in texts], float)}
    for k in ks:
        cols[f"min_k@{k}"] = np.array([min_k_score(lp, k) for lp in ts.token_logprobs])
        cols[f"min_k_pp@{k}"] = np.array([min_k_score(min_k_pp_values(lp, mu, v), k)
                                          for lp, mu, v in zip(ts.token_logprobs, ts.logp_mean, ts.logp_var)])
    if reference is not None:
        ref = token_stats(reference, texts, moments=False, max_tokens=max_tokens, cache=cache,
                          progress=progress).mean_logprob.to_numpy(float)
        cols["reference"] = mean_lp - ref
    return pd.DataFrame(cols)


@dataclass
class DatasetInferenceResult(Result):
    """``items`` (per text: text, collection, half, features, combined score on the test half),
    ``summary()`` (test, statistic, p_value, n), ``p_value``, ``details``, ``weights``, ``plot()``."""

    details: dict = field(default_factory=dict)
    weights: pd.Series | None = None

    @property
    def items(self) -> pd.DataFrame:
        return self.frame

    @property
    def p_value(self) -> float:
        return self.details["p_value"]

    def summary(self) -> pd.DataFrame:
        out = pd.DataFrame([{k: self.details[k] for k in ("test", "statistic", "p_value", "n")}])
        out.attrs["statistic"] = ("Welch t of the combined score, suspect minus validation, on the held-out halves; "
                                  "one-sided p (suspect higher)")
        return out

    def plot(self, ax=None, bins: int = 15, **kwargs):
        """Histograms of the held-out combined scores of the two collections, on the same bins
        (so their heights compare)."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        test = self.frame[self.frame.half == "test"]
        scores = test.combined.to_numpy(float)
        edges = np.histogram_bin_edges(scores[np.isfinite(scores)], bins=bins)
        for name in ("suspect", "validation"):
            ax.hist(test[test.collection == name].combined, bins=edges, alpha=0.5, label=name, **kwargs)
        ax.set(xlabel="combined membership score (held-out half)", ylabel="texts",
               title=f"dataset inference: {p_equals(self.p_value)}")
        ax.legend(fontsize="small")
        return ax


def _halves(n: int, rng: np.random.Generator) -> np.ndarray:
    """True = train half (the first floor(n/2) of a random order)."""
    out = np.zeros(n, bool)
    out[rng.permutation(n)[:n // 2]] = True
    return out


@checked(seed=Int(min=0), max_tokens=Optional(Int(min=1)), cache=BOOL, progress=Optional(BOOL))
def dataset_inference(model, suspect, validation, reference=None, *, seed: int = 0, text_column: str = "text",
                      max_tokens: int | None = None, cache: bool = True, progress=None) -> DatasetInferenceResult:
    """Was the ``suspect`` collection trained on? Tested against ``validation``, a collection of the
    same distribution known to be unseen (see the module doc). Both: lists of texts, a DataFrame or
    Series (``text_column``) or a .jsonl/.json/.csv/.tsv file. ``reference``: a second causal model
    whose ratio is added as a feature. ``seed`` seeds the halves. Returns a
    :class:`DatasetInferenceResult`; small ``p_value`` = evidence the suspect texts were trained on."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    check_model(model, ("causal",), "dataset_inference")
    if reference is not None:
        check_model(reference, ("causal",), "dataset_inference reference")
    # a text repeated within a collection could fall in both halves: the combination would be
    # tested on a text it was fitted on. Each text counts once, and the drop is said.
    sus, dropped_sus = _unique(read_texts(suspect, "dataset_inference suspect", text_column))
    val, dropped_val = _unique(read_texts(validation, "dataset_inference validation", text_column))
    if dropped_sus or dropped_val:
        warnings.warn(f"dataset_inference: {dropped_sus} repeated suspect text(s) and {dropped_val} repeated "
                      f"validation text(s) were dropped; each text counts once ({len(sus)} suspect, {len(val)} "
                      "validation remain), so no text is both in the half that fits the combination and the half that tests it",
                      UserWarning, stacklevel=3)
    if min(len(sus), len(val)) < 2 * MIN_PER_HALF:
        raise InvalidInputError(f"dataset_inference needs at least {2 * MIN_PER_HALF} texts in each collection (each "
                                f"is split in two halves), got {len(sus)} suspect and {len(val)} validation; the "
                                "paper uses hundreds, and the test is weak below a few dozen")
    both = set(sus) & set(val)
    if both:
        raise InvalidInputError(f"{len(both)} text(s) are in both the suspect and the validation collection (e.g. "
                                f"{next(iter(both))!r}); the validation texts must be known unseen: remove them")
    t0 = time.perf_counter()
    texts = sus + val
    feats = features(model, texts, reference, max_tokens=max_tokens, cache=cache, progress=progress)
    y = np.r_[np.ones(len(sus), bool), np.zeros(len(val), bool)]
    rng = np.random.default_rng(seed)
    train = np.r_[_halves(len(sus), rng), _halves(len(val), rng)]
    # a feature that is NaN for a text (e.g. Min-K%++ where the model is certain everywhere) is set
    # to the training mean, so it carries no signal for that text
    X = feats.to_numpy(float)
    means = np.nanmean(np.where(np.isfinite(X[train]), X[train], np.nan), axis=0)
    means = np.where(np.isfinite(means), means, 0.0)
    X = np.where(np.isfinite(X), X, means)
    scaler = StandardScaler().fit(X[train])
    clf = LogisticRegression(max_iter=1000).fit(scaler.transform(X[train]), y[train])
    combined = clf.decision_function(scaler.transform(X))
    a, b = combined[~train & y], combined[~train & ~y]
    if np.allclose(np.r_[a, b], np.r_[a, b][0]):
        t, p = 0.0, 1.0      # the combination is constant (no usable feature): no evidence either way
    else:
        r = sps.ttest_ind(a, b, equal_var=False, alternative="greater")
        t, p = float(r.statistic), float(r.pvalue)
    items = pd.DataFrame({"text": texts, "collection": np.where(y, "suspect", "validation"),
                          "half": np.where(train, "train", "test"), **feats,
                          "combined": np.where(train, np.nan, combined)})
    details = {"test": "dataset_inference", "statistic": t, "p_value": p, "n": int(len(a) + len(b)),
               "mean_difference": float(a.mean() - b.mean()), "n_suspect_test": len(a), "n_validation_test": len(b),
               "n_suspect": len(sus), "n_validation": len(val),
               "duplicates_dropped": {"suspect": dropped_sus, "validation": dropped_val}}
    prov = {"model": {"name": model.name, "fingerprint_id": model.fingerprint_id, "state_id": model.state_id},
            "reference": None if reference is None else {"name": reference.name,
                                                         "fingerprint_id": reference.fingerprint_id},
            "options": {"seed": seed, "features": list(feats.columns), "max_tokens": max_tokens,
                        "combiner": "logistic regression on standardised features, train halves",
                        "test": "one-sided Welch t-test, test halves"},
            "timings_s": {"total": time.perf_counter() - t0}}
    return DatasetInferenceResult(frame=items, provenance=prov, details=details,
                                  weights=pd.Series(clf.coef_[0], index=feats.columns))

"""Linear probing classifiers per layer, with the controls the literature asks for.

For each layer, one vector per text is read at ``site`` and pooled (``position="last"``: the last
real token, which in a causal LM is the only one that has seen the whole text; ``"mean"``: the
mean over the text's real tokens, special tokens such as BOS left out because their activations
are outliers that carry no information about the text). A logistic regression (scikit-learn,
features standardised inside each fold) is scored by stratified k-fold cross-validation
(shuffled, seeded): ``accuracy`` is the fraction of texts classified right when held out.

Controls:

* **control task** (Hewitt & Liang 2019): the same probe, same folds, on labels re-assigned at
  random keeping the label frequencies; by default each text gets a label of a random
  permutation, with ``control_groups`` (e.g. the word each text is about) each *group* gets one
  random label, as in Hewitt & Liang's control tasks for word types. ``selectivity = accuracy -
  control_accuracy``: high accuracy with low selectivity means the probe memorises rather than
  reads the property out of the representation.
* **majority baseline**: the accuracy of always answering the most frequent label.
* **interval**: a 95% Wilson interval on the cross-validated accuracy (``statsmodels``), which
  treats the n held-out predictions as independent trials (they come from k models, so it is a
  little narrow).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from workbench.errors import InvalidInputError, UnsupportedSiteError
from workbench.inspect.capture import capture
from workbench.inspect.sites import LAYER_SITES, adapter
from workbench.results import Result
from workbench.validate import Int, OneOf, Real, check_texts, checked
from workbench.models.checks import check_model
from workbench.provenance import record

PROBE_SITES = tuple(s for s in LAYER_SITES if s != "attn_pattern")


@dataclass
class ProbingResult(Result):
    """``frame``: one row per layer: layer, accuracy, control_accuracy, selectivity, ci_low,
    ci_high (95% Wilson interval of accuracy), majority_baseline, n."""

    def summary(self) -> pd.DataFrame:
        return self.frame.copy()

    def plot(self, ax=None):
        """Accuracy (with its interval), control accuracy, majority baseline and selectivity by layer."""
        import matplotlib.pyplot as plt
        f = self.frame
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        ax.fill_between(f["layer"], f["ci_low"], f["ci_high"], alpha=0.2, color="tab:blue", label="95% interval")
        ax.plot(f["layer"], f["accuracy"], "o-", color="tab:blue", label="probe accuracy")
        ax.plot(f["layer"], f["control_accuracy"], "s--", color="tab:gray", label="control task accuracy")
        ax.plot(f["layer"], f["selectivity"], "^-", color="tab:green", label="selectivity")
        ax.axhline(float(f["majority_baseline"].iloc[0]), color="tab:red", ls=":", label="majority baseline")
        ax.axhline(0, color="k", lw=0.5)
        p = self.provenance
        ax.set(xlabel="layer", ylabel="accuracy", ylim=(min(-0.05, float(f["selectivity"].min()) - 0.05), 1.02),
               title=f"linear probe on {p.get('site')} ({'mean of the' if p.get('position') == 'mean' else 'last'} "
                     f"token{'s' if p.get('position') == 'mean' else ''})")
        ax.legend(fontsize=8, loc="best")
        return ax


def _labels(labels, n: int, folds: int):
    """Labels -> (codes, classes), refusing what cross-validation cannot use."""
    if isinstance(labels, str) or not hasattr(labels, "__len__"):
        raise InvalidInputError(f"labels must be a list with one label per text, got {type(labels).__name__}")
    if len(labels) != n:
        raise InvalidInputError(f"labels has {len(labels)} entries but there are {n} texts; give one label per text")
    try:
        codes, classes = pd.factorize(pd.Series(list(labels), dtype=object), sort=True)
    except TypeError as e:
        raise InvalidInputError(f"labels must be hashable values such as strings or ints ({e})") from None
    if (codes < 0).any():
        raise InvalidInputError(f"labels has missing values (None/NaN) at {np.flatnonzero(codes < 0)[:5].tolist()}; "
                                "drop those texts or give them a label")
    counts = np.bincount(codes)
    if len(classes) < 2:
        raise InvalidInputError(f"labels has a single class ({classes[0]!r}): there is nothing to classify; "
                                "give texts of at least two classes")
    if counts.min() < folds:
        small = {classes[i]: int(c) for i, c in enumerate(counts) if c < folds}
        raise InvalidInputError(f"class(es) {small} have fewer texts than folds={folds}: stratified cross-validation "
                                "needs at least one text of each class per fold; give more texts or fewer folds")
    return codes, list(classes)


def _control_labels(codes: np.ndarray, groups, rng: np.random.Generator, folds: int) -> np.ndarray:
    """Random labels with the frequencies of ``codes``: a permutation, or with ``groups`` one label
    per group drawn from the label frequencies (redrawn until every class can be stratified)."""
    if groups is None:
        return rng.permutation(codes)
    gcodes, uniq = pd.factorize(pd.Series(list(groups), dtype=object))
    freq = np.bincount(codes) / len(codes)
    for _ in range(100):
        per_group = rng.choice(len(freq), size=len(uniq), p=freq)
        out = per_group[gcodes]
        counts = np.bincount(out, minlength=len(freq))
        if (counts >= folds).sum() >= 2 and counts[counts > 0].min() >= folds:
            return out
    raise InvalidInputError(f"control_groups has too few groups ({len(uniq)}) to give a random labelling with at "
                            f"least {folds} texts per class; give more groups, fewer folds, or control_groups=None")


def _cv_correct(X: np.ndarray, y: np.ndarray, splits, C: float, max_iter: int) -> np.ndarray:
    """Per text: 1 if the probe trained on the other folds classifies it right."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    correct = np.zeros(len(y), dtype=bool)
    for train, test in splits:
        if len(np.unique(y[train])) < 2:  # a control labelling can leave one class in a fold
            pred = np.full(len(test), y[train][0])
        else:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, solver="liblinear"))
            clf.fit(X[train], y[train])
            pred = clf.predict(X[test])
        correct[test] = pred == y[test]
    return correct


@checked(site=OneOf(*PROBE_SITES), seed=Int(min=0), position=OneOf("last", "mean"), folds=Int(min=2),
         n_controls=Int(min=1), C=Real(gt=0), max_iter=Int(min=1), batch_size=Int(min=1))
def probe(model, texts, labels, site: str = "resid_post", layers=None, seed: int = 0, position: str = "last",
          folds: int = 5, n_controls: int = 3, control_groups=None, C: float = 1.0, max_iter: int = 2000,
          batch_size: int = 8) -> ProbingResult:
    """Fit a linear probe from ``site`` at each layer to ``labels`` (one per text), cross-validated,
    with a control task, a majority baseline and intervals (see the module docstring).

    ``layers``: None (all), an int or a list (negative from the end). ``position``: "last" (the
    last real token) or "mean" (mean over real, non-special tokens). ``n_controls``: control
    labellings averaged into ``control_accuracy``. ``C``: inverse L2 strength of the logistic
    regression. Per-head sites (q/k/v/z) are flattened across heads.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> texts = [f"The {w} sat on the mat" for w in ["cat", "dog"] * 6]
    >>> res = probe(tiny_model("gpt2"), texts, ["cat", "dog"] * 6, position="mean", folds=3)
    >>> res.summary().columns.tolist()[:6]
    ['layer', 'accuracy', 'control_accuracy', 'selectivity', 'ci_low', 'ci_high']
    >>> bool((res.summary()["accuracy"] == 1.0).all())  # the word is in the embedding
    True
    """
    from statsmodels.stats.proportion import proportion_confint
    from sklearn.model_selection import StratifiedKFold

    check_model(model, ("causal", "masked", "encoder"), "probe")
    texts = check_texts(texts, "probe")
    if not texts:
        raise InvalidInputError("probe needs texts; got an empty list")
    codes, classes = _labels(labels, len(texts), folds)
    if control_groups is not None and (isinstance(control_groups, str) or len(control_groups) != len(texts)):
        raise InvalidInputError("control_groups must give one group (e.g. the word a text is about) per text")
    ad = adapter(model)
    if layers is None:
        layers = list(range(ad.n_layers))
    elif isinstance(layers, (list, tuple)) and not layers:
        raise UnsupportedSiteError("layers is empty; give None (all layers), an int or a list of ints")
    layers = sorted({ad.check_layer(layer) for layer in ([layers] if isinstance(layers, int) else layers)})
    cache = capture(model, texts, sites=[site], layers=layers, positions="last" if position == "last" else None,
                    batch_size=batch_size, progress=False)
    if position == "mean":
        special = torch.tensor(model.tokenizer.all_special_ids, dtype=torch.long)
        keep = cache.attention_mask.bool() & ~torch.isin(cache.tokens, special)
        keep = torch.where(keep.any(1, keepdim=True), keep, cache.attention_mask.bool())  # a text of only specials
    rng = np.random.default_rng(seed)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(codes)), codes))
    controls = [_control_labels(codes, control_groups, rng, folds) for _ in range(n_controls)]
    majority = float(np.bincount(codes).max() / len(codes))
    rows = []
    for layer in layers:
        a = cache[site, layer].double()
        a = a.flatten(2) if a.dim() == 4 else a                      # per-head sites: heads side by side
        if position == "last":
            X = a[:, 0]
        else:
            w = keep.double()[..., None]
            X = (a * w).sum(1) / w.sum(1)
        X = X.numpy()
        correct = _cv_correct(X, codes, splits, C, max_iter)
        acc = float(correct.mean())
        ctrl = float(np.mean([_cv_correct(X, y, splits, C, max_iter).mean() for y in controls]))
        lo, hi = proportion_confint(int(correct.sum()), len(correct), alpha=0.05, method="wilson")
        rows.append({"layer": layer, "accuracy": acc, "control_accuracy": ctrl, "selectivity": acc - ctrl,
                     "ci_low": float(lo), "ci_high": float(hi), "majority_baseline": majority, "n": len(codes)})
    import sklearn
    prov = {**record(model), "fingerprint": model.fingerprint_id, "state_id": model.state_id, "site": site,
            "layers": layers, "position": position, "seed": seed, "n": len(codes), "classes": classes,
            "class_counts": np.bincount(codes).tolist(), "folds": folds, "n_controls": n_controls,
            "control": "permuted labels" if control_groups is None else "one random label per control group",
            "probe": f"StandardScaler + LogisticRegression(C={C}, liblinear, L2), scikit-learn {sklearn.__version__}",
            "interval": "95% Wilson on cross-validated accuracy"}
    return ProbingResult(pd.DataFrame(rows), prov)


ProbeResult = ProbingResult  # the former name (a bias probe's result is workbench.probes.ProbeResult)

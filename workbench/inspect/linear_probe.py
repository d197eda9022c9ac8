"""Linear probing classifiers per layer, with the controls the literature asks for.

For each layer, one vector per text is read at ``site`` and pooled (``position="last"``: the last
real token, which in a causal LM is the only one that has seen the whole text; ``"mean"``: the
mean over the text's real tokens, special tokens such as BOS left out because their activations
are outliers that carry no information about the text). A logistic regression (scikit-learn,
features standardised inside each fold) is scored by stratified k-fold cross-validation
(shuffled, seeded): ``accuracy`` is the fraction of texts classified right when held out.

Controls:

* **control task** (Hewitt & Liang 2019, "Designing and Interpreting Probes with Control
  Tasks"): every word *type* gets one fixed random label, drawn from the empirical label
  distribution, and every text of that type carries it; the same probe is fitted on the same
  folds. A type seen in training recurs among the held-out texts, so a probe that memorises
  types scores high on this task although the labels mean nothing. ``selectivity = accuracy -
  control_accuracy``: high accuracy with low selectivity means the probe's accuracy is what
  memorising the types already gives. The **type** is the token at the probed position
  (``position="last"``: the id of the text's last real token, whose activation is read; for an
  encoder that is ``[SEP]``, one type for every text) and, for ``position="mean"``, the text's
  whole sequence of real tokens (the pooled vector is a function of all of them, so only a
  repeated text can be memorised). ``control_groups`` names the types yourself (e.g. the word
  each text is about). A draw that gives every type the same label is redrawn (any probe fits a
  constant). With fewer than two types there is no control task: ``control_accuracy`` and
  ``selectivity`` are NaN, with a warning; where no type recurs, memorisation cannot help a
  held-out text and the control is at chance by construction (also warned).
* **shuffled-labels control**: labels permuted across texts (``shuffled_control_accuracy``,
  ``shuffled_selectivity``). Held-out texts get labels that nothing in training predicts, so it
  is at chance by construction and *cannot* detect memorisation; it only checks that the probe
  does not beat chance on noise. (It was this package's ``control_accuracy`` before the type
  control.)
* **majority baseline**: the accuracy of always answering the most frequent label.
* **interval**: a 95% Wilson interval on the cross-validated accuracy (``statsmodels``), which
  treats the n held-out predictions as independent trials (they come from k models, so it is a
  little narrow).
"""
from __future__ import annotations

import warnings
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
    """``frame``: one row per layer: layer, accuracy, control_accuracy (Hewitt & Liang's control
    task: one random label per type), selectivity (accuracy - control_accuracy), ci_low, ci_high
    (95% Wilson interval of accuracy), majority_baseline, n, shuffled_control_accuracy (labels
    permuted across texts) and shuffled_selectivity (accuracy - shuffled_control_accuracy)."""

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
        ax.plot(f["layer"], f["control_accuracy"], "s--", color="tab:gray", label="control task accuracy (types)")
        ax.plot(f["layer"], f["shuffled_control_accuracy"], "x:", color="tab:gray", label="shuffled-labels accuracy")
        ax.plot(f["layer"], f["selectivity"], "^-", color="tab:green", label="selectivity")
        ax.axhline(float(f["majority_baseline"].iloc[0]), color="tab:red", ls=":", label="majority baseline")
        ax.axhline(0, color="k", lw=0.5)
        p = self.provenance
        ax.set(xlabel="layer", ylabel="accuracy", ylim=(min(-0.05, float(np.nanmin(f["selectivity"].to_numpy(float), initial=0)) - 0.05), 1.02),
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


def _shuffled_labels(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The shuffled-labels control: the labels permuted across texts (chance on held-out texts)."""
    return rng.permutation(codes)


def _type_control_labels(codes: np.ndarray, types: list, rng: np.random.Generator) -> np.ndarray | None:
    """Hewitt & Liang's control task: one label per distinct type, drawn from the empirical label
    distribution of ``codes``, given to every text of that type. Redrawn while every type gets
    the same label (a constant, which any probe fits); ``None`` with fewer than two types."""
    tcodes, uniq = pd.factorize(pd.Series(types, dtype=object))
    if len(uniq) < 2:
        return None
    freq = np.bincount(codes) / len(codes)
    for _ in range(1000):
        per_type = rng.choice(len(freq), size=len(uniq), p=freq)
        if len(np.unique(per_type)) > 1:
            return per_type[tcodes]
    return None  # only when one label is nearly all of them: P(constant) >= 0.999 per draw


def _probed_types(cache, position: str, keep) -> list:
    """The type of each text's probed input: the id of the token whose activation is read
    (``"last"``), or the tuple of real token ids that are pooled (``"mean"``)."""
    if position == "last":
        idx = cache.positions[:, 0]
        return cache.tokens[torch.arange(len(idx)), idx].tolist()
    return [tuple(row[k].tolist()) for row, k in zip(cache.tokens, keep)]


def _describe_types(model, types: list, position: str, given: bool) -> dict:
    """How many types there are and how many texts share theirs (only those can be memorised)."""
    counts = pd.Series(types, dtype=object).value_counts()
    recurring = int(counts[counts > 1].sum())
    if given:
        what = "control_groups (given)"
    elif position == "last":
        what = "the token at the probed position (the last real token)"
    else:
        what = "the text's sequence of real tokens (position='mean' pools them all)"
    out = {"type": what, "n_types": int(len(counts)), "texts_with_recurring_type": recurring}
    if not given and position == "last":
        tok = model.tokenizer
        out["most_common_types"] = {tok.convert_ids_to_tokens(int(t)): int(c) for t, c in counts.head(5).items()}
    return out


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
def linear_probe(model, texts, labels, site: str = "resid_post", layers=None, seed: int = 0, position: str = "last",
          folds: int = 5, n_controls: int = 3, control_groups=None, C: float = 1.0, max_iter: int = 2000,
          batch_size: int = 8) -> ProbingResult:
    """Fit a linear probe from ``site`` at each layer to ``labels`` (one per text), cross-validated,
    with Hewitt & Liang's control task, a shuffled-labels control, a majority baseline and
    intervals (see the module docstring).

    ``layers``: None (all), an int or a list (negative from the end). ``position``: "last" (the
    last real token) or "mean" (mean over real, non-special tokens). ``control_groups``: one type
    per text for the control task (default: the token at the probed position for "last", the
    text's tokens for "mean"). ``n_controls``: labellings of each control averaged into its
    accuracy. ``C``: inverse L2 strength of the logistic regression. Per-head sites (q/k/v/z)
    are flattened across heads.

    Example
    -------
    >>> from workbench.testing import tiny_model
    >>> words = ["cat", "dog"] * 6
    >>> texts = [f"The {w} sat on the mat" for w in words]
    >>> res = linear_probe(tiny_model("gpt2"), texts, words, folds=3, control_groups=words)
    >>> res.summary().columns.tolist()[:6]
    ['layer', 'accuracy', 'control_accuracy', 'selectivity', 'ci_low', 'ci_high']
    >>> bool((res.summary()["accuracy"] == 1.0).all())  # the word is in the residual stream
    True

    The label is the word itself, so memorising the two words already gives it: the control task
    (one random label per word) is as easy and selectivity is 0, where the shuffled-labels control
    (near chance) would have called the probe selective.

    >>> s = res.summary()
    >>> bool((s["selectivity"] == 0).all() and (s["shuffled_selectivity"] > 0.3).all())
    True
    """
    from statsmodels.stats.proportion import proportion_confint
    from sklearn.model_selection import StratifiedKFold

    check_model(model, ("causal", "masked", "encoder"), "probe")
    texts = check_texts(texts, "probe")
    if not texts:
        raise InvalidInputError("probe needs texts; got an empty list")
    codes, classes = _labels(labels, len(texts), folds)
    groups = _control_groups(control_groups, len(texts))
    ad = adapter(model)
    if layers is None:
        layers = list(range(ad.n_layers))
    elif isinstance(layers, (list, tuple)) and not layers:
        raise UnsupportedSiteError("layers is empty; give None (all layers), an int or a list of ints")
    layers = sorted({ad.check_layer(layer) for layer in ([layers] if isinstance(layers, int) else layers)})
    cache = capture(model, texts, sites=[site], layers=layers, positions="last" if position == "last" else None,
                    batch_size=batch_size, progress=False)
    keep = None
    if position == "mean":
        special = torch.tensor(model.tokenizer.all_special_ids, dtype=torch.long)
        keep = cache.attention_mask.bool() & ~torch.isin(cache.tokens, special)
        keep = torch.where(keep.any(1, keepdim=True), keep, cache.attention_mask.bool())  # a text of only specials
    types = groups if groups is not None else _probed_types(cache, position, keep)
    type_info = _describe_types(model, types, position, given=groups is not None)
    rng = np.random.default_rng(seed)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(np.zeros(len(codes)), codes))
    # shuffled labels first, from the seed's stream, so they are the permutations this function used before
    shuffled = [_shuffled_labels(codes, rng) for _ in range(n_controls)]
    type_rng = np.random.default_rng([seed, 1])
    controls = [_type_control_labels(codes, types, type_rng) for _ in range(n_controls)]
    if any(c is None for c in controls):
        controls = []
        why = (f"every text has the same {type_info['type']}" if type_info["n_types"] < 2 else
               f"its {type_info['n_types']} types drew one label for all in 1000 draws (one label is "
               f"{np.bincount(codes).max() / len(codes):.1%} of the texts)")
        warnings.warn(f"probe: the control task needs at least two types with different labels, and {why}: "
                      "control_accuracy and selectivity are NaN. Pass control_groups= (e.g. the word each text is "
                      "about); shuffled_selectivity cannot detect memorisation.",
                      UserWarning, stacklevel=3)  # the caller of the @checked wrapper
    elif type_info["texts_with_recurring_type"] == 0:
        warnings.warn(f"probe: no two texts share a type ({type_info['type']}), so memorising types cannot help "
                      "a held-out text and the control task is at chance by construction: selectivity cannot show "
                      "memorisation here. Pass control_groups= whose groups recur (e.g. the word each text is "
                      "about).",
                      UserWarning, stacklevel=3)  # the caller of the @checked wrapper
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
        ctrl = _mean_cv_accuracy(X, controls, splits, C, max_iter)
        shuf = _mean_cv_accuracy(X, shuffled, splits, C, max_iter)
        lo, hi = proportion_confint(int(correct.sum()), len(correct), alpha=0.05, method="wilson")
        rows.append({"layer": layer, "accuracy": acc, "control_accuracy": ctrl, "selectivity": acc - ctrl,
                     "ci_low": float(lo), "ci_high": float(hi), "majority_baseline": majority, "n": len(codes),
                     "shuffled_control_accuracy": shuf, "shuffled_selectivity": acc - shuf})
    import sklearn
    prov = {**record(model), "fingerprint": model.fingerprint_id, "state_id": model.state_id, "site": site,
            "layers": layers, "position": position, "seed": seed, "n": len(codes), "classes": classes,
            "class_counts": np.bincount(codes).tolist(), "folds": folds, "n_controls": n_controls,
            "control": "Hewitt & Liang (2019) control task: one random label per type, drawn from the label "
                       "frequencies", "control_types": type_info,
            "shuffled_control": "labels permuted across texts (chance on held-out texts by construction)",
            "probe": f"StandardScaler + LogisticRegression(C={C}, liblinear, L2), scikit-learn {sklearn.__version__}",
            "interval": "95% Wilson on cross-validated accuracy"}
    return ProbingResult(pd.DataFrame(rows), prov)


def _control_groups(groups, n: int) -> list | None:
    """``control_groups`` -> a list of n hashable, present types with at least two distinct ones."""
    if groups is None:
        return None
    if isinstance(groups, str) or not hasattr(groups, "__len__") or len(groups) != n:
        raise InvalidInputError("control_groups must give one group (e.g. the word a text is about) per text")
    groups = list(groups)
    try:
        gcodes, uniq = pd.factorize(pd.Series(groups, dtype=object))
    except TypeError as e:
        raise InvalidInputError(f"control_groups must be hashable values such as strings or ints ({e})") from None
    if (gcodes < 0).any():
        raise InvalidInputError(f"control_groups has missing values (None/NaN) at {np.flatnonzero(gcodes < 0)[:5].tolist()}; "
                                "give every text a group")
    if len(uniq) < 2:
        raise InvalidInputError(f"control_groups has a single group ({uniq[0]!r}): the control task gives each group "
                                "one random label, so it needs at least two groups; give more, or control_groups=None")
    return groups


def _mean_cv_accuracy(X: np.ndarray, labellings: list, splits, C: float, max_iter: int) -> float:
    """Cross-validated accuracy averaged over labellings (NaN when there are none)."""
    if not labellings:
        return float("nan")
    return float(np.mean([_cv_correct(X, y, splits, C, max_iter).mean() for y in labellings]))


def probe(*args, **kwargs) -> ProbingResult:
    """The former name of :func:`linear_probe` (deprecated: "probe" names a bias probe,
    ``wb.run_probe``)."""
    import warnings
    warnings.warn("wb.inspect.probe is now wb.inspect.linear_probe ('probe' names a bias probe, wb.run_probe)",
                  DeprecationWarning, stacklevel=2)
    return linear_probe(*args, **kwargs)


ProbeResult = ProbingResult  # the former name (a bias probe's result is workbench.probes.ProbeResult)

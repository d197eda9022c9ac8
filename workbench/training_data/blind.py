"""The blind baseline: how well members and non-members can be told apart WITHOUT the model.

Published membership-inference results were later matched by classifiers that never look at the
model (Das, Zhang & Tramèr 2024; Duan et al. 2024): the member and non-member sets differed in
distribution (dates, topics, formatting), so any score correlated with it "worked". This
baseline measures that: character n-gram TF-IDF features (1-4 characters within word bounds,
sublinear term frequency, case kept: formatting is a shift too) and an L2-regularised logistic
regression, **cross-fitted**: stratified
``k``-fold (seeded shuffle), each text scored by the model fitted on the other folds (TF-IDF
vocabulary included), so no text is scored by a classifier that saw it. Its out-of-fold
probability of "member" is the blind score, and its AUROC is a **detector of distribution
shift**: an interval above 0.5 says the sets can be told apart without the model, which voids a
membership verdict on them. It is not a bar to subtract: on two random halves of one source it
scatters around 0.5 (``benchmarks/lowercase_control.py`` prints its mean over random splits), so
now and then it lands well below (0.35 on notebook 08's split), and "attack minus blind" would
then flatter any attack; :meth:`MembershipResult.findings
<workbench.training_data.membership.MembershipResult.findings>` reads it accordingly. Each text
must appear once: ``wb.membership`` drops repeats before fitting (a copy in another fold would
be a text the classifier saw).

>>> texts = ["a cat sat"] * 6 + ["THE DOG RAN"] * 6
>>> s = blind_scores(texts, [True] * 6 + [False] * 6, seed=0)
>>> bool(s[:6].min() > s[6:].max())      # a plain shift in style: the baseline finds it
True
"""
from __future__ import annotations

import numpy as np

N_FOLDS = 5


def blind_scores(texts: list[str], is_member, n_folds: int = N_FOLDS, seed: int = 0) -> np.ndarray:
    """Out-of-fold probability of "member" per text (NaN everywhere if a class has < 2 texts)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    y = np.asarray(is_member, bool)
    smaller = int(min(y.sum(), (~y).sum()))
    out = np.full(len(texts), np.nan)
    if smaller < 2:
        return out
    folds = StratifiedKFold(n_splits=min(n_folds, smaller), shuffle=True, random_state=seed)
    arr = np.asarray(texts, dtype=object)
    for train, test in folds.split(arr, y):
        clf = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True,
                                            lowercase=False),
                            LogisticRegression(C=1.0, max_iter=2000))
        clf.fit(arr[train], y[train])
        out[test] = clf.predict_proba(arr[test])[:, 1]
    return out

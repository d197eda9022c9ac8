"""The model as deployed against the model as published: which audited models are one model run
two ways, and the items whose decision flips between the two.

**Same model.** Two audited specs are read as one model through different backends or
precisions when the evidence says so, and the card records which evidence:

* the same weight file: equal ``weights_sha256`` in both fingerprints (every backend hashes the
  file it reads the same way; the embedded SmolLM2 through ``hf`` and through ``llama.cpp`` is one
  GGUF), or
* ``wb.lineage``'s verdict "same weights" or "same function" (another precision, a served copy),
  with the same tokenizer.

A shared tokenizer and config alone are not enough: a fine-tune and its base share both.

**Flips.** For each probe or task, the decision on an item is the per-item outcome of its
headline binary metric (prefers the stereotype, picks the right sentence). A flip is an item the
two decide differently. Reported: flips, their rate with an exact (Clopper-Pearson) interval,
McNemar's exact test (do the flips lean one way, i.e. did the aggregate move), the same per
category, and whether flips concentrate on items the reference decides by a small margin
(|score difference| of its two options): the flipped items' margins against the others',
one-sided Mann-Whitney U (exact where scipy can be), and the flip rate per quarter of the
reference's margins. Recent work found up to a fifth of answers flipping under 4-bit
quantisation with unchanged aggregate scores: a high flip rate with a large McNemar p is that.

>>> import numpy as np, pandas as pd
>>> a = pd.DataFrame({"item_id": range(8), "x": [1, 1, 0, 0, 1, 0, 1, 0]})
>>> b = pd.DataFrame({"item_id": range(8), "x": [1, 0, 0, 1, 1, 0, 1, 0]})
>>> r = flips(a.x.to_numpy(), b.x.to_numpy())
>>> r["flips"], r["n"], r["p_value"]
(2, 8, 1.0)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.stats import mcnemar_exact, proportion_ci
from workbench.stats.metrics import columns_of

SAME_FUNCTION = ("same weights", "same function")


def same_model(fp_a: dict, fp_b: dict, lineage_verdict: str | None = None) -> str | None:
    """Why two fingerprints are one model (a sentence for the card), or None when they are not
    shown to be (see the module doc)."""
    wa, wb_ = fp_a.get("weights_sha256"), fp_b.get("weights_sha256")
    if wa and wb_ and wa == wb_:
        return f"the same weight file (sha256 of the weights {wa[:12]}... in both fingerprints)"
    same_tokenizer = fp_a.get("tokenizer_sha256") and fp_a.get("tokenizer_sha256") == fp_b.get("tokenizer_sha256")
    if lineage_verdict in SAME_FUNCTION and same_tokenizer:
        return f"wb.lineage reads them as {lineage_verdict!r}, with the same tokenizer"
    return None


def reference_of(label_a: str, label_b: str, backends: dict, reference: str | None = None) -> tuple[str, str]:
    """(reference, deployed): the audit's reference if it is one of them, else the one on the
    ``hf`` backend (the weights as published, unmodified), else the first listed."""
    if reference in (label_a, label_b):
        return (reference, label_b if reference == label_a else label_a)
    if backends.get(label_b) == "hf" and backends.get(label_a) != "hf":
        return label_b, label_a
    return label_a, label_b


def flips(a: np.ndarray, b: np.ndarray) -> dict:
    """Flips between two paired 0/1 decision vectors (NaN: not decided, left out)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n, k = len(a), int(np.sum(a != b))
    low, high = proportion_ci(k, n) if n else (np.nan, np.nan)
    test = mcnemar_exact(a, b) if n else None
    return {"n": n, "flips": k, "flip_rate": k / n if n else None, "ci_low": low, "ci_high": high,
            "p_value": test.p_value if test else None, "a_only": test.n_a_only if test else 0,
            "b_only": test.n_b_only if test else 0}


def margin_test(margin: np.ndarray, flipped: np.ndarray) -> dict:
    """Do flips concentrate on small reference margins? Medians of both groups, the one-sided
    Mann-Whitney U p (flipped margins smaller; exact for small samples without ties, as scipy
    decides) and the flip rate per quarter of the margins (lowest first)."""
    margin, flipped = np.asarray(margin, float), np.asarray(flipped, bool)
    keep = np.isfinite(margin)
    margin, flipped = margin[keep], flipped[keep]
    out = {"n": int(len(margin)), "median_flipped": None, "median_other": None, "p_value": None, "quarters": []}
    if not len(margin):
        return out
    if flipped.any():
        out["median_flipped"] = float(np.median(margin[flipped]))
    if (~flipped).any():
        out["median_other"] = float(np.median(margin[~flipped]))
    if flipped.any() and (~flipped).any():
        out["p_value"] = float(sps.mannwhitneyu(margin[flipped], margin[~flipped], alternative="less").pvalue)
    if len(margin) >= 8:
        edges = np.quantile(margin, [0.25, 0.5, 0.75])
        quarter = np.searchsorted(edges, margin, side="right")
        for q in range(4):
            sel = quarter == q
            k, n = int(flipped[sel].sum()), int(sel.sum())
            low, high = proportion_ci(k, n) if n else (np.nan, np.nan)
            out["quarters"].append({"quarter": q + 1, "n": n, "flips": k, "flip_rate": k / n if n else None,
                                    "ci_low": low, "ci_high": high})
    return out


def decision_margin(unit: str, items: pd.DataFrame) -> np.ndarray | None:
    """The reference's margin per item: |difference of the two scores its decision compares|
    (CrowS-Pairs: more vs less stereotyping sentence; StereoSet: stereotype vs anti-stereotype;
    WinoBias: pro vs anti; BLiMP: good vs bad sentence), else the gap between the best two
    ``score_*`` options (multiple choice); None when the items hold no such scores."""
    pairs = {"stereoset": ("score_stereotype", "score_anti"), "crows_pairs": ("score_more", "score_less"),
             "winobias": ("score_pro", "score_anti")}
    name = unit.removeprefix("probe:")
    cols = pairs.get(name)
    if cols is None and {"logprob_good", "logprob_bad"} <= set(items.columns):
        cols = ("logprob_good", "logprob_bad")
    if cols is not None and set(cols) <= set(items.columns):
        return np.abs(items[cols[0]].to_numpy(float) - items[cols[1]].to_numpy(float))
    scores = [c for c in items.columns if c.startswith("score_") and pd.api.types.is_numeric_dtype(items[c])]
    if len(scores) >= 2:
        top = np.sort(items[scores].to_numpy(float), axis=1)
        return top[:, -1] - top[:, -2]
    return None


def flip_analysis(unit: str, title: str, metric, ref, other, category: str | None) -> dict:
    """The deployment entry of one probe or task: ``ref`` and ``other`` are the two models'
    per-item frames on the same items (``other`` aligned to ``ref``'s order), ``metric`` the
    binary :class:`~workbench.stats.Metric` whose per-item outcome is the decision."""
    a = metric.counted(columns_of(ref, [metric]))
    b = metric.counted(columns_of(other, [metric]))
    entry = {"probe": title, "unit": unit, "metric": metric.name, **flips(a, b)}
    both = ~(np.isnan(a) | np.isnan(b))
    cats = []
    if category and category in ref.columns:
        labels = ref[category].astype(str).to_numpy()
        for c in sorted(set(labels[both])):
            sel = labels == c
            cats.append({"category": c, **flips(a[sel], b[sel])})
    entry["categories"] = cats
    margin = decision_margin(unit, ref)
    entry["margin"] = (margin_test(margin[both], (a != b)[both]) if margin is not None else
                       {"n": 0, "note": "no per-item scores to read a decision margin from"})
    return entry


def flip_frame(entries: list[dict]) -> pd.DataFrame:
    """The deployment entries as one table (what ``Audit.deployment()`` returns)."""
    cols = ["model_a", "model_b", "probe", "metric", "n", "flips", "flip_rate", "ci_low", "ci_high", "p_value",
            "evidence"]
    return pd.DataFrame([{k: e.get(k) for k in cols} for e in entries], columns=cols)

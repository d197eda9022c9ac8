"""``wb.lineage(a, b)``: evidence of whether one model derives from another.

- **Weights** (same architecture: the same tensor names and shapes): per 2-D tensor, the Pearson
  correlation of the two matrices after scaling every row to unit length. That reading is
  unchanged by the common re-parameterisations that rescale: a factor per tensor or per output
  channel (a folded norm scale, a quantiser's row scales), a shift of the mean, and the small
  noise of quantisation; tied output embeddings are compared once. It is NOT robust to a
  permutation of hidden units or heads, or a rotation of the residual stream: such a copy reads
  as unrelated weights (the representation and prediction rows below still see it).
- **Tokenizer** (any pair): Jaccard overlap of the vocabularies and the share of shared tokens
  with the same id.
- **Representations** (any pair): linear CKA (:func:`workbench.inspect.similarity.linear_cka`)
  of the last layer, each text mean-pooled, on neutral texts.
- **Predictions** (any pair): agreement of the greedy next token at every position (same
  tokenization) or at the end of each text (different tokenizers, compared as text).

The verdict uses calibrated wording: "same weights" (identical files or tensors), "fine-tuned
from" (same architecture, median weight correlation at least 0.5: training from a shared start;
the direction cannot be told from weights), "same tokenizer only" (the same vocabulary with the
same ids, weights unrelated), "unrelated" (no evidence of derivation found by these tests).

>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> lineage(m, m).verdict
'same weights'
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from workbench.errors import InvalidTypeError
from workbench.provenance import model_record, versions
from workbench.results import Result

FINETUNED_MIN_CORRELATION = 0.5   # independent inits correlate ~0, fine-tuned copies > 0.9
SAME_TOKENIZER = 0.99            # vocabulary Jaccard and same-id share both at least this
MAX_ROWS = 4096                  # rows compared per matrix (embeddings of 262k rows: a sample)
NEUTRAL_TEXTS = [
    "The train leaves the station at nine in the morning.", "Water boils at one hundred degrees Celsius at sea level.",
    "The library is open from Monday to Saturday.", "She put the books on the shelf next to the window.",
    "A triangle has three sides and three angles.", "The meeting was moved to the second floor.",
    "Rain is expected in the afternoon, followed by clear skies.", "He wrote the numbers in a small notebook.",
    "The bridge crosses the river near the old mill.", "Bread is made from flour, water, salt and yeast.",
    "The museum has a collection of maps from the last century.", "Please close the door when you leave the room.",
    "The garden has roses, tulips and a small pond.", "The report lists the results of the survey in a table.",
    "Most cars in the car park were parked in rows.", "The clock on the wall shows a quarter past three.",
]


@dataclass
class Lineage(Result):
    """``frame``: evidence, value, reading (the last row is the verdict); ``verdict``: its wording."""

    verdict: str = ""

    def summary(self) -> pd.DataFrame:
        return self.frame.copy()

    def plot(self, ax=None):
        """The similarity rows (0 to 1) as bars."""
        import matplotlib.pyplot as plt
        f = self.frame[self.frame.value.map(lambda v: isinstance(v, float))]
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.35 * len(f) + 1))
        ax.barh(f.evidence, f.value.astype(float))
        ax.set(xlim=(0, 1), title=f"{self.provenance['model_a']['name']} vs {self.provenance['model_b']['name']}: "
                                  f"{self.verdict}")
        ax.invert_yaxis()
        return ax


def _matrices(hf) -> dict:
    tied = getattr(hf.config, "tie_word_embeddings", False)
    out = {}
    for name, p in hf.named_parameters():  # tied weights are yielded once
        if p.ndim == 2 and not (tied and name.endswith("lm_head.weight")):
            out[name] = p.detach()
    return out


def _row_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a[:MAX_ROWS].double(), b[:MAX_ROWS].double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    den = a.norm() * b.norm()
    return float(a @ b / den) if den > 0 else float("nan")


def weight_evidence(model_a, model_b) -> dict:
    """Tensor-by-tensor comparison of two models of the same architecture."""
    ma, mb = _matrices(model_a.hf), _matrices(model_b.hf)
    shared = [n for n in ma if n in mb and ma[n].shape == mb[n].shape]
    if len(shared) < 0.9 * max(len(ma), len(mb)) or not shared:
        return {"same_architecture": False, "n": len(shared), "of": max(len(ma), len(mb))}
    cors = pd.Series({n: _row_correlation(ma[n], mb[n]) for n in shared})
    equal = sum(bool(torch.equal(ma[n], mb[n])) for n in shared)
    return {"same_architecture": True, "n": len(shared), "median": float(cors.median()), "min": float(cors.min()),
            "least_similar": str(cors.idxmin()), "equal": equal}


def tokenizer_evidence(model_a, model_b) -> dict:
    va, vb = model_a.tokenizer.get_vocab(), model_b.tokenizer.get_vocab()
    shared = va.keys() & vb.keys()
    same_id = sum(va[t] == vb[t] for t in shared)
    return {"jaccard": len(shared) / len(va.keys() | vb.keys()), "same_id": same_id / len(shared) if shared else 0.0,
            "sizes": (len(va), len(vb))}


def _greedy(model, texts):
    from workbench.scoring.tokenize import encode, prefix_token_id
    tok = model.tokenizer
    prefix = prefix_token_id(tok)
    ids, preds = [], []
    with torch.no_grad():
        for t in texts:
            seq = ([prefix] if prefix is not None else []) + encode(tok, t)
            logits = model.hf(input_ids=torch.tensor([seq], device=model.device)).logits[0]
            ids.append(seq)
            preds.append(logits.argmax(-1).tolist())
    return ids, preds


def prediction_evidence(model_a, model_b, texts) -> dict:
    ia, pa = _greedy(model_a, texts)
    ib, pb = _greedy(model_b, texts)
    if ia == ib:
        same = sum(x == y for ra, rb in zip(pa, pb) for x, y in zip(ra, rb))
        total = sum(len(r) for r in pa)
        return {"agreement": same / total, "how": f"greedy next token at all {total} positions (same tokenization)"}
    da = [model_a.tokenizer.decode([r[-1]]).strip().lower() for r in pa]
    db = [model_b.tokenizer.decode([r[-1]]).strip().lower() for r in pb]
    return {"agreement": sum(x == y for x, y in zip(da, db)) / len(texts),
            "how": f"greedy next token after each of {len(texts)} texts, compared as text (different tokenizations)"}


def cka_last_layer(model_a, model_b, texts) -> float:
    from workbench.inspect.similarity import cka
    f = cka(model_a, model_b, texts, site="resid_post", pooling="mean").to_frame()
    return float(f[(f.layer_a == f.layer_a.max()) & (f.layer_b == f.layer_b.max())].cka.iloc[0])


def lineage(model_a, model_b, texts=None) -> Lineage:
    """Evidence of whether ``model_b`` and ``model_a`` derive from one another (see the module
    docstring for each test and what it is robust to). ``texts``: neutral texts for the
    representation and prediction tests (default: 16 built-in everyday sentences)."""
    from workbench.models.model import Model
    for m in (model_a, model_b):
        if not isinstance(m, Model):
            raise InvalidTypeError(f"lineage needs two loaded models (wb.load_model(...)), got {type(m).__name__}")
    texts = list(texts or NEUTRAL_TEXTS)
    rows = []
    hash_a, hash_b = model_a.fingerprint.get("weights_sha256"), model_b.fingerprint.get("weights_sha256")
    same_files = bool(hash_a) and hash_a == hash_b   # a served model has no weights to hash (None)
    if not (hash_a and hash_b):
        rows.append({"evidence": "weight hashes (fingerprint)", "value": "not measurable",
                     "reading": "a model's weights are not reachable (served): no hash to compare"})
    else:
        rows.append({"evidence": "weight hashes (fingerprint)", "value": "identical" if same_files else "differ",
                     "reading": "the same weight files or tensors" if same_files else "the weights are not byte-identical"})
    hf_both = model_a.hf is not None and model_b.hf is not None
    # weights offloaded to disk (device_map) are meta tensors in the module: no values to compare
    resident = hf_both and not any(p.device.type == "meta" for m in (model_a, model_b) for p in m.hf.parameters())
    w = weight_evidence(model_a, model_b) if resident else {"same_architecture": False, "n": 0, "of": 0}
    if w["same_architecture"]:
        rows.append({"evidence": "same architecture (tensor names and shapes)", "value": f"yes ({w['n']} matrices)",
                     "reading": "the weights can be compared tensor by tensor"})
        rows.append({"evidence": "per-tensor weight correlation, median (rows scaled to unit length)",
                     "value": w["median"], "reading": _corr_reading(w["median"])})
        rows.append({"evidence": "per-tensor weight correlation, minimum", "value": w["min"],
                     "reading": f"least similar: {w['least_similar']}"})
        rows.append({"evidence": "matrices bitwise equal", "value": f"{w['equal']} of {w['n']}",
                     "reading": "untouched by any training since the shared start" if w["equal"] else "every matrix changed"})
    else:
        rows.append({"evidence": "same architecture (tensor names and shapes)",
                     "value": f"no ({model_a.architecture} vs {model_b.architecture})" if resident else "not measurable",
                     "reading": "no tensor-by-tensor comparison is possible; only the tests below apply"})
    t = tokenizer_evidence(model_a, model_b)
    rows.append({"evidence": "tokenizer vocabulary overlap (Jaccard)", "value": t["jaccard"],
                 "reading": f"vocabularies of {t['sizes'][0]} and {t['sizes'][1]} tokens"})
    rows.append({"evidence": "shared tokens with the same id", "value": t["same_id"],
                 "reading": "the same tokenizer" if t["jaccard"] >= SAME_TOKENIZER and t["same_id"] >= SAME_TOKENIZER
                 else "different tokenizers"})
    if hf_both:
        c = cka_last_layer(model_a, model_b, texts)
        rows.append({"evidence": f"linear CKA, last layer, mean-pooled, {len(texts)} neutral texts", "value": c,
                     "reading": "1 = the same representation up to rotation and scale; unrelated models of the same "
                                "size also score well above 0 on few texts, so read it beside the weights"})
        if model_a.kind == model_b.kind == "causal":
            p = prediction_evidence(model_a, model_b, texts)
            rows.append({"evidence": "next-token agreement", "value": p["agreement"], "reading": p["how"]})
        else:
            rows.append({"evidence": "next-token agreement", "value": "not measured",
                         "reading": f"needs two causal models ({model_a.kind} and {model_b.kind} given)"})
    verdict, why = _verdict(same_files, w, t)
    rows.append({"evidence": "verdict", "value": verdict, "reading": why})
    prov = {"model_a": model_record(model_a), "model_b": model_record(model_b), "versions": versions(),
            "n_texts": len(texts), "thresholds": {"fine_tuned_min_correlation": FINETUNED_MIN_CORRELATION,
                                                  "same_tokenizer": SAME_TOKENIZER}}
    return Lineage(pd.DataFrame(rows, columns=["evidence", "value", "reading"]), prov, verdict=verdict)


def _corr_reading(r: float) -> str:
    if r >= 0.99:
        return "nearly identical weights"
    if r >= FINETUNED_MIN_CORRELATION:
        return "strongly correlated weights: trained from a shared start"
    return "uncorrelated weights: independent initialisations (or a permutation of units, which this test does not undo)"


def _verdict(same_files: bool, w: dict, t: dict) -> tuple[str, str]:
    if same_files or (w["same_architecture"] and w["equal"] == w["n"]):
        return "same weights", "identical weight files or tensors"
    if w["same_architecture"] and w["median"] >= FINETUNED_MIN_CORRELATION:
        return "fine-tuned from", (f"same architecture and median weight correlation {w['median']:.3f} "
                                   f"(>= {FINETUNED_MIN_CORRELATION}): one was trained from the other; the weights "
                                   "do not say which came first")
    if t["jaccard"] >= SAME_TOKENIZER and t["same_id"] >= SAME_TOKENIZER:
        weights = (f"uncorrelated weights (median {w['median']:.3f})" if w["same_architecture"]
                   else "different architectures")
        return "same tokenizer only", f"the same vocabulary and ids, but {weights}: no evidence of a shared start"
    weights = (f"same architecture but uncorrelated weights (median {w['median']:.3f} < {FINETUNED_MIN_CORRELATION})"
               if w["same_architecture"] else "different architectures, so no weights to compare")
    return "unrelated", f"no evidence of derivation: {weights}; different tokenizers"

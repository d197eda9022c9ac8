"""``wb.lineage(a, b)``: evidence of whether one model derives from another.

- **Weights** (same architecture: the same tensor names and shapes): every tensor, 1-D norm
  scales and biases included, is compared for exact equality and relative change; per matrix,
  the Pearson correlation of the two matrices after scaling every row to unit length. That
  correlation is unchanged by the common re-parameterisations that rescale: a factor per tensor
  or per output channel (a folded norm scale, a quantiser's row scales), a shift of the mean,
  and the small noise of quantisation; tied output embeddings are compared once. It does NOT undo
  a permutation of hidden units or heads, or a rotation of the residual stream: such a copy reads
  as uncorrelated weights. What catches it is the function (next item), which the verdict uses.
- **Function** (two causal models with the same tokenizer, any backend: in process, llama.cpp or
  a server): the per-token log-probs of the texts' own tokens under each model, compared as
  1 − mean squared difference / variance (1 = the same function on these texts).
- **Tokenizer** (any pair): Jaccard overlap of the vocabularies and the share of shared tokens
  with the same id.
- **Representations** (two in-process models): linear CKA
  (:func:`workbench.inspect.similarity.linear_cka`) of the last layer, each text mean-pooled.
- **Predictions** (two in-process causal models): agreement of the greedy next token at every
  position (same tokenization) or at the end of each text (different tokenizers, compared as text).

The verdict agrees with every row it rests on, in this order:

1. "same weights": the weight hashes are identical, or every tensor of both models is exactly
   equal (when the hashes differ, the files differ in format or metadata, not in values).
2. "same function": the per-token log-probs agree to at least 0.99 (:data:`SAME_FUNCTION`): the
   weights are re-arranged (units permuted, basis rotated), in another precision or format, or
   could not be read (a served model). It says "on these texts": a change that only shows on
   other inputs (a backdoor) is not seen.
3. "fine-tuned from, or both from one base": same architecture, median weight correlation at
   least 0.5: trained from a shared start. The weights tell neither the direction nor whether
   one model is the other's parent or both are children of a third.
4. "not measurable": the weights of a model could not be read (served, llama.cpp, offloaded)
   and the function is not the same; the reading gives what was measured.
5. "same tokenizer only": the same vocabulary with the same ids, weights uncorrelated or of
   another architecture; 6. "unrelated": no evidence of derivation found by these tests.

Permutations are not undone in the weights (this module lets the functional evidence speak
instead): a copy that was re-arranged *and then trained* reads as uncorrelated weights with close
but not identical predictions, which the reading points out but cannot tell from imitation.

>>> from workbench.testing import tiny_model
>>> m = tiny_model("llama")
>>> lineage(m, m).verdict
'same weights'
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from workbench.errors import BackendCapabilityError, InvalidInputError, InvalidTypeError, ServerError
from workbench.models.model import Model
from workbench.provenance import model_record, versions
from workbench.provenance_audit.lineage_evidence import (MAX_ROWS, cka_last_layer, function_evidence,  # noqa: F401
                                                          prediction_evidence, tokenizer_evidence, weight_evidence)
from workbench.results import Result
from workbench.validate import check_texts

FINETUNED_MIN_CORRELATION = 0.5   # independent inits correlate ~0, fine-tuned copies > 0.9
SAME_TOKENIZER = 0.99            # vocabulary Jaccard and same-id share both at least this
# per-token log-prob agreement of "the same function". Measured on SmolLM2 (python
# benchmarks/lineage_function.py): a bf16 copy 0.9996, the same GGUF on llama.cpp 0.9991 and on a
# llama.cpp server 0.9986 (their activation rounding); two AdamW steps at lr 1e-5 on 16 texts 0.94
SAME_FUNCTION = 0.99
CLOSE_FUNCTION = 0.9              # a reading aid: close predictions (the lightest fine-tune measured: 0.94)
FINETUNED = "fine-tuned from, or both from one base"
VERDICTS = ("same weights", "same function", FINETUNED, "not measurable", "same tokenizer only", "unrelated")
SIMILARITY_ROWS = ("per-tensor weight correlation", "tokenizer vocabulary overlap", "shared tokens with the same id",
                   "per-token log-prob agreement", "linear CKA", "next-token agreement")
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
        """The similarity rows (up to 1) as bars."""
        import matplotlib.pyplot as plt
        f = self.frame[self.frame.value.map(lambda v: isinstance(v, float))
                       & self.frame.evidence.str.startswith(SIMILARITY_ROWS)]
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 0.35 * len(f) + 1))
        ax.barh(f.evidence, f.value.astype(float).clip(lower=0))
        ax.set(xlim=(0, 1), title=f"{self.provenance['model_a']['name']} vs {self.provenance['model_b']['name']}: "
                                  f"{self.verdict}")
        ax.invert_yaxis()
        return ax


def _unreadable(model) -> str | None:
    """Why a model's weights cannot be compared as tensors here (None when they can)."""
    if model.hf is None:
        served = not model.fingerprint.get("weights_sha256")
        return (f"{model.name} is served ({model.backend.name} backend): its weights are not reachable" if served else
                f"{model.name} runs on the {model.backend.name} backend, whose weights are not read as tensors here")
    if any(p.device.type == "meta" for p in model.hf.parameters()):
        return f"{model.name} has weights offloaded to disk (meta tensors in the module), which are not read here"
    return None


def lineage(model_a, model_b, texts=None) -> Lineage:
    """Evidence of whether ``model_b`` and ``model_a`` derive from one another (see the module
    docstring for each test, what it is robust to and how the verdict reads the rows).
    ``texts``: neutral texts for the function, representation and prediction tests (default: 16
    built-in everyday sentences)."""
    for m in (model_a, model_b):
        if not isinstance(m, Model):
            raise InvalidTypeError(f"lineage needs two loaded models (wb.load_model(...)), got {type(m).__name__}")
    texts = NEUTRAL_TEXTS if texts is None else check_texts(texts, "lineage")
    if len(texts) < 2:
        raise InvalidInputError(f"lineage needs at least 2 texts (CKA compares them with each other), got {len(texts)}")
    rows = []
    hash_a, hash_b = model_a.fingerprint.get("weights_sha256"), model_b.fingerprint.get("weights_sha256")
    if not (hash_a and hash_b):   # a served model has no weights to hash (None)
        hashes = "not measurable"
        rows.append({"evidence": "weight hashes (fingerprint)", "value": hashes,
                     "reading": "a model's weights are not reachable (served): no hash to compare"})
    else:
        hashes = "identical" if hash_a == hash_b else "differ"
        rows.append({"evidence": "weight hashes (fingerprint)", "value": hashes,
                     "reading": "the same weight files or tensors" if hashes == "identical" else
                     "the weight files or tensors are not byte-identical"})
    unreadable = [why for why in (_unreadable(model_a), _unreadable(model_b)) if why]
    w = weight_evidence(model_a, model_b) if not unreadable else {"same_architecture": False, "n": 0, "of": 0}
    w["unreadable"] = "; ".join(unreadable)
    rows += _weight_rows(model_a, model_b, w)
    t = tokenizer_evidence(model_a, model_b)
    t["same"] = t["jaccard"] >= SAME_TOKENIZER and t["same_id"] >= SAME_TOKENIZER
    rows.append({"evidence": "tokenizer vocabulary overlap (Jaccard)", "value": t["jaccard"],
                 "reading": f"vocabularies of {t['sizes'][0]} and {t['sizes'][1]} tokens"})
    rows.append({"evidence": "shared tokens with the same id", "value": t["same_id"],
                 "reading": "the same tokenizer" if t["same"] else "different tokenizers"})
    f = _function(model_a, model_b, texts, t)
    rows.append(_function_row(f, len(texts)))
    extra = {}
    if model_a.hf is not None and model_b.hf is not None:
        extra["cka"] = cka_last_layer(model_a, model_b, texts)
        rows.append({"evidence": f"linear CKA, last layer, mean-pooled, {len(texts)} neutral texts",
                     "value": extra["cka"],
                     "reading": "1 = the same representation up to rotation and scale; unrelated models of the same "
                                "size also score well above 0 on few texts, so read it beside the weights"})
        if model_a.kind == model_b.kind == "causal":
            p = prediction_evidence(model_a, model_b, texts)
            extra["agreement"] = p["agreement"]
            rows.append({"evidence": "next-token agreement", "value": p["agreement"], "reading": p["how"]})
        else:
            rows.append({"evidence": "next-token agreement", "value": "not measured",
                         "reading": f"needs two causal models ({model_a.kind} and {model_b.kind} given)"})
    verdict, why = _verdict(hashes, w, t, f, extra, (model_a.architecture, model_b.architecture))
    rows.append({"evidence": "verdict", "value": verdict, "reading": why})
    prov = {"model_a": model_record(model_a), "model_b": model_record(model_b), "versions": versions(),
            "n_texts": len(texts), "thresholds": {"fine_tuned_min_correlation": FINETUNED_MIN_CORRELATION,
                                                  "same_tokenizer": SAME_TOKENIZER, "same_function": SAME_FUNCTION}}
    return Lineage(pd.DataFrame(rows, columns=["evidence", "value", "reading"]), prov, verdict=verdict)


def _weight_rows(model_a, model_b, w: dict) -> list[dict]:
    if not w["same_architecture"]:
        return [{"evidence": "same architecture (tensor names and shapes)",
                 "value": ("not measurable" if w["unreadable"] else
                           f"no ({model_a.architecture} vs {model_b.architecture})"),
                 "reading": (f"not measurable: {w['unreadable']}" if w["unreadable"] else
                             "no tensor-by-tensor comparison is possible") + "; only the tests below apply"}]
    changed = w["changed"]
    if not changed:
        equal_reading = "every tensor is exactly the same"
    elif w["equal"]:
        equal_reading = (f"{w['equal']} tensors unchanged since the shared start; {len(changed)} changed, e.g. "
                         f"{changed[0]}" + ("; every matrix is equal: only 1-D tensors (norm scales, biases) changed"
                                            if w["equal_matrices"] == w["n_matrices"] else ""))
    else:
        equal_reading = "every tensor changed"
    extra = w["of"] - w["n"]
    return [{"evidence": "same architecture (tensor names and shapes)",
             "value": f"yes ({w['n']} tensors: {w['n_matrices']} matrices, {w['n_vectors']} 1-D)",
             "reading": "the weights can be compared tensor by tensor"
                        + (f"; {extra} tensors of one model have no counterpart" if extra else "")},
            {"evidence": "per-tensor weight correlation, median (matrices, rows scaled to unit length)",
             "value": w["median"], "reading": _corr_reading(w["median"])},
            {"evidence": "per-tensor weight correlation, minimum", "value": w["min"],
             "reading": f"least similar: {w['least_similar']}"},
            {"evidence": "tensors bitwise equal (1-D norm scales and biases included)",
             "value": f"{w['equal']} of {w['n']} ({w['equal_matrices']} of {w['n_matrices']} matrices, "
                      f"{w['equal_vectors']} of {w['n_vectors']} 1-D)", "reading": equal_reading},
            {"evidence": "largest relative change, ‖b − a‖ / ‖a‖", "value": w["largest_change"],
             "reading": f"in {w['largest_change_in']}" if w["largest_change"] else "no tensor changed"}]


def _function(model_a, model_b, texts, t) -> dict:
    if not (model_a.kind == model_b.kind == "causal"):
        return {"comparable": False, "why": f"needs two causal models ({model_a.kind} and {model_b.kind} given)"}
    if not t["same"]:
        return {"comparable": False, "why": "needs the same tokenizer (the positions of the two would not line up)"}
    for m in (model_a, model_b):
        if not m.backend.supports("token_logprobs"):
            return {"comparable": False, "why": f"the {m.backend.name} backend of {m.name} gives no token log-probs"}
    try:
        return function_evidence(model_a, model_b, texts)
    except (ServerError, BackendCapabilityError) as e:  # a server that cannot score: the other rows still stand
        return {"comparable": False, "why": f"scoring failed: {e}"}


def _function_row(f: dict, n_texts: int) -> dict:
    name = "per-token log-prob agreement, 1 − mean squared difference / variance"
    if not f["comparable"]:
        return {"evidence": name, "value": "not measured", "reading": f["why"]}
    return {"evidence": name, "value": f["agreement"],
            "reading": f"{f['n_tokens']} tokens of {f['n_texts']} texts, each model through its own backend; largest "
                       f"difference {f['max_abs']:.3g} nats, median {f['median_abs']:.3g}; 1 = the same function "
                       f"(>= {SAME_FUNCTION} reads as the same function)"}


def _corr_reading(r: float) -> str:
    if math.isnan(r):
        return "no matrix to correlate"
    if r >= 0.99:
        return "nearly identical weights"
    if r >= FINETUNED_MIN_CORRELATION:
        return "strongly correlated weights: trained from a shared start"
    return ("uncorrelated weights: independent initialisations (or a permutation of units, which this test does "
            "not undo)")


def _agreement(x: float) -> str:
    return f"{x:.4f}" if x >= CLOSE_FUNCTION else f"{x:.3f}"


def _said_function(f: dict, extra: dict) -> str:
    said = f"per-token log-prob agreement {_agreement(f['agreement'])} (largest difference {f['max_abs']:.3g} nats)"
    if "agreement" in extra:
        said += f", next-token agreement {extra['agreement']:.3g}"
    if "cka" in extra:
        said += f", CKA {extra['cka']:.3g}"
    return said


def _verdict(hashes: str, w: dict, t: dict, f: dict, extra: dict, archs: tuple) -> tuple[str, str]:
    """(verdict, why): the first rule of the module docstring that the rows satisfy."""
    compared = w["same_architecture"]
    if hashes == "identical":
        return "same weights", "the weight hashes are identical: the same weight files or tensors"
    if compared and w["all_equal"]:
        return "same weights", (f"every one of the {w['n']} tensors is exactly equal"
                                + (" although the weight hashes differ: the files differ in format or metadata, not "
                                   "in values" if hashes == "differ" else ""))
    same_function = f["comparable"] and f["agreement"] >= SAME_FUNCTION
    if compared:
        weights = (f"the weights differ in {len(w['changed'])} of {w['n']} tensors, median correlation "
                   f"{w['median']:.3g}")
    elif w["unreadable"]:
        weights = f"the weights could not be compared ({w['unreadable']})"
    else:
        weights = f"different architectures ({archs[0]} vs {archs[1]})"
    if same_function:
        if compared and w["median"] >= FINETUNED_MIN_CORRELATION:
            how = "the same model in another precision or format, or a change too small to show on these texts"
        elif compared:
            how = ("one is the other with its units permuted or its residual basis rotated (a re-arrangement the "
                   "weight correlation does not undo), or another format of it")
        elif w["unreadable"]:
            how = "the same model (possibly in another precision), or one too close to tell apart on these texts"
        else:
            how = "one model converted to another architecture's layout"
        return "same function", (f"{weights}, yet on these texts the two compute the same function "
                                 f"({_said_function(f, extra)}): {how}")
    function = (f"; {_said_function(f, extra)}, short of the same function ({SAME_FUNCTION})" if f["comparable"]
                else f"; function not compared ({f['why']})")
    if compared and w["median"] >= FINETUNED_MIN_CORRELATION:
        only = (": every matrix is equal, only 1-D tensors (norm scales, biases) changed"
                if w["equal_matrices"] == w["n_matrices"] else "")
        return FINETUNED, (f"same architecture, {weights} (>= {FINETUNED_MIN_CORRELATION}){only}: trained from a "
                           f"shared start, either one from the other or both from one base; the weights tell neither "
                           f"the direction nor which{function}")
    if w["unreadable"]:
        tokenizer = "the same tokenizer" if t["same"] else "different tokenizers"
        return "not measurable", (f"{weights}; {tokenizer}{function}; without the weights a derivation can be "
                                  "neither shown nor excluded")
    close = (f"; the predictions are close: a re-arranged copy that was then trained, or a model trained to imitate "
             f"the other, would read like this, and these tests cannot tell them apart"
             if f["comparable"] and f["agreement"] >= CLOSE_FUNCTION else "")
    if compared:
        weights = f"uncorrelated weights (median {w['median']:.3g} < {FINETUNED_MIN_CORRELATION})"
    if t["same"]:
        return "same tokenizer only", (f"the same vocabulary and ids, but {weights}: no evidence of a shared start in "
                                       f"the weights{function}{close}")
    return "unrelated", f"no evidence of derivation: {weights}; different tokenizers{function}"

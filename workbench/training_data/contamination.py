"""``wb.contamination``: was this benchmark in the training data?

Tests (any of them, in ``tests``):

- ``"exchangeability"`` (Oren et al. 2023; :mod:`workbench.training_data.exchangeability`): the
  canonical order's log-likelihood against random orders; permutation p-value. Needs the data in
  its published order.
- ``"verbatim"`` (:mod:`workbench.training_data.verbatim`): greedy completion of each item's
  first half against its true rest, with perturbed prompts as the control.
- ``"ngram"`` (:mod:`workbench.training_data.ngram`): 13-gram overlap with a corpus sample you
  give as ``corpus=`` (files, a folder, or an iterable of strings / ``datasets`` rows). Model-free;
  its statistic is the share of items flagged and it has no p-value (NaN).

``data``: a list of strings in canonical order; a DataFrame (``column`` names the text column,
default ``"text"``); or a benchmark task name or spec as :func:`wb.load_task` takes it (its items
in data order, each rendered as one text: a multiple-choice item as context + delimiter + gold
choice, a minimal pair as its good sentence, a generation item as prompt + target), with
``task_data=`` for the task's data file where it needs one. Probes are not read yet.

``summary()``: ``test, statistic, p_value, n`` (one row per test); ``items[test]`` the per-item
frames of the tests that have them (verbatim, ngram).

>>> import workbench as wb
>>> from workbench.testing import tiny_model
>>> con = wb.contamination(tiny_model("gpt2"), ["One two three.", "Four five six.", "Seven eight.", "Nine ten."],
...                        n_permutations=19, cache=False)
>>> list(con.summary().columns)
['test', 'statistic', 'p_value', 'n']
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.results import Result
from workbench.validate import BOOL, Int, Optional, check_model, check_texts, checked

TESTS = ("exchangeability", "verbatim", "ngram")


def task_texts(task, task_data=None) -> list[str]:
    """The items of a benchmark task, in data order, each as one text (see the module doc)."""
    from workbench.bench.tasks import load_task
    t = load_task(task, **({"data": task_data} if task_data is not None else {}))
    out = []
    for it in t.all_items:
        if t.kind == "multiple_choice":
            out.append(it["context"] + t.target_delimiter + it["choices"][it["target"]])
        elif t.kind == "minimal_pairs":
            out.append(it["good"])
        elif t.kind == "generation":
            out.append(it["prompt"] + it["target"])
        else:
            out.append(it["text"])
    return out


def _texts(data, column, task_data) -> tuple[list[str], str]:
    if isinstance(data, pd.DataFrame):
        column = column or "text"
        if column not in data.columns:
            raise InvalidInputError(f"contamination: the DataFrame has no column {column!r} (columns: "
                                    f"{list(data.columns)}); pass column= naming the text column")
        return check_texts(data[column].tolist(), "contamination"), f"DataFrame column {column!r}"
    if isinstance(data, str) or type(data).__name__ == "Task" or isinstance(data, dict):
        return check_texts(task_texts(data, task_data), "contamination"), f"task {getattr(data, 'name', data)!r}"
    return check_texts(data, "contamination"), "list of texts"


@dataclass
class ContaminationResult(Result):
    """``summary()`` (test, statistic, p_value, n), ``items`` ({test: per-item frame}), ``details``
    (every test's full row), ``provenance``."""

    items: dict = field(default_factory=dict)
    details: list = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        out = self.frame[["test", "statistic", "p_value", "n"]].copy()
        out.attrs["statistics"] = {
            "exchangeability": "log-likelihood of the canonical order minus the mean over permuted orders (nats); "
                               "one-sided permutation p = (count + 1) / (B + 1)",
            "verbatim": "mean per-item LCS ratio, original minus perturbed prompt; one-sided sign-flip p",
            "ngram": "share of items with at least one n-gram in the corpus; no p-value"}
        return out

    def plot(self, ax=None, **kwargs):
        """Each test's p-value (log scale) against 0.05."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 0.4 * len(self.frame) + 1.2))
        s = self.summary().dropna(subset=["p_value"])
        ax.barh(s.test, s.p_value, **kwargs)
        ax.axvline(0.05, color="grey", ls="--", lw=1, label="0.05")
        ax.set(xscale="log", xlabel="p-value (smaller: evidence of contamination)")
        ax.legend(fontsize="small")
        return ax


@checked(seed=Int(min=0), n_shards=Int(min=1), n_permutations=Int(min=19), n=Int(min=1), cache=BOOL,
         progress=Optional(BOOL))
def contamination(model, data, tests=("exchangeability",), seed: int = 0, *, column: str | None = None,
                  task_data=None, n_shards: int = 1, n_permutations: int = 99, separator: str = "\n", corpus=None,
                  n: int = 13, cache: bool = True, progress=None) -> ContaminationResult:
    """Benchmark contamination tests on ``data`` (see the module doc for the tests and inputs).

    ``n_shards``, ``n_permutations``, ``separator``: the exchangeability test (items per shard
    are joined by ``separator`` and scored as one text, so a shard must fit the model's window);
    ``corpus``, ``n``: the n-gram test. ``seed`` seeds the permutations and perturbations.
    """
    from workbench.training_data.exchangeability import exchangeability
    from workbench.training_data.ngram import ngram_overlap
    from workbench.training_data.verbatim import verbatim

    check_model(model, ("causal",), "contamination")
    if isinstance(tests, str):
        tests = (tests,)
    tests = tuple(dict.fromkeys(tests))
    bad = [t for t in tests if t not in TESTS]
    if bad or not tests:
        raise InvalidInputError(f"unknown contamination test(s) {bad}; choose from {TESTS}")
    if "ngram" in tests and corpus is None:
        raise InvalidInputError("the ngram test needs corpus= (corpus files, a folder, or an iterable of texts)")
    texts, source = _texts(data, column, task_data)
    rows, items = [], {}
    for t in tests:
        if t == "exchangeability":
            rows.append(exchangeability(model, texts, n_shards=n_shards, n_permutations=n_permutations, seed=seed,
                                        separator=separator, cache=cache, progress=progress))
        elif t == "verbatim":
            row, items["verbatim"] = verbatim(model, texts, seed=seed, cache=cache, progress=progress)
            rows.append(row)
        else:
            df = ngram_overlap(texts, corpus, n=n)
            items["ngram"] = df
            rows.append({"test": "ngram", "statistic": float(df.contaminated.mean()), "p_value": np.nan,
                         "n": len(df), "n_flagged": int(df.contaminated.sum()),
                         "n_too_short": int((df.n_ngrams == 0).sum()), "ngram_n": n})
    frame = pd.DataFrame(rows)
    prov = {"model": {"name": model.name, "fingerprint_id": model.fingerprint_id, "state_id": model.state_id},
            "data": {"source": source, "n_items": len(texts)},
            "options": {"tests": list(tests), "seed": seed, "n_shards": n_shards, "n_permutations": n_permutations,
                        "separator": separator, "n": n}}
    return ContaminationResult(frame=frame, provenance=prov, items=items, details=rows)

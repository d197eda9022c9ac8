"""``wb.contamination``: was this benchmark in the training data?

Tests (any of them, in ``tests``):

- ``"exchangeability"`` (Oren et al. 2023; :mod:`workbench.training_data.exchangeability`): the
  canonical order's log-likelihood against random orders, shard by shard; randomization p-value
  over the shards. Needs the data in its published order. ``power()`` simulates a planted
  canonical-order preference on the model's own scores and says how large a one the run could find.
- ``"verbatim"`` (:mod:`workbench.training_data.verbatim`): greedy completion of each item's
  first half against its true rest, with perturbed prompts as the control; its p-value compares
  the items' gain with that on ``unseen=`` texts of the same kind (NaN without them: the gain
  alone is no test, see that module).
- ``"ts_guessing"`` (Deng et al. 2023; :mod:`workbench.training_data.ts_guessing`): multiple-choice
  items only; the model writes a masked WRONG option; statistic: the exact-match rate; p: one-sided
  exact McNemar test against the same prompts with the question perturbed (the control).
- ``"ngram"`` (:mod:`workbench.training_data.ngram`): 13-gram overlap with a corpus sample you
  give as ``corpus=`` (files, a folder, or an iterable of strings / ``datasets`` rows; a path that
  does not exist and an empty corpus are refused). Model-free; its statistic is the share of items
  flagged and it has no p-value (NaN).

``data``: a list of strings in canonical order; a DataFrame (``column`` names the text column,
default ``"text"``); or a benchmark task name or spec as :func:`wb.load_task` takes it (its items
in data order, each rendered as one text: a multiple-choice item as context + delimiter + gold
choice, a minimal pair as its good sentence, a generation item as prompt + target), with
``task_data=`` for the task's data file where it needs one. Probes are not read yet.

``summary()``: ``test, statistic, p_value, n`` (one row per test); ``findings()``: the same with a
``reading`` in words (the exchangeability test's with its power); ``power()``: the exchangeability
test's power table; ``items[test]`` the per-item frames of the tests that have them (verbatim, ngram).

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
from workbench.models.checks import check_model
from workbench.probes.api import prepare_probe, probe_names
from workbench.results import Result
from workbench.tasks.spec import load_task
from workbench.training_data.exchangeability import exchangeability, exchangeability_power
from workbench.training_data.ngram import check_corpus, ngram_overlap
from workbench.training_data.ts_guessing import mc_items, render, ts_guessing
from workbench.training_data.verbatim import verbatim
from workbench.validate import BOOL, Int, Optional, check_texts, checked

TESTS = ("exchangeability", "verbatim", "ngram", "ts_guessing")


def task_texts(task, task_data=None) -> list[str]:
    """The items of a benchmark task, in data order, each as one text (see the module doc)."""
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


# the text of a probe item, by probe (the sentence(s) as the data set publishes them)
PROBE_TEXT = {"crows_pairs": ("sent_more", "sent_less")}
_TEXT_COLUMNS = ("text", "sentence", "context", "prompt", "question")


def probe_texts(name: str, model, data=None) -> list[str]:
    """The items of a probe, loaded and checked by :func:`workbench.probes.api.prepare_probe` (every
    item, in data order), each as one text: CrowS-Pairs as its two sentences on two lines,
    another probe as its first text column (text, sentence, context, prompt, question)."""
    items = prepare_probe(name, model, data=data).items
    cols = PROBE_TEXT.get(name) or next(((c,) for c in _TEXT_COLUMNS if c in items.columns), None)
    if cols is None:
        raise InvalidInputError(f"contamination cannot yet read probe {name!r} as texts (its items have columns "
                                f"{list(items.columns)}); pass its texts as a list or a DataFrame with column=")
    return ["\n".join(str(r[c]) for c in cols) for _, r in items.iterrows()]


def _is_probe(data) -> bool:
    return isinstance(data, str) and data in probe_names()


def _is_mc(data) -> bool:
    keys = {"question", "choices", "answer"}
    if isinstance(data, pd.DataFrame):
        return keys <= set(data.columns)
    return isinstance(data, list) and bool(data) and all(isinstance(d, dict) and keys <= set(d) for d in data)


def _texts(data, column, task_data, model=None) -> tuple[list[str], str]:
    if _is_probe(data):
        return check_texts(probe_texts(data, model, task_data), "contamination"), f"probe {data!r}"
    if column is None and _is_mc(data):
        return check_texts([render(it) for it in mc_items(data)], "contamination"), "multiple-choice items"
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
    """``summary()`` (test, statistic, p_value, n), ``findings()`` (the same, read in words),
    ``power()`` (the exchangeability test's), ``items`` ({test: per-item frame}), ``details``
    (every test's full row), ``provenance``."""

    items: dict = field(default_factory=dict)
    details: list = field(default_factory=list)
    _power: pd.DataFrame | None = field(default=None, repr=False)

    def summary(self) -> pd.DataFrame:
        out = self.frame[["test", "statistic", "p_value", "n"]].copy()
        out.attrs["statistics"] = {
            "exchangeability": "log-likelihood of the canonical order minus the mean over shuffled orders, summed over "
                               "shards (nats); one-sided randomization p over the shards (exact or "
                               "(count + 1) / (B + 1))",
            "verbatim": ("mean per-item LCS ratio, original minus perturbed prompt; p: one-sided two-sample permutation "
                         "test against the same gain on unseen= texts (NaN without them)"),
            "ngram": "share of items with at least one n-gram in the corpus; no p-value",
            "ts_guessing": "exact-match rate of the masked wrong option; one-sided exact McNemar p against "
                           "the same prompts with the question perturbed"}
        return out

    def power(self, alpha: float = 0.05) -> pd.DataFrame:
        """The exchangeability test's power against a planted canonical-order preference of
        ``delta`` nats per item (:func:`~workbench.training_data.exchangeability.exchangeability_power`,
        on this run's own shard scores). ``attrs["delta_80"]``: the preference found 80% of the time."""
        row = next((d for d in self.details if d.get("test") == "exchangeability"), None)
        if row is None or "shard_logprobs" not in row:
            raise InvalidInputError("power() is the exchangeability test's: this result has no exchangeability run "
                                    "with its shard scores (run wb.contamination(..., tests=['exchangeability']))")
        if self._power is None or self._power.alpha.iloc[0] != alpha:
            self._power = exchangeability_power(row["shard_logprobs"], row["shard_sizes"], alpha=alpha,
                                                seed=self.provenance.get("options", {}).get("seed", 0))
        out = self._power.copy()
        out.attrs = dict(self._power.attrs)
        return out

    def findings(self, alpha: float = 0.05) -> pd.DataFrame:
        """One row per test: ``test, statistic, p_value, n, delta_80, reading``. A large p is never
        read as "clean": ``delta_80`` is the canonical-order preference (nats per item) the
        exchangeability run would have found 80% of the time at ``alpha`` (:meth:`power`)."""
        rows = []
        for d in self.details:
            d80 = (self.power(alpha).attrs["delta_80"] if d["test"] == "exchangeability" and "shard_logprobs" in d
                   else np.nan)
            rows.append({"test": d["test"], "statistic": d["statistic"], "p_value": d["p_value"], "n": d["n"],
                         "delta_80": d80, "reading": self._reading(d, alpha)})
        out = pd.DataFrame(rows, columns=["test", "statistic", "p_value", "n", "delta_80", "reading"])
        out.attrs["delta_80"] = ("exchangeability: the canonical-order preference (nats per item) this run finds 80% "
                                 f"of the time at {alpha} (power()); NaN for the other tests")
        return out

    def _reading(self, d: dict, alpha: float) -> str:
        p, test = d["p_value"], d["test"]
        if test == "ngram":
            return (f"{d.get('n_flagged', 0)} of {d['n']} items share a {d.get('ngram_n', '')}-gram with the corpus "
                    f"sample ({d.get('n_too_short', 0)} too short to have one); no flag means only 'not in this "
                    "sample'")
        if not np.isfinite(p):
            return d.get("note") or "no p-value"
        found = p < alpha
        words = (f"evidence of contamination (p = {p:.2g} < {alpha})" if found else
                 f"no evidence of contamination at {alpha} (p = {p:.2g}), which does not show a clean model")
        if test == "exchangeability" and "shard_logprobs" in d:
            pw = self.power(alpha)
            d80 = pw.attrs["delta_80"]
            reach = (f"a canonical-order preference of {d80:.2g} nats per item would be found 80% of the time"
                     if np.isfinite(d80) else f"power stays below 80% up to {pw.delta.max():.2g} nats per item")
            words += (f"; this run ({d['n']} items, {d['n_shards']} shards, {d['n_permutations']} shuffled order(s) "
                      f"each): {reach}; observed {d['statistic'] / d['n']:+.3g} nats per item")
        if d.get("note"):
            words += f" ({d['note']})"
        return words

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


@checked(seed=Int(min=0), n_shards=Int(min=1), n_permutations=Int(min=1), n=Int(min=1), cache=BOOL,
         progress=Optional(BOOL))
def contamination(model, benchmark=None, tests=("exchangeability",), seed: int = 0, *, data=None,
                  column: str | None = None, task_data=None, n_shards: int = 1, n_permutations: int = 99, separator: str = "\n", corpus=None,
                  n: int = 13, unseen=None, cache: bool = True, progress=None) -> ContaminationResult:
    """Benchmark contamination tests on ``data`` (see the module doc for the tests and inputs).

    ``n_shards``, ``n_permutations``, ``separator``: the exchangeability test (items per shard
    are joined by ``separator`` and scored as one text, so a shard must fit the model's window;
    ``n_permutations`` shuffled orders of every shard; the smallest p is
    ``(n_permutations + 1) ** -n_shards``, so many shards need few orders);
    ``corpus``, ``n``: the n-gram test. ``unseen``: texts of the same kind the model cannot have
    seen, the verbatim test's control (without them its p-value is NaN). ``seed`` seeds the
    permutations and perturbations.
    ``benchmark``: the texts, items, or a task or probe name; ``data``: with a name, the data
    file or folder it reads (``task_data`` is the older name for it); without one, ``data`` is
    taken as the benchmark itself (``wb.contamination(model, data=texts)``).
    """
    check_model(model, ("causal",), "contamination")
    if isinstance(tests, str):
        tests = (tests,)
    tests = tuple(dict.fromkeys(tests))
    bad = [t for t in tests if t not in TESTS]
    if bad or not tests:
        raise InvalidInputError(f"unknown contamination test(s) {bad}; choose from {TESTS}")
    if "ngram" in tests:
        if corpus is None:
            raise InvalidInputError("the ngram test needs corpus= (corpus files, a folder, or an iterable of texts)")
        corpus = check_corpus(corpus)
    if unseen is not None:
        if "verbatim" not in tests:
            raise InvalidInputError("unseen= is the verbatim test's control and no other test reads it; add "
                                    "'verbatim' to tests, or leave unseen out")
        unseen = check_texts(unseen, "unseen")
        if not unseen:
            raise InvalidInputError("unseen= is empty: give texts of the benchmark's kind that the model cannot have "
                                    "seen, or leave it out (the verbatim p-value is then NaN)")
    if benchmark is None:
        benchmark, data = data, None
    elif data is not None:
        if not isinstance(benchmark, str):
            raise InvalidInputError("data= names the data file of a task or probe given by name; the benchmark is "
                                    f"already given as a {type(benchmark).__name__}: pass one or the other")
        if task_data is not None:
            raise InvalidInputError("give the data file once: data= (task_data= is its older name)")
        task_data = data
    if benchmark is None:
        raise InvalidInputError("contamination needs the benchmark: texts, items, or a task or probe name")
    data = benchmark
    texts, source = _texts(data, column, task_data, model)
    if not texts:
        raise InvalidInputError(f"contamination: the benchmark ({source}) has no items; give at least one text")
    rows, items = [], {}
    for t in tests:
        if t == "exchangeability":
            rows.append(exchangeability(model, texts, n_shards=n_shards, n_permutations=n_permutations, seed=seed,
                                        separator=separator, cache=cache, progress=progress))
        elif t == "ts_guessing":
            row, items["ts_guessing"] = ts_guessing(model, mc_items(data, task_data), seed=seed, cache=cache,
                                                    progress=progress)
            rows.append(row)
        elif t == "verbatim":
            row, items["verbatim"] = verbatim(model, texts, seed=seed, cache=cache, progress=progress,
                                              unseen=unseen)
            rows.append(row)
        else:
            df = ngram_overlap(texts, corpus, n=n)
            items["ngram"] = df
            rows.append({"test": "ngram", "statistic": float(df.contaminated.mean()), "p_value": np.nan,
                         "n": len(df), "n_flagged": int(df.contaminated.sum()),
                         "n_too_short": int((df.n_ngrams == 0).sum()), "ngram_n": n,
                         "corpus_documents": df.attrs["corpus_documents"], "corpus_words": df.attrs["corpus_words"]})
    frame = pd.DataFrame(rows)
    prov = {"model": {"name": model.name, "fingerprint_id": model.fingerprint_id, "state_id": model.state_id},
            "data": {"source": source, "n_items": len(texts)},
            "options": {"tests": list(tests), "seed": seed, "n_shards": n_shards, "n_permutations": n_permutations,
                        "separator": separator, "n": n, **({"n_unseen": len(unseen)} if unseen is not None else {})}}
    return ContaminationResult(frame=frame, provenance=prov, items=items, details=rows)

"""Task kinds, one table: for each kind, the templates its spec renders, how a rendered item is
checked, which requests score it (through :mod:`workbench.scoring.api`, where batching, caching
and exactness live), the metrics it reports and the metric a leaderboard ranks by.

Built in:

- ``multiple_choice``: log-likelihood of each choice after a context; ``acc`` and the
  length-normalised ``acc_norm`` (log-likelihood / characters of the choice, as lm-eval does).
- ``minimal_pairs``: BLiMP style; the pair is right when the good sentence has the higher total
  log-probability.
- ``perplexity``: rolling log-likelihood of whole documents; token/word/byte perplexity and bits
  per byte.
- ``generation``: greedy completion scored by exact match or by a regex that extracts the answer.

Adding a kind is one :class:`TaskKind` given to :func:`register_task_kind` (the recipe is in
``docs/architecture.md``); its templates are read from the task spec's keys of the same names.

>>> sorted(KINDS)
['generation', 'minimal_pairs', 'multiple_choice', 'perplexity']
>>> KINDS["minimal_pairs"].primary
('acc', True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from workbench.errors import DataError, InvalidInputError, WrongModelKindError
from workbench.scoring.api import generate, loglikelihood, perplexity
from workbench.stats.metrics import Metric, mean_metric
from workbench.tasks.data import render

_LN2 = math.log(2)


@dataclass(frozen=True)
class TaskKind:
    """One kind of benchmark task.

    ``templates``: the spec keys this kind renders into each item (each a ``str.format``
    template, or a list of them), ``required`` those a spec must give; ``render(task, row,
    where) -> dict`` the item's own fields (the default renders each template key as text);
    ``texts``: rendered fields that must not be empty; ``check_item(item) -> reason or None``
    for anything else that makes an item unusable; ``score(model, task, items, seed=0, **kw) ->
    records`` one JSON-able record per item, from :mod:`workbench.scoring.api` calls only;
    ``metrics() -> [Metric]``; ``primary``: (metric, higher is better) for leaderboards;
    ``formats``: ``("raw", "chat")`` where an item is a question a chat model can be asked;
    ``options``: spec keys besides the templates that change scores (part of the task hash; the
    built-in kinds' options are fields of :class:`~workbench.tasks.spec.Task`).
    """

    name: str
    templates: tuple
    score: Callable
    metrics: Callable
    primary: tuple
    required: tuple | None = None
    render: Callable | None = None
    texts: tuple = ()
    check_item: Callable | None = None
    formats: tuple = ("raw",)
    options: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidInputError(f"a task kind's name is an identifier such as 'cloze', got {self.name!r}")
        if self.required is None:
            object.__setattr__(self, "required", tuple(self.templates))

    def render_item(self, task, row: dict, where: str) -> dict:
        """The item's own fields, rendered from ``row`` through ``task``'s templates."""
        if self.render is not None:
            return self.render(task, row, where)
        return {k: str(render(task.template(k), row, where)) for k in self.templates if task.template(k) is not None}

    def unusable(self, item: dict) -> str | None:
        """Why a rendered item cannot be scored fairly (an empty text, ...), or None."""
        empty = [k for k in self.texts if not str(item[k]).strip()]
        if empty:
            return f"empty {' and '.join(empty)} text"
        return self.check_item(item) if self.check_item else None


def _base(item: dict) -> dict:
    """What every record keeps: identity plus the task's ``keep`` fields (not the rendered texts)."""
    skip = {"good", "bad", "text", "prompt", "context", "choices", "target"}
    return {k: v for k, v in item.items() if k not in skip}


# ---- minimal pairs --------------------------------------------------------------------------
def score_minimal_pairs(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Total log-probability of each sentence (from the start of the text, as BLiMP and lm-eval
    do); right when the good sentence scores higher."""
    texts = [it["good"] for it in items] + [it["bad"] for it in items]
    df = perplexity(model, texts, **kw)
    n = len(items)
    lp, nt = df["logprob"].to_numpy(float), df["n_tokens"].to_numpy(int)
    return [{**_base(it), "logprob_good": float(lp[i]), "logprob_bad": float(lp[n + i]),
             "n_tokens_good": int(nt[i]), "n_tokens_bad": int(nt[n + i]),
             "correct": int(lp[i] > lp[n + i])} for i, it in enumerate(items)]


def _pair_differs(item: dict) -> str | None:
    return "good and bad sentences are identical: nothing to compare" if item["good"] == item["bad"] else None


# ---- multiple choice ------------------------------------------------------------------------
def score_multiple_choice(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Log-likelihood of ``target_delimiter + choice`` after the context, for every choice.
    ``acc``: argmax log-likelihood; ``acc_norm``: argmax of log-likelihood per character of the
    choice (lm-eval's length normalisation)."""
    requests = [(it["context"], task.target_delimiter + c) for it in items for c in it["choices"]]
    if task.format == "chat":  # the context as the user turn, the choice as the reply
        kw = {**kw, "format": "chat", "system_prompt": task.system_prompt}
    lp = loglikelihood(model, requests, **kw)["logprob"].to_numpy(float)
    out, pos = [], 0
    for it in items:
        k = len(it["choices"])
        scores = lp[pos:pos + k]
        pos += k
        chars = np.array([len(c) for c in it["choices"]], float)
        pred, pred_norm = int(np.argmax(scores)), int(np.argmax(scores / chars))
        out.append({**_base(it), "target": it["target"], "logprobs": [float(x) for x in scores],
                    "pred": pred, "pred_norm": pred_norm, "correct": int(pred == it["target"]),
                    "correct_norm": int(pred_norm == it["target"])})
    return out


def render_choices(task, row: dict, where: str) -> dict:
    """A multiple-choice item: its context, its list of choices (a list of templates, or one
    field holding a list or its JSON text) and the index of the right one."""
    import json
    choices = task.choices
    choices = render(choices, row, where) if isinstance(choices, str) else [render(c, row, where) for c in choices]
    if isinstance(choices, str):  # a field holding JSON text, e.g. from a CSV
        try:
            choices = json.loads(choices)
        except json.JSONDecodeError:
            raise DataError(f"{where}: choices must be a list, got {choices!r}") from None
    if not isinstance(choices, (list, tuple)):
        raise DataError(f"{where}: choices must be a list, got {type(choices).__name__} {choices!r}")
    choices = [c if c is None else str(c) for c in choices]
    target = render(task.target, row, where)
    if task.target_type == "text":
        if str(target) not in choices:
            raise DataError(f"{where}: target {target!r} is not one of the choices {choices}")
        target = choices.index(str(target))
    else:
        try:
            target = int(target)
        except (TypeError, ValueError):
            raise DataError(f"{where}: target {target!r} is not a choice index; "
                            "set target_type: text if the target is the answer's text") from None
        if not 0 <= target < len(choices):
            raise DataError(f"{where}: target index {target} is outside the {len(choices)} choices")
    return {"context": str(render(task.context, row, where)), "choices": choices, "target": target}


def _choices_given(item: dict) -> str | None:
    return "an empty or null choice" if any(c is None or not str(c).strip() for c in item["choices"]) else None


# ---- perplexity -----------------------------------------------------------------------------
def score_perplexity(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Rolling log-likelihood of each document, with its token, word and UTF-8 byte counts."""
    df = perplexity(model, [it["text"] for it in items], **kw)
    return [{**_base(it), "logprob": float(r.logprob), "n_tokens": int(r.n_tokens), "n_words": int(r.n_words),
             "n_bytes": int(r.n_bytes)} for it, r in zip(items, df.itertuples())]


def _pooled(name, denom, transform, description):
    """A corpus-level metric: transform(-sum(logprob) / sum(denom)) over the documents."""
    def fn(cols):
        return transform(-np.sum(cols["logprob"], axis=-1) / np.sum(cols[denom], axis=-1))
    return Metric(name, fn, ("logprob", denom), kind="derived", description=description)


def perplexity_metrics() -> list[Metric]:
    """Perplexities pooled over documents, as lm-eval's word_perplexity / byte_perplexity / bits_per_byte."""
    return [_pooled("word_perplexity", "n_words", np.exp, "exp(-sum logprob / sum words)"),
            _pooled("byte_perplexity", "n_bytes", np.exp, "exp(-sum logprob / sum bytes)"),
            _pooled("bits_per_byte", "n_bytes", lambda x: x / _LN2, "-sum logprob / sum bytes / ln 2"),
            _pooled("token_perplexity", "n_tokens", np.exp, "exp(-sum logprob / sum tokens)")]


# ---- generation -----------------------------------------------------------------------------
def score_generation(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Greedy completion, cut at the stop strings; exact match (or regex-extracted match) with
    the target."""
    if task.format == "chat":
        kw = {**kw, "chat": True, "system_prompt": task.system_prompt}
    df = generate(model, [it["prompt"] for it in items], max_new_tokens=task.max_new_tokens, seed=seed, **kw)
    out = []
    for it, completion in zip(items, df["completion"]):
        answer = task.extract_answer(str(completion))
        target = it["target"].strip().lower() if task.ignore_case else it["target"].strip()
        out.append({**_base(it), "target": it["target"], "completion": str(completion), "answer": answer,
                    "correct": int(answer == target)})
    return out


# ---- the table ------------------------------------------------------------------------------
KINDS: dict[str, TaskKind] = {}


def register_task_kind(kind: TaskKind, replace: bool = False) -> TaskKind:
    """Make ``kind`` a task kind: task specs (YAML, dicts, ``wb.load_task``) with ``kind:
    <name>`` render, score and report through it, in ``wb.run`` and ``wb.run_probe`` alike.

    >>> import workbench as wb
    >>> register_task_kind(KINDS["perplexity"])
    Traceback (most recent call last):
    ...
    workbench.errors.InvalidInputError: a task kind named 'perplexity' already exists; pass replace=True to replace it, or give yours another name
    """
    if not isinstance(kind, TaskKind):
        raise InvalidInputError(f"register_task_kind takes a workbench.tasks.TaskKind, got {type(kind).__name__}")
    if kind.name in KINDS and not replace:
        raise InvalidInputError(f"a task kind named {kind.name!r} already exists; pass replace=True to replace it, "
                                "or give yours another name")
    KINDS[kind.name] = kind
    return kind


def unregister_task_kind(name: str) -> None:
    """Remove a kind added with :func:`register_task_kind` (the built-in four stay)."""
    if name in _BUILTIN or KINDS.pop(name, None) is None:
        raise InvalidInputError(f"no registered task kind named {name!r}; registered: "
                                f"{sorted(set(KINDS) - set(_BUILTIN))}")


_BUILTIN = ("multiple_choice", "minimal_pairs", "perplexity", "generation")
for _kind in (
    TaskKind("multiple_choice", templates=("context", "choices", "target"), required=("choices", "target"),
             render=render_choices, check_item=_choices_given, score=score_multiple_choice,
             metrics=lambda: [mean_metric("acc", "correct", kind="binary"),
                              mean_metric("acc_norm", "correct_norm", kind="binary",
                                          description="argmax of log-likelihood per character of the choice")],
             primary=("acc", True), formats=("raw", "chat")),
    TaskKind("minimal_pairs", templates=("good", "bad"), texts=("good", "bad"), check_item=_pair_differs,
             score=score_minimal_pairs,
             metrics=lambda: [mean_metric("acc", "correct", kind="binary", description="share of pairs where the "
                                          "good sentence has the higher log-probability")],
             primary=("acc", True)),
    TaskKind("perplexity", templates=("text",), texts=("text",), score=score_perplexity, metrics=perplexity_metrics,
             primary=("bits_per_byte", False)),
    TaskKind("generation", templates=("prompt", "target"), texts=("prompt",), score=score_generation,
             metrics=lambda: [mean_metric("exact_match", "correct", kind="binary")], primary=("exact_match", True),
             formats=("raw", "chat")),
):
    register_task_kind(_kind)


def task_kind(name: str) -> TaskKind:
    """The kind named ``name`` (a clear error naming the known kinds otherwise)."""
    if name not in KINDS:
        raise InvalidInputError(f"kind must be one of {tuple(KINDS)}, got {name!r} (a new kind is registered with "
                                "workbench.tasks.register_task_kind)")
    return KINDS[name]


def task_metrics(kind: str) -> list[Metric]:
    """The metrics a task kind reports (proportions 0..1)."""
    return task_kind(kind).metrics()


def score_items(model, task, items, seed: int = 0, **kw) -> list[dict]:
    """Score a chunk of ``task``'s items with ``model``; one JSON-able record per item."""
    if model.kind != "causal":
        raise WrongModelKindError(f"benchmark tasks score causal language models; {model.name!r} is "
                                  f"{model.kind}. Use a causal model (e.g. smollm2-135m-instruct).")
    return task_kind(task.kind).score(model, task, items, seed=seed, **kw)

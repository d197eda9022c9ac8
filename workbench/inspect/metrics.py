"""Metrics that ablation, patching and steering measure their effect on, and the batched runner
that evaluates one metric under many interventions at once.

A metric turns a prompt into a small batch of rows (``unit``) and the model's logits on those
rows into one number. Built in: :class:`Logprob` (log-probability of a continuation) and
:class:`LogprobDiff` (log P(good) - log P(bad), e.g. " he" vs " she"). Write your own by
subclassing :class:`Metric` and overriding ``continuations`` and ``combine``.

Tokenisation is the scoring engine's (:func:`workbench.scoring.tokenize.encode_pair`, BOS by the
tokenizer's own convention, the whole string split at the context boundary), so a metric's
value without intervention equals what ``wb.loglikelihood`` reports for the same requests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.engine.padding import pad_id, pad_rows, tokenizer_state_kept
from workbench.inspect.hooks import hooks_removed_after, intervention
from workbench.scoring.tokenize import encode_pair, resolve_bos
from workbench.validate import check_context


@dataclass
class Unit:
    """The rows a metric needs for one prompt: right-padded ids/mask, the prompt length, and
    per row the (start, end) slice of its continuation."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    prompt_len: int
    spans: list


class InterventionMetric:
    """What an intervention (patching, ablation, steering) is measured by; not to be confused
    with :class:`workbench.stats.Metric`, a probe's reported number. Base class: ``continuations`` (strings appended to the prompt, one row each) and
    ``combine(logprobs [groups, rows]) -> [groups]``."""

    continuations: tuple = ()

    def combine(self, lp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unit(self, model, prompt: str) -> Unit:
        if model.kind != "causal":
            raise WrongModelKindError(f"{type(self).__name__} scores continuations with a causal LM; "
                                      f"{model.name} is {model.kind}")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidInputError("prompt must be a non-empty string")
        tok = model.tokenizer
        rows, spans = [], []
        with tokenizer_state_kept(tok):
            add_bos = resolve_bos(tok, "auto")
            for c in self.continuations:
                p, ids = encode_pair(tok, prompt, c, add_bos)
                if not ids:
                    raise InvalidInputError(f"continuation {c!r} has no tokens")
                rows.append(p + ids)
                spans.append((len(p), len(p) + len(ids)))
        n = max(map(len, rows))
        check_context(model, n, "the prompt with its longest continuation",
                      "Shorten the prompt: past the window the model has no positions for it.")
        ids, mask = pad_rows(rows, pad_id(tok), n)
        return Unit(ids, mask, len(p), spans)

    def value(self, logits: torch.Tensor, unit: Unit) -> torch.Tensor:
        """Logits of ``groups * rows`` sequences -> the metric per group ``[groups]``."""
        R = unit.input_ids.shape[0]
        lp = logits.float().log_softmax(-1).view(-1, R, *logits.shape[1:])
        ids = unit.input_ids.to(lp.device)
        per_row = []
        for r, (a, b) in enumerate(unit.spans):
            tgt = ids[r, a:b]
            per_row.append(lp[:, r, a - 1:b - 1].gather(-1, tgt[None, :, None].expand(lp.shape[0], -1, 1)).sum((1, 2)))
        return self.combine(torch.stack(per_row, dim=1)).cpu()

    def describe(self) -> str:
        return f"{type(self).__name__}{self.continuations}"


class Logprob(InterventionMetric):
    """Log-probability of ``continuation`` after the prompt (summed over its tokens)."""

    def __init__(self, continuation: str):
        self.continuations = (continuation,)

    def combine(self, lp):
        return lp[:, 0]


class LogprobDiff(InterventionMetric):
    """log P(good | prompt) - log P(bad | prompt): positive when the model prefers ``good``."""

    def __init__(self, good: str, bad: str):
        if good == bad:
            raise InvalidInputError("good and bad continuations are identical; the difference is always 0")
        self.continuations = (good, bad)

    def combine(self, lp):
        return lp[:, 0] - lp[:, 1]


def as_metric(metric) -> Metric:
    """A Metric, a continuation string, or a (good, bad) pair."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        return Logprob(metric)
    if isinstance(metric, (tuple, list)) and len(metric) == 2 and all(isinstance(m, str) for m in metric):
        return LogprobDiff(*metric)
    raise InvalidInputError("metric must be a workbench.inspect.Metric, a continuation string, or a "
                            f"(good, bad) pair of continuations; got {metric!r}")


def run_groups(model, metric: Metric, unit: Unit, n_groups: int, install: Callable[[range], list],
               description: dict, max_rows: int = 64, progress: bool = False) -> torch.Tensor:
    """Evaluate ``metric`` under ``n_groups`` interventions, several per forward pass: the unit's
    rows are repeated once per group and ``install(groups)`` registers hooks that edit the
    rows of each group of that chunk (group ``g`` is rows ``g*R:(g+1)*R`` of the chunk)."""
    R = unit.input_ids.shape[0]
    per = max(1, max_rows // R)
    out = []
    from tqdm.auto import tqdm
    for start in tqdm(range(0, n_groups, per), desc=description.get("kind", "run"), unit="batch",
                      disable=not progress or n_groups <= per):
        groups = range(start, min(n_groups, start + per))
        handles = install(groups)
        with hooks_removed_after(handles), intervention(model, description, []), torch.inference_mode():
            logits = model.hf(input_ids=unit.input_ids.repeat(len(groups), 1).to(model.device),
                              attention_mask=unit.attention_mask.repeat(len(groups), 1).to(model.device)).logits
        out.append(metric.value(logits, unit))
    return torch.cat(out)


def baseline(model, metric: Metric, unit: Unit) -> float:
    """The metric with no intervention."""
    with torch.inference_mode():
        logits = model.hf(input_ids=unit.input_ids.to(model.device), attention_mask=unit.attention_mask.to(model.device)).logits
    return float(metric.value(logits, unit)[0])


Metric = InterventionMetric  # the former name, kept working

"""The scoring "multiverse": one probe under several defensible scoring choices, side by side,
to show how fragile a number is (Steegen et al. 2016's multiverse analysis, applied to probes).

Default choices by model kind (each a real option of the probe; ``choices=`` overrides):

- causal LMs: ``aggregate`` sum vs per-token mean x ``start`` from BOS vs from the first word;
- masked LMs: ``aggregate`` x ``positions`` (CrowS-Pairs: shared tokens vs all tokens;
  StereoSet: filler tokens vs all tokens);
- several models (e.g. a masked and a causal LM): every model's universe in one table, so PLL
  and causal scoring of the same items sit side by side;
- ``formats=("raw", "chat")``: the prompt format as one more dimension (raw text vs the model's
  chat template, :mod:`workbench.scoring.chat`), so an audit shows both readings of a chat model
  side by side (``wb.compare`` pairs them item by item). The chat format scores whole sentences,
  so its universes take ``start="bos"`` only; a model that cannot be chat-formatted (a masked
  LM, a base model without a template) runs its raw universes, and the skipped ones are listed in
  ``provenance["skipped_universes"]`` with the reason.

>>> from workbench.testing import tiny_model
>>> mv = multiverse("occupations_pronouns", tiny_model("gpt2"), limit=10, n_boot=200)
>>> sorted(mv.to_frame().scoring.unique())[:2]
['aggregate=mean, start=bos', 'aggregate=mean, start=first_word']
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError, WorkbenchError
from workbench.models.model import Model
from workbench.probes.api import get_spec, run_probe
from workbench.results import Result
from workbench.scoring.chat import check_format
from workbench.units.run import check_unit_format

def default_choices(name: str, model) -> dict:
    spec = get_spec(name)
    opts = spec.defaults
    if "aggregate" not in opts:
        raise InvalidInputError(f"probe {name!r} has no scoring choices to vary (it does not score sentences)")
    out = {"aggregate": ["sum", "mean"]}
    if model.kind == "causal" and "start" in opts:
        out["start"] = ["bos", "first_word"]
    if model.kind == "masked":  # the probe's own extra choices (e.g. which tokens a PLL scores)
        out.update({k: list(v) for k, v in spec.multiverse.items()})
    return out


@dataclass
class MultiverseResult(Result):
    """``to_frame()``: model, scoring, <options>, metric, category, value, ci_low, ci_high, n."""

    results: list = None

    def summary(self) -> pd.DataFrame:
        """Per metric: the range of values across the universes (how much the choice matters)."""
        f = self.frame[self.frame.category == "all"]
        return f.groupby("metric").agg(min_value=("value", "min"), max_value=("value", "max"),
                                       n_universes=("value", "size")).reset_index()

    def plot(self, metric: str | None = None, ax=None):
        import matplotlib.pyplot as plt
        f = self.frame[self.frame.category == "all"]
        metric = metric or f.metric.iloc[0]
        sub = f[f.metric == metric].reset_index(drop=True)
        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 0.4 * len(sub) + 1.2))
        y = np.arange(len(sub))[::-1]
        err = np.vstack([sub.value - sub.ci_low, sub.ci_high - sub.value]).clip(min=0)
        ax.errorbar(sub.value, y, xerr=err, fmt="o", capsize=3)
        ax.set_yticks(y, [f"{m}: {s}" for m, s in zip(sub.model, sub.scoring)], fontsize=8)
        ax.set_xlabel(metric)
        ax.set_title(f"{self.provenance['probe']}: one probe, several scoring choices")
        return ax


def _universes(grid: dict) -> list[dict]:
    keys = sorted(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        chosen = dict(zip(keys, values))
        if chosen.get("format") == "chat" and chosen.get("start", "bos") != "bos":
            continue  # the chat format scores whole sentences (probes.scoring): no first_word universe
        out.append(chosen)
    return out


def _chat_refusal(name: str, model) -> str | None:
    """Why ``model`` cannot run probe ``name`` in the chat format (None if it can)."""
    try:
        check_unit_format(get_spec(name), model, "chat", None)
    except WorkbenchError as e:
        return str(e)
    return None


def multiverse(name: str, models, data=None, limit: int | None = None, seed: int = 0, choices: dict | None = None,
               n_boot: int = 1000, by_category: bool = False, formats=None, **options) -> MultiverseResult:
    """Run probe ``name`` on each model under every combination of scoring ``choices``
    (and of ``formats``, e.g. ``("raw", "chat")``, when given; see the module docstring).

    Returns a :class:`MultiverseResult` whose frame has one row per model x scoring x metric
    (x category when ``by_category``), each with its bootstrap CI.
    """
    import warnings

    models = [models] if isinstance(models, Model) else list(models)
    if formats is not None:
        formats = [formats] if isinstance(formats, str) else list(formats)
        for f in formats:
            check_format(f)
        if not formats:
            raise InvalidInputError("formats must name at least one of 'raw', 'chat' (or be None)")
    rows, results, skipped = [], [], []
    for model in models:
        grid = dict(choices if choices is not None else default_choices(name, model))
        if formats is not None:
            why = _chat_refusal(name, model) if "chat" in formats else None
            grid["format"] = [f for f in formats if f == "raw" or why is None]
            if why is not None:
                skipped.append({"model": model.name, "format": "chat", "reason": why})
                warnings.warn(f"multiverse: no chat universes for {model.name}: {why}", UserWarning, stacklevel=2)
        for chosen in _universes(grid):
            res = run_probe(name, model, data=data, limit=limit, seed=seed, n_boot=n_boot, **options, **chosen)
            results.append(res)
            s = res.summary()
            s = s[s.metric != "n_skipped"]
            if not by_category:
                s = s[s.category == "all"]
            scoring = ", ".join(f"{k}={v}" for k, v in chosen.items())
            if model.kind == "masked" or res.items.get("method", pd.Series(["ll"])).iloc[0] == "pll":
                scoring = "PLL, " + scoring
            for _, r in s.iterrows():
                rows.append({"model": model.name, "kind": model.kind, "scoring": scoring, **chosen, **r.to_dict()})
    frame = pd.DataFrame(rows)
    return MultiverseResult(frame, {"probe": name, "models": [m.fingerprint_id for m in models], "limit": limit,
                                    "seed": seed, "choices": choices, "formats": formats,
                                    "skipped_universes": skipped}, results=results)

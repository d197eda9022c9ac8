"""The scoring "multiverse": one probe under several defensible scoring choices, side by side,
to show how fragile a number is (Steegen et al. 2016's multiverse analysis, applied to probes).

Default choices by model kind (each a real option of the probe; ``choices=`` overrides):

- causal LMs: ``aggregate`` sum vs per-token mean x ``start`` from BOS vs from the first word;
- masked LMs: ``aggregate`` x ``positions`` (CrowS-Pairs: shared tokens vs all tokens;
  StereoSet: filler tokens vs all tokens);
- several models (e.g. a masked and a causal LM): every model's universe in one table, so PLL
  and causal scoring of the same items sit side by side.

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

from workbench.errors import InvalidInputError
from workbench.probes.api import get_spec, run_probe
from workbench.results import Result

_POSITIONS = {"crows_pairs": ["shared", "all"], "stereoset": ["filler", "all"]}


def default_choices(name: str, model) -> dict:
    spec = get_spec(name)
    opts = spec.defaults
    if "aggregate" not in opts:
        raise InvalidInputError(f"probe {name!r} has no scoring choices to vary (it does not score sentences)")
    out = {"aggregate": ["sum", "mean"]}
    if model.kind == "causal" and "start" in opts:
        out["start"] = ["bos", "first_word"]
    if model.kind == "masked" and name in _POSITIONS:
        out["positions"] = _POSITIONS[name]
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


def multiverse(name: str, models, data=None, limit: int | None = None, seed: int = 0, choices: dict | None = None,
               n_boot: int = 1000, by_category: bool = False, **options) -> MultiverseResult:
    """Run probe ``name`` on each model under every combination of scoring ``choices``.

    Returns a :class:`MultiverseResult` whose frame has one row per model x scoring x metric
    (x category when ``by_category``), each with its bootstrap CI.
    """
    from workbench.models.model import Model
    models = [models] if isinstance(models, Model) else list(models)
    rows, results = [], []
    for model in models:
        grid = choices if choices is not None else default_choices(name, model)
        keys = sorted(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            chosen = dict(zip(keys, values))
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
                                    "seed": seed, "choices": choices}, results=results)

"""Steps 2 and 3 of the mechanistic audit, on the inspection tools of :mod:`workbench.inspect`:
patching clean -> corrupted by layer x position and by head, head ablation on the pair's
log-likelihood gap (the runs and metrics come from a pair adapter, see
:mod:`workbench.attribution.pairs`). Keeping chosen heads ablated while a probe runs is
:func:`workbench.inspect.ablated_heads`. Nothing here re-implements hooks: it calls
``inspect.patch`` and ``inspect.ablate``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.attribution.pairs import SkipItem
from workbench.errors import ContextWindowError, InvalidInputError
from workbench.inspect import ablate, patch


def _tqdm(iterable, progress, desc):
    if not progress:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, desc=desc, leave=False)


def patch_pairs(model, items: pd.DataFrame, pairs, progress: bool = False, layers=None):
    """Patch each item's clean run into its corrupted run (both from the pair adapter ``pairs``,
    e.g. :class:`~workbench.attribution.pairs.SentencePairs`), by layer x position and by head.

    Returns ``(by_position, by_head, skipped)``: per item and layer, the mean normalised effect at
    the positions whose tokens differ between the runs (``differing``), at the last position when
    it is shared (``final``: where the metric is read out) and at the other shared ones
    (``shared``); per item, layer and head, the normalised effect; and the items that could not be
    patched, with the reason.
    """
    pos_rows, head_rows, skipped = [], [], []
    for idx, r in _tqdm(list(items.iterrows()), progress, "patching"):
        try:
            clean, corrupted, metric = pairs.patch_run(r)
            res = patch(model, clean, corrupted, metric, by="layer_position", layers=layers, progress=False).to_frame()
            heads = patch(model, clean, corrupted, metric, by="head", layers=layers, progress=False).to_frame()
        except SkipItem as e:
            skipped.append({"item": idx, "reason": str(e)})
            continue
        except InvalidInputError as e:          # e.g. the two prompts tokenise to different lengths
            skipped.append({"item": idx, "reason": str(e).split(";")[0]})
            continue
        last = res["position"] == res["position"].max()
        res["role"] = np.where(res["token"] != res["corrupted_token"], "differing", np.where(last, "final", "shared"))
        agg = res.groupby(["layer", "role"], as_index=False)["normalized"].mean()
        pos_rows.append(agg.assign(item=idx))
        head_rows.append(heads[["layer", "head", "normalized"]].assign(item=idx))
    by_pos = pd.concat(pos_rows, ignore_index=True) if pos_rows else pd.DataFrame(columns=["layer", "role", "normalized", "item"])
    by_head = pd.concat(head_rows, ignore_index=True) if head_rows else pd.DataFrame(columns=["layer", "head", "normalized", "item"])
    return by_pos, by_head, pd.DataFrame(skipped, columns=["item", "reason"])


def head_effects(model, items: pd.DataFrame, pairs, progress: bool = False, layers=None):
    """Zero-ablate each head in turn and measure the change in the pair adapter's ablation metric
    (sentence pairs: log p(rest of a | prefix) - log p(rest of b | prefix), the pair's
    log-likelihood gap after the shared prefix; BBQ: log p(biased answer) - log p(other group's
    answer) after the prompt). Returns (per item/head effects, skipped items)."""
    rows, skipped = [], []
    for idx, r in _tqdm(list(items.iterrows()), progress, "head ablation"):
        try:
            prompt, metric = pairs.ablation_run(r)
        except SkipItem as e:
            skipped.append({"item": idx, "reason": str(e)})
            continue
        try:
            res = ablate(model, prompt, metric, component="head", layers=layers, progress=False).to_frame()
        except ContextWindowError as e:       # past the model's window: no positions to run it at
            skipped.append({"item": idx, "reason": str(e).split(" (the most")[0]})
            continue
        rows.append(res[["layer", "unit", "metric_clean", "effect"]].rename(columns={"unit": "head"}).assign(item=idx))
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["layer", "head", "metric_clean", "effect", "item"])
    return frame, pd.DataFrame(skipped, columns=["item", "reason"])


def top_heads(effects: pd.DataFrame, k: int) -> list:
    """The ``k`` heads whose ablation lowers the stereotyped side's advantage most on average
    (most negative mean effect); only heads with a negative mean effect qualify."""
    if effects.empty or k < 1:
        return []
    mean = effects.groupby(["layer", "head"])["effect"].mean().sort_values()
    return [(int(l), int(h)) for (l, h), v in mean.head(k).items() if v < 0]

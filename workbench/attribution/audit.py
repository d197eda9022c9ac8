"""``wb.mechanistic_audit``: from a bias probe's score to the tokens, layers and heads behind it,
and what removing them does to the score and to general language modelling.

The chain, for a probe of minimal pairs on a causal LM. Each item is two sentences, ``a`` on the
stereotyped side and its counterpart ``b``: CrowS-Pairs and WinoBias items are such pairs; a BBQ
item becomes one (its prompt + the biased answer vs the same prompt + the other group's answer,
with the two groups swapped in the context as the corrupted run for patching; see
:mod:`workbench.attribution.bbq_pairs`). A *pair adapter* per probe (``PAIR_PROBES``) gives the
sentences and, per item, the runs and metrics of steps 1-2, so every probe shares one chain.

0. run the probe (``wb.run_probe``); split its items, seeded, into a *fit* set (steps 1-3 look at
   them) and a *held-out* set (step 4 is measured on them only, so the intervention is not
   judged on the items it was built from);
1. split every pair's log-likelihood difference exactly over the tokens that differ and those
   shared (:mod:`workbench.attribution.pairs`);
2. patch the stereotyped (clean) run into the other (corrupted) by layer x position and by head
   (``wb.inspect.patch``), and zero-ablate each head to see how the pair's gap changes
   (``wb.inspect.ablate``); items a step cannot use are listed in ``skipped`` with the reason;
3. build interventions: a steering direction from the difference of means of the two sides
   (``wb.inspect.steering_vector``; added towards the non-stereotyped side) and the ablation of
   the heads from step 2 whose removal lowers the gap most;
4. re-run the probe under each intervention; report the bias metrics with bootstrap CIs before
   and after and the paired difference (``wb.compare``), and the perplexity on neutral text.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.attribution.audit_report import MechanisticAudit
from workbench.attribution.bbq_pairs import BBQAnswers
from workbench.attribution.mechanisms import head_effects, patch_pairs, top_heads
from workbench.attribution.pairs import SentencePairs, decompose
from workbench.errors import ContextWindowError, InvalidInputError, WrongModelKindError
from workbench.inspect import capture, steer, steering_vector
from workbench.inspect.ablation import ablated_heads
from workbench.probes.api import get_spec, probe_names, run_probe
from workbench.provenance import record
from workbench.scoring.api import perplexity
from workbench.stats import bootstrap_ci, compare, paired_bootstrap, summarise
from workbench.validate import BOOL, Int, Optional, Real, checked, context_window

NEUTRAL_TEXT = Path(__file__).resolve().parents[1] / "data" / "neutral_text.txt"
CONDITIONS = ("steering", "head_ablation")
# probe -> its pair adapter: which sentences are the two sides, and the runs/metrics of step 2
def pair_adapter(spec):
    """The pair adapter a probe's spec declares (``ProbeSpec.pairs``), or None."""
    how = spec.pairs
    if not how:
        return None
    if how["kind"] == "sentences":
        return SentencePairs(how["a"], how["b"], how["category"], tuple(how["sides"]))
    if how["kind"] == "bbq_answers":
        return BBQAnswers()
    raise InvalidInputError(f"probe {spec.name!r} declares pairs of unknown kind {how['kind']!r}; "
                            "use 'sentences' or 'bbq_answers'")


class _PairProbes(dict):
    """Probe name -> pair adapter, read from the probes' specs (registered ones included)."""

    def _fill(self):
        for name in probe_names():
            adapter = pair_adapter(get_spec(name))
            if adapter is not None:
                dict.__setitem__(self, name, adapter)

    def __getitem__(self, name):
        self._fill()
        return dict.__getitem__(self, name)

    def __contains__(self, name):
        self._fill()
        return dict.__contains__(self, name)

    def __iter__(self):
        self._fill()
        return dict.__iter__(self)

    def __len__(self):
        self._fill()
        return dict.__len__(self)


PAIR_PROBES = _PairProbes()


def _neutral(texts):
    if texts is None:
        lines = NEUTRAL_TEXT.read_text(encoding="utf-8").splitlines()
        return [x for x in lines if x.strip() and not x.startswith("#")]
    if isinstance(texts, str) or not texts:
        raise InvalidInputError("neutral must be a non-empty list of texts (or None for the packaged ones)")
    return list(texts)


def _within_window(model, items: pd.DataFrame, cols) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The items whose texts in ``cols`` all fit in the model's window (a steering vector is read
    from whole texts, which cannot be cut), and the others as skips with the reason."""
    window = context_window(model)
    if window is None or items.empty:
        return items, pd.DataFrame(columns=["item", "reason"])
    tok = model.tokenizer
    longest = pd.Series(0, index=items.index)
    for col in cols:
        longest = np.maximum(longest, [len(ids) for ids in tok(list(items[col]))["input_ids"]])
    over = longest > window
    if over.all():
        raise ContextWindowError(f"every fit item has a text longer than {model.name}'s context window of {window} "
                                 "tokens, so no steering vector can be read; use a model with a longer window or "
                                 "other items (seed=, n_fit=)")
    skipped = pd.DataFrame({"item": items.index[over],
                            "reason": [f"{n} tokens, longer than the context window of {window} tokens"
                                       for n in longest[over]]}, columns=["item", "reason"])
    return items[~over], skipped


def _typical_norm(model, texts, site, layer) -> float:
    """Median norm of the real tokens' activations at ``site``/``layer``. Not the mean: models
    with massive activations (SmolLM2's first token has norms ~100x the others) would make a
    mean-scaled steering vector break the model."""
    cache = capture(model, texts, sites=[site], layers=[layer], progress=False)
    x = cache[site, layer].float()[cache.attention_mask.bool()]
    return float(x.norm(dim=-1).median())


def _decomposition_summary(dec: pd.DataFrame, n_boot: int, seed) -> pd.DataFrame:
    rows = []
    for part in ("diff_total", "diff_differing", "diff_shared_before", "diff_shared_after"):
        ci = bootstrap_ci(dec[part].to_numpy(float), n_boot=n_boot, seed=seed)
        rows.append({"part": part.replace("diff_", ""), "value": ci.estimate, "ci_low": ci.low, "ci_high": ci.high,
                     "n": len(dec)})
    return pd.DataFrame(rows)


def _capability(model, texts, conditions: dict, n_boot: int, seed) -> pd.DataFrame:
    """Perplexity of the neutral texts per condition, and a paired bootstrap CI on its change."""

    def ppl(cols):
        return np.exp(-np.sum(cols["lp"], axis=-1) / np.sum(cols["n"], axis=-1))

    scores = {}
    for name, ctx in conditions.items():
        with ctx():
            df = perplexity(model, texts)
        scores[name] = {"lp": df["logprob"].to_numpy(float), "n": df["n_tokens"].to_numpy(float)}
    rows = []
    for name, cols in scores.items():
        row = {"condition": name, "ppl": float(ppl(cols)), "n_texts": len(texts)}
        if name != "before":
            r = paired_bootstrap(cols, scores["before"], stat=ppl, n_boot=n_boot, seed=seed)
            row.update(ppl_change=r.diff, ppl_change_ci_low=r.ci_low, ppl_change_ci_high=r.ci_high, p_value=r.p_value)
        rows.append(row)
    return pd.DataFrame(rows)


@checked(limit=Optional(Int(min=1)), n_fit=Int(min=2), layer=Optional(Int()), strength=Real(), n_heads=Int(min=1),
         seed=Int(min=0), n_boot=Int(min=1), progress=BOOL)
def mechanistic_audit(model, probe: str = "winobias", data=None, limit: int | None = 200, *, n_fit: int = 16,
                      layer: int | None = None, strength: float = 0.1, n_heads: int = 3,
                      head_search: str = "ablation", layers=None, neutral=None,
                      interventions=CONDITIONS, seed: int = 0, n_boot: int = 2000,
                      progress: bool = True, **probe_options) -> MechanisticAudit:
    """Run the whole mechanistic bias audit for one probe and one causal LM.

    Parameters
    ----------
    probe : "winobias", "crows_pairs" (sentence pairs; side ``a`` is the stereotyped sentence) or
        "bbq" (side ``a``: prompt + the biased answer, ``b``: prompt + the other group's answer;
        patching swaps the two groups' mentions in the context, and skips, with the reason, items
        where they cannot be found or where the swap changes the number of tokens).
    data, limit, seed, probe_options : passed to :func:`workbench.run_probe` (same items before
        and after every intervention).
    n_fit : items (seeded sample of the probe's items) used to find heads and build the steering
        vector; the metrics in step 4 are reported on the other items only.
    layer : residual-stream layer for steering (default: the middle layer).
    strength : size of the steering vector added at every position, as a fraction of the median
        token activation norm at that layer (the difference of means of sentences that differ in one
        word is tiny, so a raw multiple of it says little). Recorded as the inspect strength used.
        On SmolLM2-135M (WinoBias, layer 15) 0.1 raised neutral-text perplexity by ~1.5% and 0.25
        by ~18%: check ``capability`` before trusting a drop in the bias metric.
    n_heads : heads to ablate.
    head_search : "ablation" (zero-ablate each head on the fit items; keep those whose removal
        lowers the pair's log-likelihood gap most) or "patching" (the heads whose clean ->
        corrupted patch moves the shared rest of the sentence most; half the cost).
    layers : layers to patch and ablate heads in (default: all; a subset saves time on big models,
        above all for BBQ, whose prompts are several times longer than a WinoBias sentence and are
        patched at every position).
    neutral : texts for the capability cost (default: packaged neutral sentences).
    interventions : which of ``("steering", "head_ablation")`` to run in step 4.

    Example
    -------
    >>> audit = mechanistic_audit(model, "winobias", data="../shared/data/winobias", limit=120)  # doctest: +SKIP
    >>> audit.summary()        # bias metric before/after each intervention, with CIs      # doctest: +SKIP
    >>> audit.plot()           # doctest: +SKIP
    >>> bbq = mechanistic_audit(model, "bbq", data="../shared/data/bbq", limit=120, layers=[0, 15])  # doctest: +SKIP
    >>> bbq.skipped            # items whose groups could not be swapped for patching, and why  # doctest: +SKIP
    """
    if probe not in PAIR_PROBES:
        raise InvalidInputError(f"mechanistic_audit supports the minimal-pair probes {sorted(PAIR_PROBES)}, got "
                                f"{probe!r}")
    if getattr(model, "kind", None) != "causal":
        raise WrongModelKindError(f"mechanistic_audit patches and steers causal LMs; {getattr(model, 'name', model)} "
                                  f"is {getattr(model, 'kind', None)!r}. Use wb.attribute for masked LMs.")
    unknown = sorted(set(interventions) - set(CONDITIONS))
    if unknown or not interventions:
        raise InvalidInputError(f"interventions must be a non-empty subset of {CONDITIONS}, got {interventions!r}")
    if head_search not in ("ablation", "patching"):
        raise InvalidInputError(f"head_search must be 'ablation' or 'patching', got {head_search!r}")
    pairs = PAIR_PROBES[probe]
    col_a, col_b, category, sides = pairs.col_a, pairs.col_b, pairs.category, pairs.sides
    texts = _neutral(neutral)
    timings = {}

    def probe_run():
        return run_probe(probe, model, data=data, limit=limit, seed=seed, n_boot=n_boot, **probe_options)

    t = time.perf_counter()
    before = probe_run()
    timings["probe_before"] = time.perf_counter() - t
    items = pairs.prepare(before.items.reset_index(drop=True))
    if len(items) < n_fit + 10:
        raise InvalidInputError(f"the probe gave {len(items)} items; the audit needs n_fit ({n_fit}) + at least 10 "
                                "held-out items: raise limit or lower n_fit")
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(len(items), size=n_fit, replace=False))
    fit = items.iloc[fit_idx]
    key = list(before.spec.item_key)
    held_keys = items.drop(index=fit_idx)[key]

    # 1. exact split of LL(a) - LL(b) over differing / shared tokens
    t = time.perf_counter()
    dec = decompose(model, items, col_a, col_b, context_col=pairs.context_col)
    dec.insert(0, "item_id", items[key[0]].to_numpy())
    dec["fit"] = np.isin(np.arange(len(items)), fit_idx)
    timings["decomposition"] = time.perf_counter() - t

    # 2. patching and head ablation on the fit items
    t = time.perf_counter()
    layers = None if layers is None else [int(x) for x in layers]
    by_pos, by_head, skip_patch = patch_pairs(model, fit, pairs, progress=progress, layers=layers)
    if head_search == "ablation":
        effects, skip_heads = head_effects(model, fit, pairs, progress=progress, layers=layers)
        heads = top_heads(effects, n_heads)
    else:
        effects, skip_heads = pd.DataFrame(columns=["layer", "head", "effect", "item"]), skip_patch.iloc[:0]
        mean = by_head.groupby(["layer", "head"])["normalized"].mean().abs().sort_values(ascending=False)
        heads = [(int(l), int(h)) for l, h in mean.head(n_heads).index]
    timings["patching_and_ablation"] = time.perf_counter() - t

    # 3. interventions
    steer_layer = model.n_layers // 2 if layer is None else layer
    fit_steer, skip_steer = _within_window(model, fit, [col_a, col_b])
    vector = steering_vector(model, positive=list(fit_steer[col_b]), negative=list(fit_steer[col_a]), layer=steer_layer)
    typical = _typical_norm(model, list(fit_steer[col_a]) + list(fit_steer[col_b]), vector.site, steer_layer)
    multiple = strength * typical / vector.norm if vector.norm > 0 else 0.0
    conditions = {"before": _nothing}
    if "steering" in interventions:
        conditions["steering"] = lambda: steer(model, vector, strength=multiple)
    if "head_ablation" in interventions and heads:
        conditions["head_ablation"] = lambda: ablated_heads(model, heads)

    # 4. re-run the probe under each intervention; metrics on held-out items
    def held_out(res):
        c = res.comparable()
        mask = c.items.reset_index(drop=True)[key].apply(tuple, axis=1).isin(held_keys.apply(tuple, axis=1))
        return dataclasses.replace(c, items=c.items.reset_index(drop=True)[mask.to_numpy()].reset_index(drop=True))

    runs = {"before": before}
    for name, ctx in conditions.items():
        if name == "before":
            continue
        t = time.perf_counter()
        with ctx():
            runs[name] = probe_run()
        timings[f"probe_{name}"] = time.perf_counter() - t
    tables, comparisons = [], []
    base = held_out(before)
    for name, res in runs.items():
        c = held_out(res)
        tables.append(summarise(c.items, c.metrics, by=category, n_boot=n_boot, seed=seed).assign(condition=name))
        if name != "before":
            comparisons.append(compare(dataclasses.replace(c, label=name), dataclasses.replace(base, label="before"),
                                       n_boot=n_boot, seed=seed).assign(condition=name))
    frame = pd.concat(tables, ignore_index=True)[["condition", "metric", "category", "value", "ci_low", "ci_high", "n"]]
    t = time.perf_counter()
    capability = _capability(model, texts, conditions, n_boot, seed)
    timings["capability"] = time.perf_counter() - t

    probe_diff = pairs.probe_diff(items, before.options)
    skipped = pd.concat([skip_patch.assign(step="patching"), skip_heads.assign(step="head_ablation"),
                         skip_steer.assign(step="steering")],
                        ignore_index=True)
    skipped.insert(1, "item_id", items[key[0]].to_numpy()[skipped["item"].to_numpy(int)] if len(skipped) else [])
    provenance = {
        "probe": probe, **record(model), "fingerprint_id": model.fingerprint_id, "sides": sides,
        "data": str(data), "limit": limit, "seed": seed, "n_items": len(items), "n_fit": n_fit,
        "n_held_out": len(held_keys), "probe_options": probe_options, "n_boot": n_boot, "head_search": head_search,
        "layers": layers,
        "decomposition_vs_probe_max_abs": None if probe_diff is None
        else float(np.max(np.abs(dec.diff_total.to_numpy() - probe_diff))),
        "headline_metric": pairs.headline,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "probe_provenance": before.provenance,
    }
    return MechanisticAudit(
        frame, provenance, decomposition=dec, decomposition_summary=_decomposition_summary(dec, n_boot, seed),
        patching_positions=by_pos.groupby(["layer", "role"], as_index=False)["normalized"].mean() if len(by_pos) else by_pos,
        patching_heads=by_head.groupby(["layer", "head"], as_index=False)["normalized"].mean() if len(by_head) else by_head,
        head_effects=effects, heads=heads,
        steering={"layer": steer_layer, "strength": strength, "inspect_strength": multiple, "site": vector.site,
                  "norm": vector.norm, "median_token_norm": typical,
                  "mean_activation_norm": vector.mean_norm, "n_fit": n_fit, "direction": f"{sides[1]} - {sides[0]}"},
        comparisons=pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame(),
        capability=capability, skipped=skipped)


class _nothing:
    """The 'before' condition: no intervention."""

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False

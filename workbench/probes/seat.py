"""SEAT/WEAT (Caliskan et al. 2017; May et al. 2019): association tests on embeddings.

For targets X, Y and attributes A, B (each a list of words or sentences), with
``s(w) = mean_a cos(w, a) - mean_b cos(w, b)``:

- effect size ``d = (mean_x s(x) - mean_y s(y)) / std_{w in X u Y} s(w)`` (sample std, ddof=1,
  as the sent-bias code);
- one-sided p-value of a permutation test on ``sum_x s(x) - sum_y s(y)`` over equal-size
  re-partitions of X u Y (exact when there are at most ``n_perm`` partitions, else ``n_perm``
  random ones, with +1 smoothing);
- a 95% CI on d from a bootstrap that resamples X, Y, A and B independently.

Embeddings come from ``wb.embed`` (encoders and masked LMs: mean pooling; causal LMs: last
token; ``pooling=`` overrides). One item per test file; category = test. The p-values are
Benjamini-Hochberg adjusted across the tests run. Data licence: CC BY-NC 4.0 (non-commercial).
"""
from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
from itertools import combinations

from workbench.datafiles import check_columns, read_text
from workbench.errors import DataError
from workbench.probes.base import ProbeSpec, plot_summary, takes_context
from workbench.scoring.api import embed
from workbench.stats.bootstrap import summarise
from workbench.stats.inference import benjamini_hochberg
from workbench.stats.metrics import mean_metric

SETS = ("targ1", "targ2", "attr1", "attr2")


def _unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def weat(X, Y, A, B, n_perm: int = 10000, n_boot: int = 1000, level: float = 0.95, seed=0) -> dict:
    """Effect size, permutation p-value and bootstrap CI for embedding matrices X, Y, A, B."""
    X, Y, A, B = map(_unit, (X, Y, A, B))
    W = np.vstack([X, Y])
    nx, nw = len(X), len(X) + len(Y)
    WA, WB = W @ A.T, W @ B.T
    s = WA.mean(1) - WB.mean(1)
    d = (s[:nx].mean() - s[nx:].mean()) / s.std(ddof=1)
    observed = s[:nx].sum() - s[nx:].sum()
    rng = np.random.default_rng(seed)
    total = s.sum()
    if comb(nw, nx) <= n_perm:
        stats = np.array([2 * s[list(c)].sum() - total for c in combinations(range(nw), nx)])
        p = float(np.mean(stats >= observed - 1e-12))
    else:
        perms = np.argsort(rng.random((n_perm, nw)), axis=1)[:, :nx]
        stats = 2 * s[perms].sum(1) - total
        p = float((np.sum(stats >= observed - 1e-12) + 1) / (n_perm + 1))
    # bootstrap: resample each set independently; s recomputed from the resampled attributes
    # a resample of A is a vector of counts: mean cos over it is one matrix product (no copies)
    ca = rng.multinomial(len(A), np.full(len(A), 1 / len(A)), size=n_boot)
    cb = rng.multinomial(len(B), np.full(len(B), 1 / len(B)), size=n_boot)
    sb = WA @ ca.T / len(A) - WB @ cb.T / len(B)                    # (nw, n_boot)
    ix = rng.integers(0, nx, (n_boot, nx))
    iy = rng.integers(nx, nw, (n_boot, nw - nx))
    sx = np.take_along_axis(sb.T, ix, 1)
    sy = np.take_along_axis(sb.T, iy, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (sx.mean(1) - sy.mean(1)) / np.concatenate([sx, sy], 1).std(1, ddof=1)
    lo, hi = np.nanquantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return {"effect_size": float(d), "p_value": p, "ci_low": float(lo), "ci_high": float(hi)}


@takes_context
def load(source, ctx):
    source = Path(source)
    files = sorted(source.glob("*.jsonl")) if source.is_dir() else [source]
    if not files:
        raise DataError(f"no SEAT .jsonl test files in {source}")
    rows = []
    for path in files:
        try:
            test = json.loads(read_text(path, ctx.options.get("encoding")))
        except json.JSONDecodeError as e:
            ctx.skips.add(path.name, f"not one JSON object ({e.msg})")
            continue
        if not isinstance(test, dict):
            ctx.skips.add(path.name, f"a JSON {type(test).__name__}, not one object {{targ1, targ2, attr1, attr2}}")
            continue
        check_columns(test.keys(), SETS, what="probe 'seat'", path=path)
        sets = {k: [str(x).strip() for x in (test.get(k) or {}).get("examples", []) if str(x).strip()] for k in SETS}
        small = [k for k, v in sets.items() if len(v) < 2]
        if small:
            ctx.skips.add(path.name, f"set(s) {small} have fewer than 2 non-empty examples")
            continue
        rows.append({"item_id": path.stem, "test": path.stem, "level": "sentence" if path.stem.startswith("sent-") else "word",
                     **{f"{k}_category": test[k].get("category", k) for k in SETS},
                     **{k: sets[k] for k in SETS}, "n_x": len(sets["targ1"]), "n_y": len(sets["targ2"])})
    return pd.DataFrame(rows), files


@takes_context
def score(model, items, ctx):
    texts = sorted({t for _, r in items.iterrows() for k in SETS for t in r[k]})
    emb = embed(model, texts, pooling=ctx.options["pooling"])
    index = {t: i for i, t in enumerate(texts)}
    results = []
    for _, r in items.iterrows():
        mats = [emb[[index[t] for t in r[k]]] for k in SETS]
        results.append(weat(*mats, n_perm=ctx.options["n_perm"], n_boot=ctx.options["n_boot_effect"], seed=ctx.seed))
    out = pd.concat([items.reset_index(drop=True), pd.DataFrame(results)], axis=1)
    out["p_adjusted"] = benjamini_hochberg(out.p_value.to_numpy())
    out["abs_effect_size"] = out.effect_size.abs()
    out["pooling"] = ctx.options["pooling"] or ("last" if model.kind == "causal" else "mean")
    return out


def metrics(options):
    return [mean_metric("mean_effect_size", "effect_size", kind="continuous", ideal=0),
            mean_metric("mean_abs_effect_size", "abs_effect_size", kind="continuous", ideal=0)]


def summary(res) -> pd.DataFrame:
    """Per test: the effect size with its within-test bootstrap CI and (BH-adjusted) p-value;
    overall: the mean (absolute) effect size across tests, with the interval rules of every
    summary (:func:`workbench.stats.summarise`): a bootstrap interval over tests only from
    ``MIN_N_BOOTSTRAP`` tests, none below (the reason in ``attrs["notes"]``). A percentile
    bootstrap over the 2 to 10 tests usually run covers far less than it says: its 95% interval
    covered 0.54 at 2 tests, 0.83 at 5 and 0.89 at 10 (``tests/test_probes_other.py``)."""
    it = res.items
    per_test = pd.DataFrame({"metric": "effect_size", "category": it.test, "value": it.effect_size,
                             "ci_low": it.ci_low, "ci_high": it.ci_high, "n": it.n_x + it.n_y,
                             "p_value": it.p_value, "p_adjusted": it.p_adjusted})
    overall = summarise(it, res.metrics, n_boot=res.n_boot, seed=res.seed)
    out = pd.concat([overall, per_test], ignore_index=True)
    out.attrs = dict(overall.attrs)
    return out


def plot(res, ax=None):
    ax = plot_summary(res.summary(), "effect_size", ax=ax, title=f"SEAT/WEAT: {res.provenance['model']['name']}")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    return ax


SPEC = ProbeSpec(
    no_chat='it compares sentence embeddings, which no chat turn changes the meaning of',
    accepts_frame=False,
    name="seat", description="SEAT/WEAT: embedding association effect sizes, permutation p-values",
    load=load, score=score, metrics=metrics, categories=("test",), kinds=("encoder", "masked", "causal"),
    licence="CC BY-NC 4.0", non_commercial=True,
    defaults={"pooling": None, "n_perm": 10000, "n_boot_effect": 1000}, plot=plot, summary=summary,
    paper="Caliskan et al. 2017, Science; May et al. 2019, NAACL")

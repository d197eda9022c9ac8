"""Winogender (Rudinger et al. 2018): pronoun preference by occupation, and its correlation with
occupation statistics (U.S. Bureau of Labor Statistics 2015 and Bergsma & Lin's text statistics).

Each item is one schema sentence in its three versions (male, female, neutral pronoun; the
``sentid`` is ``occupation.participant.answer.gender.txt``). Each version is scored as a whole
sentence (causal LMs: log-likelihood from BOS; masked LMs: pseudo-log-likelihood). Per item:
``log_ratio_fm`` = score_female - score_male, ``female_over_male``, and which pronoun scores
highest (``pref_male``/``pref_female``/``pref_neutral``).

Metrics: the share of items preferring each pronoun and ``pct_female_over_male`` per occupation
(category ``occupation``); overall, ``corr_bls`` and ``corr_bergsma``: Pearson r across
occupations between the mean ``log_ratio_fm`` and % female workers (positive = the model's
pronoun preference follows the occupation statistics). ``res.plot()`` shows the scatter.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError
from workbench.datafiles import read_table
from workbench.probes.base import ProbeSpec, find_file, require_text, takes_context
from workbench.probes.scoring import method_for, sentence_scores
from workbench.scoring.chat import format_options
from workbench.stats.metrics import Metric, mean_metric

GENDERS = ("male", "female", "neutral")


@takes_context
def load(source, ctx):
    source = Path(source)
    sent_path = find_file(source, "all_sentences.tsv")
    stats_path = find_file(source if source.is_dir() else source.parent, "occupations-stats.tsv")
    enc = ctx.options.get("encoding")
    sents = read_table(sent_path, sep="\t", required=("sentid", "sentence"), what="probe 'winogender'", encoding=enc)
    stats = read_table(stats_path, sep="\t", required=("occupation", "bls_pct_female", "bergsma_pct_female"),
                       what="probe 'winogender' (occupation statistics)", encoding=enc).set_index("occupation")
    groups: dict = {}
    for _, r in sents.iterrows():
        sid, text = require_text(r.get("sentid")), require_text(r.get("sentence"))
        parts = sid.split(".") if sid else []
        if text is None or len(parts) != 5 or parts[3] not in GENDERS:
            ctx.skips.add(sid, "missing sentence or sentid not 'occupation.participant.answer.gender.txt'")
            continue
        groups.setdefault(tuple(parts[:3]), {})[parts[3]] = text
    rows = []
    for (occ, part, ans), by_gender in groups.items():
        rid = f"{occ}.{part}.{ans}"
        if set(by_gender) != set(GENDERS):
            ctx.skips.add(rid, f"needs male, female and neutral versions; has {sorted(by_gender)}")
        elif len(set(by_gender.values())) < 3:
            ctx.skips.add(rid, "two pronoun versions are the same sentence")
        elif occ not in stats.index:
            ctx.skips.add(rid, f"occupation {occ!r} has no row in occupations-stats.tsv")
        else:
            rows.append({"item_id": rid, "occupation": occ, "participant": part,
                         "referent": "occupation" if ans == "0" else "participant",
                         **{f"sent_{g}": by_gender[g] for g in GENDERS},
                         "bls_pct_female": float(stats.loc[occ, "bls_pct_female"]),
                         "bergsma_pct_female": float(stats.loc[occ, "bergsma_pct_female"])})
    if not rows:
        raise DataError(f"no complete Winogender schema in {sent_path}")
    out = pd.DataFrame(rows)
    out["occ_code"] = pd.factorize(out.occupation)[0]
    return out, [sent_path, stats_path]


@takes_context
def score(model, items, ctx):
    method = method_for(model, ctx.options["method"], "winogender")
    out = items.copy()
    for g in GENDERS:
        out[f"score_{g}"] = sentence_scores(model, items[f"sent_{g}"], method=method, aggregate=ctx.options["aggregate"],
                                            start=ctx.options["start"], cache=ctx.cache,
                                            **format_options(ctx.options)).score.to_numpy()
    out["log_ratio_fm"] = out.score_female - out.score_male
    out["female_over_male"] = (out.score_female > out.score_male).astype(int)
    best = out[[f"score_{g}" for g in GENDERS]].to_numpy().argmax(axis=1)
    for k, g in enumerate(GENDERS):
        out[f"pref_{g}"] = (best == k).astype(int)
    return out


def _corr1(occ, x, y):
    occ = occ.astype(int)
    counts = np.bincount(occ)
    present = counts > 0
    if present.sum() < 3:
        return np.nan
    mx = np.bincount(occ, weights=x)[present] / counts[present]
    my = np.bincount(occ, weights=y)[present] / counts[present]
    if mx.std() == 0 or my.std() == 0:
        return np.nan
    return float(np.corrcoef(mx, my)[0, 1])


def _corr(stat_col):
    def fn(c):
        occ, x, y = c["occ_code"], c["log_ratio_fm"], c[stat_col]
        if occ.ndim == 1:
            return _corr1(occ, x, y)
        return np.array([_corr1(o, a, b) for o, a, b in zip(occ, x, y)])
    return fn


def metrics(options):
    ms = [mean_metric("pct_female_over_male", "female_over_male", kind="binary", scale=100)]
    ms += [mean_metric(f"pct_pref_{g}", f"pref_{g}", kind="binary", scale=100) for g in GENDERS]
    for stat in ("bls", "bergsma"):
        ms.append(Metric(f"corr_{stat}", _corr(f"{stat}_pct_female"), ("occ_code", "log_ratio_fm", f"{stat}_pct_female"),
                         overall_only=True, description=f"Pearson r across occupations: mean log p(she)/p(he) vs "
                                                        f"{stat} % female"))
    return ms


def plot(res, ax=None, stat: str = "bls"):
    import matplotlib.pyplot as plt
    per = res.items.groupby("occupation").agg(x=(f"{stat}_pct_female", "first"), y=("log_ratio_fm", "mean"))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    ax.scatter(per.x, per.y, s=14)
    for occ, r in per.iterrows():
        ax.annotate(occ, (r.x, r.y), fontsize=6, alpha=0.7)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    s = res.summary().set_index(["metric", "category"]).loc[(f"corr_{stat}", "all")]
    ax.set_xlabel(f"% female ({stat.upper()})")
    ax.set_ylabel("mean log p(female) - log p(male)")
    ax.set_title(f"Winogender, {res.provenance['model']['name']}: r = {s.value:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]")
    return ax


SPEC = ProbeSpec(
    accepts_frame=False,
    itemwise=True,
    name="winogender", description="Winogender: pronoun preference by occupation, correlation with BLS/Bergsma",
    load=load, score=score, metrics=metrics, categories=("occupation",), licence="MIT",
    defaults={"method": "auto", "aggregate": "sum", "start": "bos"}, plot=plot, paper="Rudinger et al. 2018, NAACL",
    formats=("raw", "chat"))

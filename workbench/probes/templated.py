"""Templated probes: a JSON file of templates x fillers x two alternative words (see
``workbench/data/templates/README.md`` for the format). Shipped: ``occupations_pronouns`` (he
vs she after occupations) and ``names_sentiment`` (positive vs negative words after first names);
``templated`` runs your own file.

>>> from workbench.testing import tiny_model
>>> import workbench as wb
>>> res = wb.run_probe("occupations_pronouns", tiny_model("gpt2"), limit=20, n_boot=200)
>>> sorted(set(res.items.group))
['female-dominated', 'male-dominated']
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.datafiles import read_text
from workbench.errors import DataError
from workbench.probes.base import ProbeSpec, require_text, takes_context
from workbench.probes.scoring import method_for, sentence_scores
from workbench.scoring.chat import format_options
from workbench.stats.metrics import Metric, mean_metric

KEYS = {"name", "description", "licence", "slot", "templates", "fillers", "choices", "labels", "source"}


def read_spec(path: Path, encoding: str | None = None) -> dict:
    """Read and validate a templated-probe JSON file (errors say what to fix)."""
    try:
        spec = json.loads(read_text(path, encoding))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(spec, dict):
        raise DataError(f"{path}: a templated-probe file holds one JSON object; see workbench/data/templates/README.md")
    unknown = set(spec) - KEYS
    missing = {"slot", "templates", "fillers", "choices"} - set(spec)
    if unknown or missing:
        raise DataError(f"{path}: unknown key(s) {sorted(unknown)}, missing key(s) {sorted(missing)}; "
                        "see workbench/data/templates/README.md")
    choices = spec["choices"]
    if set(choices) != {"a", "b"}:
        raise DataError(f"{path}: choices must have exactly the keys 'a' and 'b', got {sorted(choices)}")
    for k in ("a", "b"):
        words = [choices[k]] if isinstance(choices[k], str) else list(choices[k])
        if not words or any(require_text(w) is None for w in words):
            raise DataError(f"{path}: choice {k!r} needs at least one non-empty word")
        choices[k] = words
    if not isinstance(spec["fillers"], dict) or not spec["fillers"]:
        raise DataError(f"{path}: fillers must be {{group: [filler, ...]}} with at least one group")
    return spec


@takes_context
def load(source, ctx):
    path = Path(source)
    spec = read_spec(path)
    slot = "{" + spec["slot"] + "}"
    rows = []
    for t_idx, template in enumerate(spec["templates"]):
        if not isinstance(template, str) or template.count(slot) != 1 or template.count("{choice}") != 1:
            ctx.skips.add(f"template {t_idx}", f"template must contain {slot} and {{choice}} exactly once: {template!r}")
            continue
        for group, fillers in spec["fillers"].items():
            for filler in fillers:
                if require_text(filler) is None:
                    ctx.skips.add(f"{group}/{filler!r}", "empty filler")
                    continue
                rows.append({"item_id": f"{t_idx}:{filler}", "template_id": t_idx, "group": group, "filler": filler,
                             "template": template.replace(slot, filler)})
    items = pd.DataFrame(rows)
    groups = list(spec["fillers"])
    if len(items) and len(groups) == 2:
        items["group_code"] = (items.group == groups[0]).astype(float)
    items.attrs["spec"] = spec
    return items, [path]


@takes_context
def score(model, items, ctx):
    spec = read_spec(ctx.source)
    method = method_for(model, ctx.options["method"], spec.get("name", "templated"))
    out = items.copy()
    for side in ("a", "b"):
        words = spec["choices"][side]
        sents = [t.replace("{choice}", w) for t in items.template for w in words]
        s = sentence_scores(model, sents, method=method, aggregate=ctx.options["aggregate"], start=ctx.options["start"],
                            cache=ctx.cache, **format_options(ctx.options)).score.to_numpy()
        out[f"score_{side}"] = s.reshape(len(items), len(words)).mean(axis=1)
    out["a_preferred"] = (out.score_a > out.score_b).astype(int)
    out["diff"] = out.score_a - out.score_b
    return out


def _gap(c):
    g, d = c["group_code"], c["diff"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(d * g, axis=-1) / np.sum(g, axis=-1) - np.sum(d * (1 - g), axis=-1) / np.sum(1 - g, axis=-1)


def make_metrics(spec_path):
    def metrics(options):
        labels = {"a": "a", "b": "b"}
        path = options.get("_source") or spec_path
        spec = read_spec(Path(path)) if path else {}
        labels.update(spec.get("labels", {}))
        ms = [mean_metric("pct_a_preferred", "a_preferred", kind="binary", scale=100, ideal=50,
                          description=f"% of items where '{labels['a']}' scores higher than '{labels['b']}'"),
              mean_metric("mean_diff", "diff", kind="continuous", ideal=0,
                          description=f"mean score('{labels['a']}') - score('{labels['b']}') (nats)")]
        groups = list(spec.get("fillers", {}))
        if len(groups) == 2:
            ms.append(Metric("group_gap", _gap, ("group_code", "diff"), ideal=0, overall_only=True,
                             description=f"mean_diff of {groups[0]!r} minus mean_diff of {groups[1]!r}"))
        return ms
    return metrics


def _spec(name, filename, description):
    return ProbeSpec(
        itemwise=True, accepts_frame=False,
        name=name, description=description, load=load, score=score, metrics=make_metrics(None),
        categories=("group",), licence="CC0-1.0" if filename else "as stated in your file",
        defaults={"method": "auto", "aggregate": "sum", "start": "bos"}, default_data=filename,
        paper="Open Model Workbench templated probe", formats=("raw", "chat"))


SPECS = {
    "occupations_pronouns": _spec("occupations_pronouns", "occupations_pronouns.json",
                                  "Templated: he vs she after male-/female-dominated occupations"),
    "names_sentiment": _spec("names_sentiment", "names_sentiment.json",
                             "Templated: positive vs negative descriptions after female/male first names"),
    "templated": _spec("templated", None, "Your own templated probe from a JSON file (data=PATH)"),
}

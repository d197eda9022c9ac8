"""Claims against measurements: a declared evaluation result beside the workbench's own
measurement of the same task, with its interval, whether the claim is inside it, and the
setting differences that could explain a gap.

>>> claims = [{"task": "blimp", "metric": "accuracy", "value": 81.0, "shots": 5}]
>>> measured = pd.DataFrame([{"task": "blimp", "metric": "acc", "value": 0.79, "ci_low": 0.75,
...                           "ci_high": 0.83, "n": 400}])
>>> row = claims_table(claims, measured).iloc[0]
>>> bool(row.inside), row.setting_differences
(True, 'shots: claimed 5, measured 0')
"""
from __future__ import annotations

import re

import pandas as pd

from workbench.errors import InvalidInputError, InvalidTypeError

# how the workbench's tasks are scored (workbench/tasks/kinds.py): zero-shot, the raw text (or
# the model's chat template when the task says so), log-likelihood of each choice; acc_norm
# divides it by the characters of the choice, as lm-evaluation-harness does
WORKBENCH_SETTINGS = {"shots": 0, "prompt_format": "raw", "normalisation": None}
ACC_NORM_NORMALISATION = "characters"
METRIC_ALIASES = {"accuracy": "acc", "acc": "acc", "accnorm": "acc_norm", "normalizedaccuracy": "acc_norm",
                  "exactmatch": "exact_match", "em": "exact_match", "f1": "f1", "perplexity": "perplexity"}
COLUMNS = ["task", "metric", "claimed", "measured", "ci_low", "ci_high", "n", "inside", "setting_differences",
           "reading", "source"]


def _key(text) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def _metric(text) -> str:
    return METRIC_ALIASES.get(_key(text), _key(text))


MEASURED_HINT = ("pass wb.run(...) results, their .table(), or a DataFrame (or list of dicts) with columns task, "
                 "metric, value, ci_low, ci_high and n")


def _measured_frame(measured) -> pd.DataFrame:
    if measured is None:
        return pd.DataFrame(columns=["task", "metric", "value", "ci_low", "ci_high", "n"])
    if hasattr(measured, "table") and callable(measured.table):  # wb.run(...) results
        measured = measured.table()
    if isinstance(measured, (str, bytes)) or not isinstance(measured, (pd.DataFrame, list, tuple, dict)):
        raise InvalidTypeError(f"measured must be the workbench's measurements: {MEASURED_HINT}; got "
                               f"{type(measured).__name__} {str(measured)[:60]!r}")
    if isinstance(measured, (list, tuple)) and not all(isinstance(r, dict) for r in measured):
        raise InvalidTypeError(f"measured as a list must hold one dict per measurement: {MEASURED_HINT}")
    try:
        frame = pd.DataFrame(measured)
    except ValueError as e:  # a dict of scalars, columns of unequal length
        raise InvalidInputError(f"measured could not be read as a table ({e}): {MEASURED_HINT}") from None
    missing = {"task", "metric", "value", "ci_low", "ci_high"} - set(frame.columns)
    if missing:
        raise InvalidInputError(f"measured needs columns task, metric, value, ci_low, ci_high (e.g. wb.run(...).table()); "
                                f"missing {sorted(missing)}")
    for col in ("value", "ci_low", "ci_high"):
        numbers = pd.to_numeric(frame[col], errors="coerce")
        bad = frame[col].notna() & numbers.isna()
        if bad.any():
            raise InvalidInputError(f"measured column {col!r} must hold numbers; it holds {frame[col][bad].iloc[0]!r}")
        frame[col] = numbers
    return frame


def claims_table(claims, measured=None, settings: dict | None = None) -> pd.DataFrame:
    """One row per claim: the claimed value, the workbench's measurement of the same task and metric
    with its interval (``measured``: ``wb.run(...)`` results or a frame with task, metric, value,
    ci_low, ci_high, n), ``inside`` (the claim within the interval; NaN without a measurement),
    and the setting differences (shots, prompt format, normalisation) that could explain a gap: a
    claim that does not state its shots, or states other settings than the measurement's, is not
    comparable (the "evaluation reproduced" indicator is then "not comparable", never
    "contradicted").

    ``claims``: dicts with task, metric, value and, where the card says, shots, prompt_format,
    normalisation (a model-index, or numbers typed in from a card). Claims in percent are compared
    with measurements in [0, 1] after dividing by 100. ``settings``: how the measurement was made
    (default: the workbench's tasks, zero-shot raw log-likelihood)."""
    if isinstance(claims, (str, bytes, dict)):
        raise InvalidTypeError("claims must be a list of dicts (task, metric, value, and shots, prompt_format, "
                               f"normalisation where known) or a DataFrame of them; got {type(claims).__name__}")
    if settings is not None and not isinstance(settings, dict):
        raise InvalidTypeError(f"settings must be a dict such as {WORKBENCH_SETTINGS}; got {type(settings).__name__}")
    claims = claims.to_dict("records") if isinstance(claims, pd.DataFrame) else list(claims or [])
    for c in claims:
        if not isinstance(c, dict) or not {"task", "metric", "value"} <= set(c):
            raise InvalidInputError(f"each claim needs task, metric and value, e.g. "
                                    f"{{'task': 'arc_easy', 'metric': 'acc', 'value': 0.62}}; got {c!r}")
    settings = {**WORKBENCH_SETTINGS, **(settings or {})}
    m = _measured_frame(measured)
    if "model" in m.columns and m["model"].nunique() > 1:
        raise InvalidInputError("measured holds several models: pass the rows of the model whose card this is "
                                "(e.g. table[table.model == name])")
    rows = []
    for c in claims:
        hit = m[(m.task.map(_key) == _key(c["task"])) & (m.metric.map(_metric) == _metric(c["metric"]))]
        row = {"task": c["task"], "metric": c["metric"], "claimed": c["value"], "measured": None, "ci_low": None,
               "ci_high": None, "n": None, "inside": float("nan"), "setting_differences": "",
               "reading": "no workbench measurement of this task and metric", "source": c.get("source", "entered")}
        try:
            claimed = float(c["value"])
        except (TypeError, ValueError):
            row["reading"] = f"the claimed value {c['value']!r} is not a number: not compared"
            rows.append(row)
            continue
        if len(hit):
            h = hit.iloc[0]
            if claimed > 1.5 and float(h.ci_high) <= 1.0:
                claimed /= 100  # a percentage against a proportion
            lo, hi = float(h.ci_low), float(h.ci_high)
            used = dict(settings)
            if _metric(c["metric"]) == "acc_norm" and used.get("normalisation") is None:
                used["normalisation"] = ACC_NORM_NORMALISATION  # the measured acc_norm is normalised too
            # the number of shots moves scores most, so a claim that does not state it is not
            # comparable; a prompt format or normalisation differs only where the claim states one
            diffs = [] if c.get("shots") is not None else [f"shots: not stated by the claim, measured {used['shots']}"]
            diffs += [f"{k}: claimed {c.get(k)}, measured {used[k]}" for k in ("shots", "prompt_format", "normalisation")
                      if c.get(k) is not None and str(c.get(k)) != str(used[k])]
            row.update(measured=float(h.value), ci_low=lo, ci_high=hi, n=h.get("n"),
                       setting_differences="; ".join(diffs))
            if lo != lo or hi != hi:  # NaN: a measurement without an interval cannot place the claim
                row["reading"] = "the measurement has no interval: the claim is not compared"
                rows.append(row)
                continue
            inside = lo <= claimed <= hi
            row["inside"] = inside
            side = "inside" if inside else ("above" if claimed > hi else "below")
            row["reading"] = (f"the claim ({claimed:.3g}) is {side} the workbench's 95% interval [{lo:.3g}, {hi:.3g}]"
                              + ("" if inside or not diffs else "; not comparable: the settings differ, which could "
                                 "explain the gap")
                              + ("" if inside or diffs else "; the settings stated agree, so the gap is unexplained"))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)

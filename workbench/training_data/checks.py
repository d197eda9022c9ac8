"""Training-data checks as units of work: ``wb.run(..., units=[{"check": "membership", ...}])``
(or the older ``training=[{"kind": "membership", ...}]``) runs
:func:`wb.membership <workbench.training_data.membership.membership>`,
:func:`wb.dataset_inference <workbench.training_data.dataset_inference.dataset_inference>`,
:func:`wb.contamination <workbench.training_data.contamination.contamination>` or a registered
check on each model and keeps the result in the same store, with the provenance of any other
cell (model fingerprint, data hash, options, package versions).

A check is a :class:`~workbench.units.UnitSpec` whose inputs are its arguments (``load=None``):
the blind baseline is cross-fitted over all the texts, the exchangeability test permutes the
whole benchmark, so the cell is computed whole and committed in one transaction (its rows, then
what rebuilds the result and its provenance, then "finished"). A cell whose run key has a
finished attempt is rebuilt from the store without touching the model; a cell killed half-way is
computed again (its model scores come back from the scoring cache where it is on).

A check in a grid is a dict: ``"check"`` (or ``"kind"``: ``"membership"``,
``"dataset_inference"``, ``"contamination"`` or a registered name), an optional ``"name"`` (the
cell is task ``"<check>:<name>"``, or ``"<check>"`` without one), and the function's own
arguments, e.g. ``{"check": "membership", "members": [...], "nonmembers": [...], "methods":
["loss", "min_k"]}``. The run key hashes the model state, the check and the CONTENT of its data
(texts, frames, files and folders read byte for byte, a reference model by its state), options,
seed, tag and the workbench version: the same check on changed data is a new cell. A corpus given
as a one-shot iterable (a generator, a streamed data set) cannot be identified by content: give
files, a folder or a list.

Adding a check is one call, :func:`register_check` with :func:`check_unit` (the recipe is in
``docs/architecture.md``).

>>> spec = parse_training({"kind": "membership", "members": ["a b"], "nonmembers": ["c d"]})
>>> spec["kind"], training_task_name(spec)
('membership', 'membership')
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench._version import __version__
from workbench.errors import InvalidInputError
from workbench.models.model import Model
from workbench.training_data.contamination import ContaminationResult, contamination
from workbench.training_data.dataset_inference import DatasetInferenceResult, dataset_inference
from workbench.training_data.membership import MembershipResult, membership
from workbench.units.spec import UnitSpec


# ---- a check as a unit spec -----------------------------------------------------------------
def _arguments(function: Callable) -> dict:
    """The check function's arguments a grid may give (all but the model and the progress bar),
    with their defaults (None where there is none)."""
    params = inspect.signature(function).parameters
    return {k: (None if p.default is p.empty else p.default) for k, p in params.items()
            if k not in ("model", "progress") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _dataclass_save(result) -> tuple[list, dict]:
    """The default ``save``: the result's per-item frame as rows, its other dataclass fields
    (JSON-able values) as what rebuilds it."""
    records = [((str(j), j, None), rec) for j, rec in enumerate(result.frame.to_dict(orient="records"))]
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
              if f.name not in ("frame", "provenance") and not f.name.startswith("_")}
    return records, {"columns": list(result.frame.columns), "fields": fields}


def _dataclass_rebuild(result_type):
    def rebuild(rows, saved, provenance):
        frame = _frame(pd.DataFrame([r for _, _, r in rows]), saved["columns"])
        return result_type(frame=frame, provenance=provenance, **saved["fields"])
    return rebuild


def check_unit(name: str, function: Callable, *, description: str = "", paper: str = "",
               result_type: type | None = None, save: Callable | None = None,
               rebuild: Callable | None = None) -> UnitSpec:
    """A training-data check as a unit spec: ``function(model, ..., progress=None)`` returns a
    result with a per-item ``frame`` and a ``summary()`` whose rows have ``metric`` (optionally
    with a ``method`` or ``test`` column), ``value``, ``ci_low``, ``ci_high``, ``n``, or ``test``,
    ``statistic``, ``p_value``, ``n`` (see :func:`workbench.units.result.result_rows`).

    ``save(result) -> (records, saved)``: ``records`` one ``((id, index, group), record)`` per
    stored row, ``saved`` the JSON-able rest; ``rebuild(rows, saved, provenance)``: the result
    again, from ``rows`` (``(id, group, record)`` in stored order). Both default to the result's
    dataclass fields (give ``result_type``, the dataclass ``function`` returns)."""
    if save is None or rebuild is None:
        if result_type is None or not dataclasses.is_dataclass(result_type):
            raise InvalidInputError(f"check {name!r}: give result_type= (the dataclass its function returns) or "
                                    "both save= and rebuild=, so the runner can store and rebuild its result")
        save, rebuild = save or _dataclass_save, rebuild or _dataclass_rebuild(result_type)
    accepts_cache = "cache" in inspect.signature(function).parameters

    def score(model, items, ctx):
        extra = {"cache": ctx.cache} if accepts_cache else {}
        return function(model, progress=False, **ctx.options, **extra)

    return UnitSpec(name=name, description=description or (function.__doc__ or "").strip().split("\n")[0],
                    load=None, score=score, metrics=lambda options: [], unit="check", kinds=("causal",),
                    defaults=_arguments(function), paper=paper, identity=_identity, result=rebuild, save=save)


# ---- the built-in checks: what each stores and how it is rebuilt ------------------------------
def _save_rows(result) -> tuple[list, dict]:
    return [((str(j), j, None), rec) for j, rec in enumerate(result.items.to_dict(orient="records"))]


def _save_membership(result):
    return _save_rows(result), {"methods": list(result.methods), "n_boot": result.n_boot, "seed": result.seed,
                                "columns": list(result.frame.columns)}


def _rebuild_membership(rows, saved, provenance):
    return MembershipResult(frame=_frame(pd.DataFrame([r for _, _, r in rows]), saved["columns"]),
                            provenance=provenance, methods=tuple(saved["methods"]), n_boot=saved["n_boot"],
                            seed=saved["seed"])


def _save_dataset_inference(result):
    return _save_rows(result), {"details": result.details, "weights": result.weights.to_dict(),
                                "columns": list(result.frame.columns)}


def _rebuild_dataset_inference(rows, saved, provenance):
    return DatasetInferenceResult(frame=_frame(pd.DataFrame([r for _, _, r in rows]), saved["columns"]),
                                  provenance=provenance, details=saved["details"],
                                  weights=pd.Series(saved["weights"], dtype=float))


def _save_contamination(result):
    records, i = [], 0   # each test's per-item frame, its rows grouped by the test
    for test, df in result.items.items():
        for j, rec in enumerate(df.to_dict(orient="records")):
            records.append(((f"{test}:{j}", i, test), rec))
            i += 1
    return records, {"details": result.details, "columns": {t: list(df.columns) for t, df in result.items.items()}}


def _rebuild_contamination(rows, saved, provenance):
    per_test = {test: _frame(pd.DataFrame([r for _, g, r in rows if g == test]), cols)
                for test, cols in saved["columns"].items()}
    return ContaminationResult(frame=pd.DataFrame(saved["details"]), provenance=provenance, items=per_test,
                               details=saved["details"])


def _frame(records: pd.DataFrame, columns: list) -> pd.DataFrame:
    return records.reindex(columns=columns) if len(records) else pd.DataFrame(columns=columns)


CHECKS: dict[str, UnitSpec] = {}


def register_check(spec: UnitSpec, replace: bool = False) -> UnitSpec:
    """Make ``spec`` (from :func:`check_unit`) a training-data check the runner takes by name:
    ``wb.run(models, units=[{"check": spec.name, **arguments}])``."""
    if not isinstance(spec, UnitSpec) or spec.unit != "check":
        raise InvalidInputError("register_check takes a check's unit spec: build it with "
                                "workbench.training_data.checks.check_unit(name, function, result_type=...)")
    if spec.name in CHECKS and not replace:
        raise InvalidInputError(f"a check named {spec.name!r} already exists; pass replace=True to replace it, or "
                                "give yours another name")
    CHECKS[spec.name] = spec
    return spec


def unregister_check(name: str) -> None:
    """Remove a check added with :func:`register_check` (the built-in three stay)."""
    if name in KINDS or CHECKS.pop(name, None) is None:
        raise InvalidInputError(f"no registered check named {name!r}; registered: {sorted(set(CHECKS) - set(KINDS))}")


def get_check(name: str) -> UnitSpec:
    if name not in CHECKS:
        raise InvalidInputError(f"unknown training-data check {name!r}; known: {sorted(CHECKS)}")
    return CHECKS[name]


def parse_training(check) -> dict:
    """``{"kind", "name", **arguments}`` from a training check (``"check"`` is accepted for
    ``"kind"``), checked before any model is loaded."""
    if isinstance(check, dict) and "check" in check and "kind" not in check:
        check = {"kind": check["check"], **{k: v for k, v in check.items() if k != "check"}}
    if not isinstance(check, dict) or check.get("kind") not in CHECKS:
        raise InvalidInputError(f"a training check is a dict with 'kind' one of {sorted(CHECKS)} (or 'check', as "
                                f"units=[...] writes it) and the function's arguments (e.g. {{'check': 'membership', "
                                f"'members': [...], 'nonmembers': [...]}}); got {check!r:.200}")
    spec = {"name": None, **check}
    allowed = get_check(spec["kind"]).defaults
    unknown = sorted(k for k in spec if k not in ("kind", "name") and k not in allowed)
    if unknown:
        raise InvalidInputError(f"{spec['kind']} check: unknown argument(s) {unknown}; it takes {sorted(allowed)}")
    return spec


def training_task_name(spec: dict) -> str:
    return spec["kind"] + (f":{spec['name']}" if spec.get("name") else "")


# ---- identity: the content of the data, not where it lies ----------------------------------
def _file_digest(path: Path, h) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def canonical(value, what: str = "argument", paths: str = "top"):
    """A JSON-able stand-in for an argument that changes when its CONTENT changes: data frames as
    records, existing files and folders as the hash of their bytes, models by their state.
    ``paths``: where a string naming an existing file or folder is read as one: ``"top"`` (the
    argument itself: a data file), ``"all"`` (list elements too: a corpus of files), ``"none"``
    (a text that happens to name a file stays a text)."""
    if isinstance(value, Model):
        return {"model": value.name, "state_id": value.state_id}
    if isinstance(value, pd.DataFrame):
        return {"frame": json.loads(value.to_json(orient="split", date_format="iso"))}
    if isinstance(value, pd.Series):
        return {"series": value.tolist()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if paths != "none" and (isinstance(value, Path) or (isinstance(value, str) and len(value) < 4096
                                                        and "\n" not in value and os.path.exists(value))):
        p, h = Path(value), hashlib.sha256()
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in files:
            h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
            _file_digest(q, h)
        return {"path": str(value), "sha256": h.hexdigest()}
    inner = "all" if paths == "all" else "none"
    if isinstance(value, dict):
        return {str(k): canonical(v, what, inner) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v, what, inner) for v in value]
    if value is None or isinstance(value, (str, bool, int, float, np.integer, np.floating, np.bool_)):
        return value.item() if hasattr(value, "item") else value
    if type(value).__name__ == "Task":
        return {"task": value.name, "hash": value.hash}
    raise InvalidInputError(f"{what}: a stored training check needs its data as texts, a list, a DataFrame, files or "
                            f"a folder (to identify it by content); got a {type(value).__name__}. Read it into a "
                            "list first (e.g. list(iterable))")


def _ident(spec: dict) -> dict:
    args = {k: canonical(v, f"{spec['kind']} argument {k!r}", "all" if k == "corpus" else "top")
            for k, v in spec.items() if k not in ("kind", "name")}
    return {"kind": spec["kind"], "name": spec.get("name"), "arguments": args}


def _compact(ident: dict) -> dict:
    """The identity as stored with the run: options as given, data (anything long) as its hash and
    size (the texts themselves are in the cell's rows)."""
    def small(v):
        s = json.dumps(v, sort_keys=True, default=str)
        return v if len(s) <= 400 else {"sha256": hashlib.sha256(s.encode()).hexdigest()[:16], "chars": len(s)}
    return {**ident, "arguments": {k: small(v) for k, v in ident["arguments"].items()}}


def training_run_key(model, spec: dict, seed: int, tag: str) -> tuple[str, str]:
    """(run key, data hash) of a training cell: model state x kind, data content, options x seed x tag."""
    ident = _ident(spec)
    blob = json.dumps(ident, sort_keys=True, default=str)
    key = hashlib.sha256(json.dumps([model.state_id, blob, int(seed), tag, __version__]).encode())
    return key.hexdigest()[:16], hashlib.sha256(blob.encode()).hexdigest()[:16]




def _identity(model, work, limit, seed, tag) -> tuple[str, str]:
    """A check cell's run key and data hash (the ``identity`` of a check's unit spec)."""
    check = {"kind": work.spec.name, "name": work.given_name, "seed": seed, **work.options}  # its own seed wins
    return training_run_key(model, check, seed, tag)


def stored_identity(spec: dict) -> dict:
    """What a check cell stores of its identity (options as given, long data as its hash)."""
    return _compact(_ident(spec))


# ---- the built-in checks, registered -----------------------------------------------------------
KINDS = ("membership", "dataset_inference", "contamination")
for _name, _fn, _save, _rebuild, _paper in (
        ("membership", membership, _save_membership, _rebuild_membership,
         "membership-inference attacks beside a cross-fitted blind baseline"),
        ("dataset_inference", dataset_inference, _save_dataset_inference, _rebuild_dataset_inference,
         "Maini et al. 2024, LLM Dataset Inference"),
        ("contamination", contamination, _save_contamination, _rebuild_contamination,
         "Oren et al. 2023 (exchangeability) and other contamination tests")):
    register_check(check_unit(_name, _fn, save=_save, rebuild=_rebuild, paper=_paper))

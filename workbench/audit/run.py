"""``wb.audit``: one audit of 2 to 10 models, from an audit file or arguments, to a published card.

The steps, each printed as it finishes (:class:`~workbench.audit.progress.Reporter`):

1. **Plan** (with ``detect``): a seeded pilot and the sample size each probe needs
   (:mod:`workbench.audit.plan`); ``plan=True`` stops here.
2. **Per model**, one in memory at a time: load it; the fidelity check where its backend has
   hooks (else a recorded skip and why); its documentation; every probe and task through the
   runner into the audit's store (resumable item by item); the chat readings and the
   contamination check where the audit asks for them (also runner cells).
3. **Lineage** of every pair of models (or each against the reference), two in memory at a time.
4. **Findings**: every pair (or each model against ``reference``) on every probe and task, one
   headline table, Holm across all its rows (:mod:`workbench.audit.findings`).
5. **Deployment**: pairs that are one model run two ways (:mod:`workbench.audit.deployment`), and
   how far each deployed computation is from its reference (:mod:`workbench.audit.agreement`).
6. **Power achieved** and the card, the report, the ML-BOM (:mod:`workbench.audit.outputs`).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from workbench.audit.agreement import agreement_of
from workbench.audit.card import AuditCard
from workbench.audit.grid import unit_of
from workbench.audit.outputs import finish
from workbench.audit.plan import make_plan, pilot, plan_text
from workbench.audit.progress import Reporter
from workbench.audit.result import Audit
from workbench.audit.sections import (chat_findings, deployment_of, findings_of, lineage_of_pairs, loader, one_model,
                                      pairs_of)
from workbench.audit.spec import AuditSpec, UnitChoice, _unit_entries, parse_spec, unit_choice
from workbench.bench.executor_ray import run_grid_ray
from workbench.bench.store import open_store
from workbench.errors import InvalidInputError, StoreError
from workbench.progress import ENV as PROGRESS_ENV

STORE_NAME = "audit_store.db"


def audit(spec=None, *, models=None, probes=None, tasks=None, limit=None, out="out/audit", detect=None,
          plan: bool = False, reference=None, deployment=None, store=None, executor=None, seed=None, data=None,
          progress: bool = True) -> Audit:
    """Audit 2 to 10 models: bias probes and tasks compared pair by pair with paired tests, how
    each model was made, and, where two specs are one model run two ways, what flips between them.

    Parameters
    ----------
    spec : an audit file (path), its YAML text, a mapping, or None: the flagship audit of the
        embedded models (``workbench/audit/flagship.yaml``). The keywords below override it.
    models : specs as ``wb.load_model`` takes them, ``"SPEC@BACKEND"`` to pick the backend
        (``"smollm2-135m-instruct@llama.cpp"``); 2 to 10.
    probes, tasks : names (``wb.list_probes()``, ``wb.tasks.list_tasks()``).
    limit : items per probe (per group for a task: pairs per BLiMP paradigm); None: all.
    out : folder for ``audit_card.json``, ``report.html``, ``ml_bom.json`` and the store.
    detect : plan sample sizes so a paired difference of ``detect`` points is found with 80% power.
    plan : with ``detect``, print the plan and stop.
    reference : compare each model with this one only (default: every pair).
    deployment : pairs ``[(A, B), ...]`` (or ``"A,B"``) declared to be one model, A as published and
        B as deployed: the deployment section compares them even where the files do not show it.
    store : the results store (default ``out/audit_store.db``): an interrupted audit resumes from it.
    executor : ``"local"`` or ``"ray"`` (scoring cells spread over a Ray cluster).

    Returns an :class:`~workbench.audit.result.Audit`: ``.findings()``, ``.deployment()``,
    ``.plan``, ``.card`` (and the files in ``out``).

    Example
    -------
    >>> import workbench as wb                                                # doctest: +SKIP
    >>> a = wb.audit(models=["smollm2-135m-instruct", "gemma-3-270m"], probes=["crows_pairs"],
    ...              tasks=["blimp"], limit=20, out="out/small")              # doctest: +SKIP
    >>> a.findings()[["metric", "model_a", "model_b", "difference", "p_adjusted", "n"]]  # doctest: +SKIP
    """
    if not isinstance(plan, bool) or not isinstance(progress, bool):
        raise InvalidInputError("plan and progress are True or False")
    parsed = parse_spec(spec, models=models, probes=probes, tasks=tasks, limit=limit, detect=detect,
                        reference=reference, deployment=deployment, executor=executor, seed=seed, data=data)
    return run_audit(parsed, out=out, store=store, plan_only=plan, progress=progress)


# ---- the door ---------------------------------------------------------------------------------
def open_audit_store(spec: AuditSpec, path: Path):
    """The audit's store, marked with the audit's identity; a store of another audit (other models
    or seed) or a plain results store is refused before anything is scored."""
    store = open_store(path)
    identity = spec.identity()
    held = store.meta("audit")
    if held is None and not store.runs().empty:
        raise StoreError(f"the store {path} holds results that are not this audit's (no audit recorded in it): give "
                         "the audit its own store (--store PATH, or another --out)")
    # a store claimed by an audit that stopped before scoring anything holds nothing to lose
    held = store.claim("audit", identity, replace=store.runs().empty)
    if held != identity:
        raise StoreError(f"the store {path} holds another audit's results (other models or seed: audit {held}, this "
                         f"one {identity}): give this audit its own store (--store PATH, or another --out)")
    return store


def check_servers(spec: AuditSpec) -> None:
    """A served model's server must answer before anything is scored (its URL in the error)."""
    for m in spec.models:
        if m.backend == "openai":
            m.load()  # the loader's first contact gives up within its connect timeout, naming the URL


def chat_units(spec: AuditSpec, key: str) -> list[UnitChoice]:
    return [unit_choice(n, o, "probe", None) for n, o in _unit_entries((spec.chat or {}).get(key), "probe")]


# ---- the audit ---------------------------------------------------------------------------------
def run_audit(spec: AuditSpec, out=None, store=None, plan_only: bool = False, progress: bool = True,
              stream=None) -> Audit:
    """Run a parsed audit (see :func:`audit`)."""
    say = Reporter(stream=stream, enabled=progress)
    out = Path(out or "out/audit").expanduser()
    saved = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "0"  # the audit prints its own lines; no bar of the engine's under them
    try:
        return _run(spec, out, store, plan_only, say)
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = saved


def check_door(spec: AuditSpec, out, store=None):
    """Everything that can be checked before a model is loaded: each probe's data, the store (this
    audit's, or new), the servers of served models. Returns (units, chat units, generate units,
    store path, open store)."""
    if out is None:
        raise InvalidInputError("an audit needs an output folder (out=...)")
    units = [unit_of(spec, u) for u in spec.units]
    chat = [unit_of(spec, u, fmt) for u in chat_units(spec, "probes") for fmt in ("raw", "chat")]
    generate = [unit_of(spec, u) for u in chat_units(spec, "generate")]
    check_servers(spec)
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    store_path = Path(store or spec.store or out / STORE_NAME).expanduser()
    db = open_audit_store(spec, store_path)
    return units, chat, generate, store_path, db


def _run(spec: AuditSpec, out: Path, store, plan_only: bool, say: Reporter) -> Audit:
    if plan_only and spec.detect is None:
        raise InvalidInputError("plan=True (--plan) prints the sample sizes that --detect D asks for: give detect")
    units, chat, generate, store_path, db = check_door(spec, out, store)
    say.done("Audit", f"{len(spec.models)} models, {len(units)} probes and tasks, store {store_path.name}")

    planned = None
    if spec.detect is not None:
        t0 = time.perf_counter()
        run = pilot(spec, units, db, say, loader(say))
        planned = make_plan(spec, units, run)
        say.say(plan_text(planned))
        say.done("Plan", f"pilot of {spec.pilot} items per probe and model", time.perf_counter() - t0)
        if plan_only:
            return Audit(spec=spec, card=None, plan=planned, out=out, store=store_path)
    limits = {u.name: (planned.set_index("unit").loc[u.name, "limit"] if planned is not None else u.choice.limit)
              for u in units}
    limits = {k: None if v is None else int(v) for k, v in limits.items()}

    card = AuditCard(spec.title, question=spec.question, authors=spec.authors, method=spec.method or _method(spec, units, limits))
    state = {"cells": {}, "skipped": [], "docs": {}, "fingerprints": {}, "backends": {}, "contamination": {}}
    if spec.executor == "ray":
        _score_on_ray(spec, units, limits, store_path, say)
    t_models = time.perf_counter()
    for m in spec.models:
        one_model(spec, m, units, chat, generate, limits, db, card, state, say)
    say.done("Models", f"{len(spec.models)} models scored, documented and checked", time.perf_counter() - t_models)
    t0 = time.perf_counter()
    lineages = lineage_of_pairs(spec, card, state, say)
    say.done("Lineage", f"{len(lineages)} pairs", time.perf_counter() - t0)
    t0 = time.perf_counter()
    comparisons = findings_of(spec, units, card, state)
    chat_findings(spec, chat, generate, card, state)
    say.done("Findings", f"{len(card.data['findings'])} rows, Holm-adjusted together", time.perf_counter() - t0)
    t0 = time.perf_counter()
    card.data["deployment"] = deployment_of(spec, units, state, lineages, comparisons)
    say.done("Deployment", f"{len({(d['model_a'], d['model_b']) for d in card.data['deployment']})} pairs of one "
             "model run two ways" if card.data["deployment"] else "no two specs are one model", time.perf_counter() - t0)
    if card.data["deployment"]:
        t0 = time.perf_counter()
        card.data["agreement"] = agreement_of(spec, card.data["deployment"], state, say)
        say.done("Agreement", ", ".join(f"{e['model_b']}: {e['verdict']}" for e in card.data["agreement"])
                 or "no pair could be compared", time.perf_counter() - t0)
    t0 = time.perf_counter()
    paths = finish(spec, card, state, units, limits, planned, out, store_path)
    say.done("Report", ", ".join(p.name for p in paths.values()), time.perf_counter() - t0)
    return Audit(spec=spec, card=card, plan=planned, out=out, store=store_path, cells=state["cells"], paths=paths)


def _method(spec: AuditSpec, units, limits) -> str:
    sizes = ", ".join(f"{u.title} {('all' if limits[u.name] is None else limits[u.name])}"
                      f"{' per group' if u.is_task and limits[u.name] else ''}" for u in units)
    return (f"Every model scores the same seeded items (seed {spec.seed}): {sizes}, each by (continuation) "
            "log-likelihood through its own backend. Proportions get exact Clopper-Pearson intervals; paired "
            "differences McNemar's exact test or an exact sign-flip permutation test, Holm-adjusted across the "
            "headline table.")


def _score_on_ray(spec, units, limits, store_path, say) -> None:
    """Score every (model, unit) cell on a Ray cluster first; the local pass then reads them back."""
    t0 = time.perf_counter()
    for limit in sorted(set(limits.values()), key=lambda v: -1 if v is None else v):
        work = [u.work for u in units if limits[u.name] == limit]
        run_grid_ray([(m.label, m) for m in spec.models], work, str(store_path), limit=limit, seed=spec.seed, tag="",
                     chunk_size=64, score_kwargs=None)
    say.done("Scoring on Ray", f"{len(spec.models) * len(units)} cells", time.perf_counter() - t0)

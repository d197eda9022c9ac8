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
5. **Deployment**: pairs that are one model run two ways (:mod:`workbench.audit.deployment`).
6. **Power achieved** and the card, the report, the ML-BOM (:mod:`workbench.audit.outputs`).
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from workbench.audit import deployment as dep
from workbench.audit import power as pw
from workbench.audit.card import AuditCard
from workbench.audit.findings import finding_from_frames
from workbench.audit.grid import MAX_CATEGORIES, AuditUnit, comparable, points, run_cell, unit_of
from workbench.audit.plan import make_plan, pilot, plan_text
from workbench.audit.progress import Reporter
from workbench.audit.result import Audit
from workbench.audit.spec import AuditSpec, UnitChoice, _unit_entries, parse_spec, unit_choice
from workbench.bench.store import open_store
from workbench.errors import InvalidInputError, StoreError, WorkbenchError
from workbench.progress import ENV as PROGRESS_ENV
from workbench.stats import compare

STORE_NAME = "audit_store.db"


def audit(spec=None, *, models=None, probes=None, tasks=None, limit=None, out="out/audit", detect=None,
          plan: bool = False, reference=None, store=None, executor=None, seed=None, data=None,
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
                        reference=reference, executor=executor, seed=seed, data=data)
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
        run = pilot(spec, units, db, say, _loader(say))
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
        _one_model(spec, m, units, chat, generate, limits, db, card, state, say)
    say.done("Models", f"{len(spec.models)} models scored, documented and checked", time.perf_counter() - t_models)
    t0 = time.perf_counter()
    lineages = _lineage(spec, card, state, say)
    say.done("Lineage", f"{len(lineages)} pairs", time.perf_counter() - t0)
    t0 = time.perf_counter()
    comparisons = _findings(spec, units, card, state)
    _chat_findings(spec, chat, generate, card, state)
    say.done("Findings", f"{len(card.data['findings'])} rows, Holm-adjusted together", time.perf_counter() - t0)
    t0 = time.perf_counter()
    card.data["deployment"] = _deployment(spec, units, state, lineages, comparisons)
    say.done("Deployment", f"{len({(d['model_a'], d['model_b']) for d in card.data['deployment']})} pairs of one "
             "model run two ways" if card.data["deployment"] else "no two specs are one model", time.perf_counter() - t0)
    from workbench.audit.outputs import finish
    t0 = time.perf_counter()
    paths = finish(spec, card, state, units, limits, planned, out, store_path)
    say.done("Report", ", ".join(p.name for p in paths.values()), time.perf_counter() - t0)
    return Audit(spec=spec, card=card, plan=planned, out=out, store=store_path, cells=state["cells"], paths=paths)


def first_load_note(m) -> str:
    """What a first load will do that takes long: an embedded GGUF not yet de-quantised into the
    cache (hf backend); a .gguf file on the hf backend may be (its hash is not computed here)."""
    if m.backend != "hf":
        return ""
    from workbench.models.gguf_cache import MARKER, cached_folder
    from workbench.models.registry import EMBEDDED
    entry = EMBEDDED.get(m.spec)
    if entry is not None and entry.sha256 and not (cached_folder(entry.sha256) / MARKER).exists():
        return ": first use, its GGUF is de-quantised and cached once (a minute or two)"
    if str(m.spec).lower().endswith(".gguf"):
        return ": a .gguf file is de-quantised and cached on its first use (a minute or two)"
    return ""


def _loader(say):
    def load(m):
        t0 = time.perf_counter()
        say.say(f"  loading {m.label} ({m.backend} backend{first_load_note(m)}) ...")
        model = m.load()
        say.say(f"  {m.label}: loaded in {time.perf_counter() - t0:.0f} s, fingerprint {model.fingerprint_id}")
        return model
    return load


def _method(spec: AuditSpec, units, limits) -> str:
    sizes = ", ".join(f"{u.title} {('all' if limits[u.name] is None else limits[u.name])}"
                      f"{' per group' if u.is_task and limits[u.name] else ''}" for u in units)
    return (f"Every model scores the same seeded items (seed {spec.seed}): {sizes}, each by (continuation) "
            "log-likelihood through its own backend. Proportions get exact Clopper-Pearson intervals; paired "
            "differences McNemar's exact test or an exact sign-flip permutation test, Holm-adjusted across the "
            "headline table.")


def _score_on_ray(spec, units, limits, store_path, say) -> None:
    """Score every (model, unit) cell on a Ray cluster first; the local pass then reads them back."""
    from workbench.bench.executor_ray import run_grid_ray
    t0 = time.perf_counter()
    for limit in sorted(set(limits.values()), key=lambda v: -1 if v is None else v):
        work = [u.work for u in units if limits[u.name] == limit]
        run_grid_ray([(m.label, m) for m in spec.models], work, str(store_path), limit=limit, seed=spec.seed, tag="",
                     chunk_size=64, score_kwargs=None)
    say.done("Scoring on Ray", f"{len(spec.models) * len(units)} cells", time.perf_counter() - t0)


@contextlib.contextmanager
def _recorded(state, section: str, model: str, say):
    """A section that cannot be done for one model (a WorkbenchError: its reason is the message)
    is a recorded skip; the audit goes on and keeps everything computed."""
    try:
        yield
    except WorkbenchError as e:
        _skip(state, section, model, " ".join(str(e).split()), say)


def _skip(state, section: str, model: str, reason: str, say) -> None:
    state["skipped"].append({"section": section, "model": model, "reason": reason})
    say.say(f"  {section} on {model}: skipped ({reason})")


def _one_model(spec, m, units, chat, generate, limits, db, card, state, say) -> None:
    t0 = time.perf_counter()
    model = _loader(say)(m)
    card.add_model(model)
    card.data["models"][-1]["name"] = m.label           # the spec as given names it everywhere
    card.data["models"][-1]["backend"] = m.backend
    state["fingerprints"][m.label], state["backends"][m.label] = dict(model.fingerprint), m.backend
    if "hooks" in model.backend.capabilities:
        from workbench.inspect import verify
        with _recorded(state, "fidelity", m.label, say):
            card.add_fidelity(model, verify(model))
            card.data["fidelity"][-1]["model"] = m.label
    else:
        _skip(state, "fidelity", m.label, f"the {m.backend} backend has no hooks: the fidelity check (hooks leave the "
              "outputs unchanged) concerns inspection, which runs on backend='hf'; no number here is read through "
              "hooks", say)
    from workbench.provenance_audit import documentation
    with _recorded(state, "documentation", m.label, say):
        doc = documentation(model)
        card.add_documentation(doc)
        card.data["made"]["documentation"][-1]["model"] = m.label
        state["docs"][m.label] = doc.to_cyclonedx()
    for u in units:
        _cell(model, m.label, u, limits[u.name], db, spec, state, say)
    if m.label in _chat_models(spec, model):
        for u in chat + generate:
            label = f"{m.label} ({u.work.name.partition('[')[2].rstrip(']') or 'chat'})" if u in chat else m.label
            _cell(model, label, u, u.choice.limit, db, spec, state, say, key=(m.label, u.name))
    if spec.contamination is not None and "causal" == model.kind:
        _contamination(spec, m.label, model, units, db, card, state, say)
    del model
    gc.collect()
    say.done(f"Model {m.label}", "", time.perf_counter() - t0)


def _chat_models(spec, model) -> list[str]:
    if not spec.chat:
        return []
    from workbench.scoring.chat import has_template
    named = spec.chat.get("models")
    label = model.name
    if named is not None:
        return [label] if label in named else []
    return [label] if has_template(model) else []


def _cell(model, label, u: AuditUnit, limit, db, spec, state, say, key=None) -> None:
    key = key or (label, u.name)
    try:
        cell = run_cell(model, label, u, db, limit=limit, seed=spec.seed, progress=say.scoring(u.name, label))
    except WorkbenchError as e:  # this model cannot run this unit: recorded, the rest goes on
        _skip(state, u.title, label, " ".join(str(e).split()), say)
        return
    state["cells"][key] = cell


def _contamination(spec, label, model, units, db, card, state, say) -> None:
    """The exchangeability test on one probe's items in data order (the audited sample, or
    ``items: all``), through the runner (a check cell), with its power."""
    conf = dict(spec.contamination)
    probes = [u for u in units if not u.is_task]
    name = conf.get("probe") or (probes[0].choice.name if probes else None)
    u = next((x for x in probes if x.choice.name == name), None)
    if u is None:
        _skip(state, "contamination", label, f"the probe {name!r} it reads is not audited here", say)
        return
    items = _contamination_items(u, label, model, conf.get("items", "audited"), state)
    column = conf.get("column") or next((c for c in ("sent_more", "text", "sentence", "context", "prompt", "question")
                                         if c in items.columns), None)
    if column is None or column not in items.columns:
        _skip(state, "contamination", label, f"no text column {column!r} in {u.title}'s items", say)
        return
    texts = [str(t) for t in items[column].tolist()]
    shards = fitting_shards(model, texts, int(conf.get("items_per_shard", 20)))
    permutations = conf.get("permutations", "auto")
    if permutations in (None, "auto"):  # enough shuffled orders that p can reach 0.05, at most 19
        permutations = min(19, max(1, int(np.ceil(20 ** (1 / shards))) - 1))
    from workbench.bench.cells import resolve_unit
    work = resolve_unit({"check": "contamination", "name": u.choice.name, "benchmark": texts,
                         "tests": ["exchangeability"], "n_shards": shards, "n_permutations": int(permutations),
                         "seed": spec.seed})
    try:
        cell = _run_check(model, label, work, db, spec, say)
    except WorkbenchError as e:
        _skip(state, "contamination", label, " ".join(str(e).split()), say)
        return
    result = cell["result"]
    power = result.power()
    delta = power.attrs.get("delta_80")
    state["contamination"][label] = {"n": len(texts), "shards": shards, "permutations": int(permutations),
                                     "delta_80": delta, "probe": u.title}
    card.add_training_data(f"{u.title} exchangeability / {label}", result,
                           note=f"{column} of {len(texts)} {u.title} items in data order "
                                f"({'every item' if conf.get('items') == 'all' else 'the audited items'}), {shards} "
                                f"shards, each against {int(permutations)} shuffled order(s); delta_80: the preference "
                                "for the data's order (nats per item) found 80% of the time at 0.05, simulated on the "
                                "model's own scores")


def fitting_shards(model, texts: list[str], per_shard: int) -> int:
    """Shards of about ``per_shard`` texts, more where a shard would not fit the model's scoring
    window (a shard is scored as one text: its texts joined by newlines)."""
    from workbench.validate import context_window
    window = int(0.95 * (context_window(model) or 2048))
    lengths = np.array([len(ids) + 1 for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]])
    def longest(k):  # the shards the test cuts: contiguous, of near-equal size
        edges = np.linspace(0, len(lengths), k + 1).round().astype(int)
        return max(int(lengths[lo:hi].sum()) for lo, hi in zip(edges[:-1], edges[1:])) + 2
    shards = max(1, len(texts) // max(1, per_shard))
    while shards < len(texts) // 2 and longest(shards) > window:
        shards += 1
    return shards


def _run_check(model, label, work, db, spec, say):
    from workbench.bench.cells import run_unit_cell
    t0 = time.perf_counter()
    cell = run_unit_cell(model, label, work, db, seed=spec.seed, progress=False)
    say.say(f"  {work.name} | {label}: done in {time.perf_counter() - t0:.0f} s")
    return cell


def _contamination_items(u, label, model, which, state):
    if which == "all":
        from workbench.units.run import prepare_unit
        return prepare_unit(u.work.spec, model, data=u.work.data, limit=None, **u.work.options).items
    cell = state["cells"].get((label, u.name))
    if cell is None:
        raise InvalidInputError(f"{u.title} did not run on {label}")
    items = comparable(cell).items
    return items.head(int(which)) if isinstance(which, int) else items


# ---- pairs --------------------------------------------------------------------------------------
def pairs_of(spec: AuditSpec) -> list[tuple[str, str]]:
    """Every pair in the order the models are listed, or (model, reference) for each model."""
    labels = [m.label for m in spec.models]
    if spec.reference:
        return [(x, spec.reference) for x in labels if x != spec.reference]
    return list(itertools.combinations(labels, 2))


def _lineage(spec, card, state, say) -> dict:
    """wb.lineage of every pair, at most two models in memory (the first of a pair kept while its
    partners are loaded in turn)."""
    from workbench.provenance_audit import lineage
    loaded: dict = {}
    out = {}
    load = _loader(Reporter(enabled=False))
    for a, b in pairs_of(spec):
        for label in (a, b):
            if label not in loaded:
                while len(loaded) >= 2:
                    drop = next(k for k in loaded if k not in (a, b))
                    del loaded[drop]
                    gc.collect()
                loaded[label] = load(spec.model(label))
        with _recorded(state, "lineage", f"{a} vs {b}", say):
            res = lineage(loaded[a], loaded[b])
            card.add_lineage(res)
            card.data["made"]["lineage"][-1].update(model_a=a, model_b=b)
            out[a, b] = res.verdict
            say.say(f"  lineage {a} vs {b}: {res.verdict}")
    loaded.clear()
    gc.collect()
    return out


def _findings(spec, units, card, state) -> dict:
    """One headline row per (unit, pair): the unit's metric, paired on the same items."""
    comparisons = {}
    for u in units:
        metric = u.metric()
        scale = points(metric)
        for a, b in pairs_of(spec):
            ca, cb = state["cells"].get((a, u.name)), state["cells"].get((b, u.name))
            if ca is None or cb is None:
                continue
            frame = compare(comparable(ca), comparable(cb))
            comparisons[a, b, u.name] = frame
            entry = _entry(u.title, metric, ca, cb, frame, a, b, scale)
            entry["unit_key"] = u.name
            card.add_finding(u.title, entry=entry)
    return comparisons


def _entry(title, metric, ca, cb, frame, a, b, scale) -> dict:
    from workbench.audit.findings import _sd_of_differences
    compa, compb = comparable(ca), comparable(cb)
    sa, sb = ca["result"].summary(), cb["result"].summary()
    n_cats = frame[(frame.metric == metric.name) & (frame.category != "all")].category.nunique()
    if n_cats > MAX_CATEGORIES:       # e.g. BLiMP's 67 paradigms of a few pairs: overall only
        frame = frame[frame.category == "all"]
    sd = _sd_of_differences(compa, compb, metric)
    entry = finding_from_frames(title, metric.name, sa, sb, frame, a, b, ideal=metric.ideal,
                                description=metric.description, sd_diff=sd, scale=scale,
                                unit="points" if metric.kind == "binary" else "")
    if metric.kind == "binary":   # the exact McNemar answer, at the discordance measured on these items
        from workbench.stats.compare import _align
        from workbench.stats.metrics import columns_of
        psi, n = pw.discordance(metric.counted(columns_of(compa.items.reset_index(drop=True), [metric])),
                                metric.counted(columns_of(_align(compa, compb), [metric])))
        mde = pw.mcnemar_detectable(n, psi) if n and np.isfinite(psi) else None
        entry["mde"] = None if mde is None else mde * metric.scale * scale
        entry["discordance"] = None if not np.isfinite(psi) else psi
        entry["mde_method"] = "McNemar exact (power by enumeration) at the measured discordance"
    return entry


def _chat_findings(spec, chat, generate, card, state) -> None:
    """Raw vs chat of each chat model on the same items, and the generated answers beside them."""
    for m in spec.models:
        for raw, chat_u in zip(chat[::2], chat[1::2]):
            cr, cc = state["cells"].get((m.label, raw.name)), state["cells"].get((m.label, chat_u.name))
            if cr is None or cc is None:
                continue
            for fmt, cell in (("raw", cr), ("chat", cc)):
                card.add_result(f"{raw.title} ({fmt}) / {m.label}", cell["result"])
            metric = raw.metric()
            frame = compare(comparable(cc), comparable(cr))
            card.add_result(f"chat vs raw: {raw.title} / {m.label}", frame,
                            note=f"diff = chat - raw, {m.label}, the same {len(comparable(cr).items)} items")
            entry = _entry(f"{raw.title}: chat vs raw", metric, cc, cr, frame, f"{m.label} (chat)", f"{m.label} (raw)",
                           points(metric))
            entry["unit_key"] = raw.name
            card.add_finding(entry["name"], entry=entry)
        for g in generate:
            cell = state["cells"].get((m.label, g.name))
            if cell is None:
                continue
            card.add_result(f"{g.work.name.removeprefix('probe:')} / {m.label}", cell["result"])
            bbq_chat = next((state["cells"].get((m.label, c.name)) for c in chat
                             if c.choice.name == "bbq" and c.name.endswith("[chat]")), None)
            if g.choice.name == "bbq_generative" and bbq_chat is not None:
                from workbench.probes.bbq_generative import compare_readings
                both = compare_readings(cell["result"], bbq_chat["result"])
                card.add_result("BBQ: generative vs log-likelihood agreement", both["agreement"])
                card.add_result("BBQ: generative vs log-likelihood", both["compare"],
                                note="diff = generative - log-likelihood (chat), paired by item")


def _deployment(spec, units, state, lineages, comparisons) -> list[dict]:
    """Flip analysis for every pair the evidence shows to be one model run two ways."""
    from workbench.stats.compare import _align
    entries = []
    labels = [m.label for m in spec.models]
    for a, b in itertools.combinations(labels, 2):
        verdict = lineages.get((a, b)) or lineages.get((b, a))
        why = dep.same_model(state["fingerprints"][a], state["fingerprints"][b], verdict)
        if why is None:
            continue
        ref, other = dep.reference_of(a, b, state["backends"], spec.reference)
        for u in units:
            metric = u.decision_metric()
            cr, co = state["cells"].get((ref, u.name)), state["cells"].get((other, u.name))
            if metric is None or cr is None or co is None:
                continue
            compr, compo = comparable(cr), comparable(co)
            ref_items = compr.items.reset_index(drop=True)
            entry = dep.flip_analysis(u.name, u.title, metric, ref_items, _align(compr, compo), compr.category)
            change = compare(compo, compr)                   # deployed - reference, every metric, in points
            change = change[change.category == "all"].copy()
            scale = {m.name: points(m) for m in u.metrics()}
            for col in ("diff", "ci_low", "ci_high"):
                change[col] = change[col] * change.metric.map(scale).fillna(1.0)
            entry.update(model_a=ref, model_b=other, evidence=why, lineage=verdict,
                         changes=json.loads(change[["metric", "diff", "ci_low", "ci_high", "p_value", "n",
                                                    "test"]].to_json(orient="records")))
            entries.append(entry)
    return entries

"""What the audit does for each model and each pair of models: the per-model sections (fidelity,
documentation, every probe and task through the runner, the chat readings, the contamination
check), lineage, the headline findings, and the deployment flips. A section that cannot be done
for one model is a recorded skip (:func:`recorded`); the audit goes on and keeps what it computed.

``state`` is what the run gathers: ``cells`` ({(model, unit): runner cell}), ``skipped``, ``docs``
(each model's ML-BOM), ``fingerprints``, ``backends``, ``contamination``.
"""
from __future__ import annotations

import contextlib
import gc
import itertools
import json
import time

import numpy as np

from workbench.audit import deployment as dep
from workbench.audit import power as pw
from workbench.audit.findings import _sd_of_differences, finding_from_frames
from workbench.audit.grid import MAX_CATEGORIES, AuditUnit, comparable, points, run_cell
from workbench.audit.progress import Reporter
from workbench.audit.spec import AuditSpec
from workbench.bench.cells import resolve_unit, run_unit_cell
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.inspect import verify
from workbench.models.gguf_cache import MARKER, cached_folder
from workbench.models.registry import EMBEDDED
from workbench.probes.bbq_generative import compare_readings
from workbench.provenance_audit import documentation, lineage
from workbench.scoring.chat import has_template
from workbench.stats import compare
from workbench.stats.compare import _align
from workbench.stats.metrics import columns_of
from workbench.units.run import prepare_unit
from workbench.validate import context_window


def first_load_note(m) -> str:
    """What a first load will do that takes long: an embedded GGUF not yet de-quantised into the
    cache (hf backend); a .gguf file on the hf backend may be (its hash is not computed here)."""
    if m.backend != "hf":
        return ""
    entry = EMBEDDED.get(m.spec)
    if entry is not None and entry.sha256 and not (cached_folder(entry.sha256) / MARKER).exists():
        return ": first use, its GGUF is de-quantised and cached once (a minute or two)"
    if str(m.spec).lower().endswith(".gguf"):
        return ": a .gguf file is de-quantised and cached on its first use (a minute or two)"
    return ""


def loader(say):
    def load(m):
        t0 = time.perf_counter()
        say.say(f"  loading {m.label} ({m.backend} backend{first_load_note(m)}) ...")
        model = m.load()
        say.say(f"  {m.label}: loaded in {time.perf_counter() - t0:.0f} s, fingerprint {model.fingerprint_id}")
        return model
    return load


@contextlib.contextmanager
def recorded(state, section: str, model: str, say):
    """A section that cannot be done for one model (a WorkbenchError: its reason is the message)
    is a recorded skip; the audit goes on and keeps everything computed."""
    try:
        yield
    except WorkbenchError as e:
        skip(state, section, model, " ".join(str(e).split()), say)


def skip(state, section: str, model: str, reason: str, say) -> None:
    state["skipped"].append({"section": section, "model": model, "reason": reason})
    say.say(f"  {section} on {model}: skipped ({reason})")


def one_model(spec, m, units, chat, generate, limits, db, card, state, say) -> None:
    t0 = time.perf_counter()
    model = loader(say)(m)
    card.add_model(model)
    card.data["models"][-1]["name"] = m.label           # the spec as given names it everywhere
    card.data["models"][-1]["backend"] = m.backend
    state["fingerprints"][m.label], state["backends"][m.label] = dict(model.fingerprint), m.backend
    if "hooks" in model.backend.capabilities:
        with recorded(state, "fidelity", m.label, say):
            card.add_fidelity(model, verify(model))
            card.data["fidelity"][-1]["model"] = m.label
    else:
        skip(state, "fidelity", m.label, f"the {m.backend} backend has no hooks: the fidelity check (hooks leave the "
              "outputs unchanged) concerns inspection, which runs on backend='hf'; no number here is read through "
              "hooks", say)
    with recorded(state, "documentation", m.label, say):
        doc = documentation(model)
        card.add_documentation(doc)
        card.data["made"]["documentation"][-1]["model"] = m.label
        state["docs"][m.label] = doc.to_cyclonedx()
    for u in units:
        score_cell(model, m.label, u, limits[u.name], db, spec, state, say)
    if m.label in chat_models(spec, model):
        for u in chat + generate:
            label = f"{m.label} ({u.work.name.partition('[')[2].rstrip(']') or 'chat'})" if u in chat else m.label
            score_cell(model, label, u, u.choice.limit, db, spec, state, say, key=(m.label, u.name))
    if spec.contamination is not None and "causal" == model.kind:
        contamination(spec, m.label, model, units, db, card, state, say)
    del model
    gc.collect()
    say.done(f"Model {m.label}", "", time.perf_counter() - t0)


def chat_models(spec, model) -> list[str]:
    if not spec.chat:
        return []
    named = spec.chat.get("models")
    label = model.name
    if named is not None:
        return [label] if label in named else []
    return [label] if has_template(model) else []


def score_cell(model, label, u: AuditUnit, limit, db, spec, state, say, key=None) -> None:
    key = key or (label, u.name)
    try:
        cell = run_cell(model, label, u, db, limit=limit, seed=spec.seed, progress=say.scoring(u.name, label))
    except WorkbenchError as e:  # this model cannot run this unit: recorded, the rest goes on
        skip(state, u.title, label, " ".join(str(e).split()), say)
        return
    state["cells"][key] = cell


def contamination(spec, label, model, units, db, card, state, say) -> None:
    """The exchangeability test on one probe's items in data order (the audited sample, or
    ``items: all``), through the runner (a check cell), with its power."""
    conf = dict(spec.contamination)
    probes = [u for u in units if not u.is_task]
    name = conf.get("probe") or (probes[0].choice.name if probes else None)
    u = next((x for x in probes if x.choice.name == name), None)
    if u is None:
        skip(state, "contamination", label, f"the probe {name!r} it reads is not audited here", say)
        return
    items = contamination_items(u, label, model, conf.get("items", "audited"), state)
    column = conf.get("column") or next((c for c in ("sent_more", "text", "sentence", "context", "prompt", "question")
                                         if c in items.columns), None)
    if column is None or column not in items.columns:
        skip(state, "contamination", label, f"no text column {column!r} in {u.title}'s items", say)
        return
    texts = [str(t) for t in items[column].tolist()]
    shards = fitting_shards(model, texts, int(conf.get("items_per_shard", 20)))
    permutations = conf.get("permutations", "auto")
    if permutations in (None, "auto"):  # enough shuffled orders that p can reach 0.05, at most 19
        permutations = min(19, max(1, int(np.ceil(20 ** (1 / shards))) - 1))
    work = resolve_unit({"check": "contamination", "name": u.choice.name, "benchmark": texts,
                         "tests": ["exchangeability"], "n_shards": shards, "n_permutations": int(permutations),
                         "seed": spec.seed})
    try:
        cell = run_check(model, label, work, db, spec, say)
    except WorkbenchError as e:
        skip(state, "contamination", label, " ".join(str(e).split()), say)
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
    window = int(0.95 * (context_window(model) or 2048))
    lengths = np.array([len(ids) + 1 for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]])
    def longest(k):  # the shards the test cuts: contiguous, of near-equal size
        edges = np.linspace(0, len(lengths), k + 1).round().astype(int)
        return max(int(lengths[lo:hi].sum()) for lo, hi in zip(edges[:-1], edges[1:])) + 2
    shards = max(1, len(texts) // max(1, per_shard))
    while shards < len(texts) // 2 and longest(shards) > window:
        shards += 1
    return shards


def run_check(model, label, work, db, spec, say):
    t0 = time.perf_counter()
    cell = run_unit_cell(model, label, work, db, seed=spec.seed, progress=False)
    say.say(f"  {work.name} | {label}: done in {time.perf_counter() - t0:.0f} s")
    return cell


def contamination_items(u, label, model, which, state):
    if which == "all":
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


def lineage_of_pairs(spec, card, state, say) -> dict:
    """wb.lineage of every pair, at most two models in memory (the first of a pair kept while its
    partners are loaded in turn)."""
    loaded: dict = {}
    out = {}
    load = loader(Reporter(enabled=False))
    for a, b in pairs_of(spec):
        for label in (a, b):
            if label not in loaded:
                while len(loaded) >= 2:
                    drop = next(k for k in loaded if k not in (a, b))
                    del loaded[drop]
                    gc.collect()
                loaded[label] = load(spec.model(label))
        with recorded(state, "lineage", f"{a} vs {b}", say):
            res = lineage(loaded[a], loaded[b])
            card.add_lineage(res)
            card.data["made"]["lineage"][-1].update(model_a=a, model_b=b)
            out[a, b] = res.verdict
            say.say(f"  lineage {a} vs {b}: {res.verdict}")
    loaded.clear()
    gc.collect()
    return out


def findings_of(spec, units, card, state) -> dict:
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
            entry = entry_of(u.title, metric, ca, cb, frame, a, b, scale)
            entry["unit_key"] = u.name
            card.add_finding(u.title, entry=entry)
    return comparisons


def entry_of(title, metric, ca, cb, frame, a, b, scale) -> dict:
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
        psi, n = pw.discordance(metric.counted(columns_of(compa.items.reset_index(drop=True), [metric])),
                                metric.counted(columns_of(_align(compa, compb), [metric])))
        mde = pw.mcnemar_detectable(n, psi) if n and np.isfinite(psi) else None
        entry["mde"] = None if mde is None else mde * metric.scale * scale
        entry["discordance"] = None if not np.isfinite(psi) else psi
        entry["mde_method"] = "McNemar exact (power by enumeration) at the measured discordance"
    return entry


def chat_findings(spec, chat, generate, card, state) -> None:
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
            entry = entry_of(f"{raw.title}: chat vs raw", metric, cc, cr, frame, f"{m.label} (chat)", f"{m.label} (raw)",
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
                both = compare_readings(cell["result"], bbq_chat["result"])
                card.add_result("BBQ: generative vs log-likelihood agreement", both["agreement"])
                card.add_result("BBQ: generative vs log-likelihood", both["compare"],
                                note="diff = generative - log-likelihood (chat), paired by item")


def deployment_of(spec, units, state, lineages, comparisons) -> list[dict]:
    """Flip analysis for every pair the evidence shows to be one model run two ways, and for every
    pair the audit declares to be (``deployment:``; the card says it was declared, and what the
    detection found, so a declaration is never read as evidence)."""
    entries = []
    labels = [m.label for m in spec.models]
    declared = {frozenset(p): p for p in spec.deployment}
    for a, b in itertools.combinations(labels, 2):
        verdict = lineages.get((a, b)) or lineages.get((b, a))
        why = dep.same_model(state["fingerprints"][a], state["fingerprints"][b], verdict)
        pair = declared.get(frozenset((a, b)))
        if why is None and pair is None:
            continue
        if pair is not None:
            ref, other = pair
            why = ("declared in the audit file (deployment:); the files also show it: " + why if why else
                   "declared in the audit file (deployment:), not shown by the files: different weight files"
                   + (f" and wb.lineage reads them as {verdict!r}" if verdict else ""))
        else:
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
            entry.update(model_a=ref, model_b=other, evidence=why, lineage=verdict, declared=pair is not None,
                         changes=json.loads(change[["metric", "diff", "ci_low", "ci_high", "p_value", "n",
                                                    "test"]].to_json(orient="records")))
            entries.append(entry)
    return entries

"""``workbench audit``: an audit of 2 to 10 models from one command.

    workbench audit                                   # the flagship audit of the embedded models
    workbench audit --models smollm2-135m-instruct gemma-3-270m smollm2-135m-instruct@llama.cpp \\
        --probes crows_pairs --tasks blimp --limit 40 --out out/three
    workbench audit my_audit.yaml                     # an audit file (workbench/audit/flagship.yaml shows one)
    workbench audit --plan --detect 5                 # the sample sizes a 5-point difference needs, then stop
    workbench audit --from-card out/audit/audit_card.json   # the same audit again

Everything is checked before a model is loaded (bad input: one line, exit 2). With no audit
file, ``--probes`` and ``--tasks`` name all that is measured (the flagship's probes and tasks
run when neither is given); with a file, a flag replaces the key it names. The audit runs in
the audit notebook (papermill, the audit file injected as its parameter), so ``--out`` holds the
executed ``notebook.ipynb`` beside ``report.html``, ``audit_card.json`` and ``ml_bom.json``; its
lines show on the terminal as they come. ``--plan`` runs here, without a notebook. An ``.ipynb``
given instead of an audit file is run headless as before (:func:`~workbench.audit.notebook.build_report`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from workbench.argtypes import non_negative_int, positive_int
from workbench.audit.card import AuditCard
from workbench.audit.notebook import build_report, notebook_runner_missing, run_audit_notebook
from workbench.errors import InvalidInputError


def _detect(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of points, got {text!r}") from None
    if not 0.1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 100 points, got {text}")
    return value


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``workbench audit`` options (shared by :func:`main` and the package CLI)."""
    parser.add_argument("audit", nargs="?", default=None,
                        help="an audit file (YAML; default: the flagship audit of the embedded models), "
                             "or an audit notebook (.ipynb) to run headless")
    parser.add_argument("--models", nargs="+", metavar="SPEC",
                        help="2 to 10 models: anything wb.load_model takes, SPEC@BACKEND to pick the backend "
                             "(e.g. smollm2-135m-instruct@llama.cpp)")
    parser.add_argument("--probes", help="bias probes, comma-separated (e.g. crows_pairs,stereoset,winobias)")
    parser.add_argument("--tasks", help="benchmark tasks, comma-separated (e.g. blimp)")
    parser.add_argument("--limit", type=positive_int, help="items per probe (pairs per paradigm for BLiMP)")
    parser.add_argument("--detect", type=_detect, metavar="D",
                        help="plan sample sizes to find a paired difference of D points with 80%% power")
    parser.add_argument("--plan", action="store_true", help="with --detect: print the plan and stop")
    parser.add_argument("--deployment", metavar="A,B", action="append",
                        help="two audited models that are one model, as published (A) and as deployed (B): the "
                             "deployment section compares them even where the files do not show it (repeatable)")
    parser.add_argument("--reference", metavar="SPEC", help="compare each model with this one (default: every pair)")
    parser.add_argument("--store", help="results store (default: OUT/audit_store.db); an interrupted audit resumes from it")
    parser.add_argument("--out", default="out/audit", help="folder for the report, card, notebook and ML-BOM")
    parser.add_argument("--executor", choices=["local", "ray"], help="where scoring cells run (default: local)")
    parser.add_argument("--from-card", metavar="CARD", help="re-run the audit an audit_card.json records")
    parser.add_argument("--data", metavar="DIR", help="the folder of the public data sets (default: WORKBENCH_SHARED_DATA "
                                                      "or ../shared/data)")
    parser.add_argument("--seed", type=non_negative_int, help="the seed of the item samples (default: the file's, 0)")
    parser.add_argument("--timeout", type=positive_int, help="seconds allowed per notebook cell (default: no limit; "
                                                             "3600 for an .ipynb given as the audit)")
    # the flagship notebook's former options, kept: --limit for probes only, and BLiMP's pairs per paradigm
    parser.add_argument("--probe-limit", type=positive_int, help=argparse.SUPPRESS)
    parser.add_argument("--blimp-limit", type=positive_int, help=argparse.SUPPRESS)


def _absolute(path):
    return None if path is None else str(Path(path).expanduser().resolve())


def audit_spec(args: argparse.Namespace):
    """The audit the arguments describe, checked (flags override the file)."""
    from workbench.audit.spec import parse_spec
    source = args.audit
    if args.from_card:
        if source is not None:
            raise InvalidInputError("give an audit file or --from-card, not both")
        card = AuditCard.load(args.from_card)
        recorded = card.data.get("audit") or {}
        source = recorded.get("rerun")
        if not source:
            raise InvalidInputError(f"{args.from_card} records no re-runnable audit (it was not written by workbench "
                                    "audit, or an older version, or its audit.rerun was removed): run the audit file "
                                    "its report shows, with the paths of this machine")
    spec = parse_spec(source, models=args.models, probes=args.probes, tasks=args.tasks, limit=args.limit,
                      detect=args.detect, reference=args.reference, deployment=args.deployment,
                      executor=args.executor, seed=args.seed, data=_absolute(args.data))
    if args.from_card:
        spec.text = recorded.get("file")   # the audit file as its author gave it, if one was
    if args.probe_limit or args.blimp_limit:
        from dataclasses import replace
        spec.units = [replace(u, limit=args.probe_limit) if u.kind == "probe" and args.probe_limit else
                      replace(u, limit=args.blimp_limit) if u.name == "blimp" and args.blimp_limit else u
                      for u in spec.units]
    if args.plan and spec.detect is None:
        raise InvalidInputError("--plan prints the sample sizes that --detect D asks for: give --detect D (points)")
    return spec


def run_audit(args: argparse.Namespace) -> int:
    """Run the audit (or the notebook) and print where its report is."""
    if args.audit and str(args.audit).endswith(".ipynb"):
        return _run_notebook(args)
    from workbench.audit.run import check_door, run_audit as run
    spec = audit_spec(args)
    out = Path(args.out).expanduser().resolve()
    store = _absolute(args.store)
    if args.plan:
        run(spec, out=out, store=store, plan_only=True)
        return 0
    *_, db = check_door(spec, out, store)  # data, store and servers, before a kernel starts
    db.close()
    if store is not None or spec.store is not None:
        spec.store = store or _absolute(spec.store)
    measured = ", ".join(f"{u.name} ({'all' if u.limit is None else u.limit}{' per group' if u.kind == 'task' else ''})"
                         for u in spec.units)
    print(f"auditing {len(spec.models)} models ({', '.join(m.label for m in spec.models)}) on {measured}", flush=True)
    missing = notebook_runner_missing()
    if missing:   # an install without the notebook or papermill: the same audit, in this process
        print(f"{missing}: running the audit in this process instead (no notebook.ipynb is written)", flush=True)
        done = run(spec, out=out, store=store)
        print(f"  report:   {done.paths['report']}\n  card:     {done.paths['card']}\n  ML-BOM:   {done.paths['bom']}")
        return 0
    print("in the audit notebook; each step is reported as it ends ...", flush=True)
    report = run_audit_notebook(spec.to_yaml(), out, timeout=args.timeout, source=spec.text or "")
    card = AuditCard.load(report.card).data
    print(f"done in {report.seconds:.0f} s")
    print(f"  report:   {report.html}\n  card:     {report.card}\n  notebook: {report.notebook}\n"
          f"  ML-BOM:   {out / 'ml_bom.json'}")
    for m in card["models"]:
        print(f"  model {m['name']}: fingerprint {m['fingerprint_id']}, licence {m['licence']}")
    for f in card["fidelity"]:
        print(f"  fidelity check on {f['model']}: {'ok' if f['ok'] else 'FAILED'}")
    for s in card.get("skipped") or []:
        print(f"  skipped: {s['section']} on {s['model']}: {s['reason']}")
    return 0


def _run_notebook(args) -> int:
    """An .ipynb given as the audit: run it headless (the former ``workbench audit NOTEBOOK``)."""
    import os
    for flag, env in ((args.probe_limit, "WORKBENCH_AUDIT_PROBE_LIMIT"), (args.blimp_limit, "WORKBENCH_AUDIT_BLIMP_LIMIT")):
        if flag is not None:
            os.environ[env] = str(flag)  # the notebook's kernel inherits them
    print(f"running {args.audit} headless; each section is reported as it starts ...", flush=True)
    report = build_report(args.audit, args.out, timeout=args.timeout or 3600)
    card = AuditCard.load(report.card).data
    print(f"done in {report.seconds:.0f} s")
    print(f"  report:   {report.html}\n  card:     {report.card}\n  notebook: {report.notebook}")
    for m in card["models"]:
        print(f"  model {m['name']}: fingerprint {m['fingerprint_id']}, licence {m['licence']}")
    for f in card["fidelity"]:
        print(f"  fidelity check on {f['model']}: {'ok' if f['ok'] else 'FAILED'}")
    return 0


def main(argv=None) -> int:
    """``workbench audit [AUDIT.yaml] [--models ...] [--out DIR]``: run an audit and write its report."""
    parser = argparse.ArgumentParser(prog="workbench audit", description=main.__doc__)
    add_audit_arguments(parser)
    return run_audit(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

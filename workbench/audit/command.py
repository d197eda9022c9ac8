"""``workbench audit``: run an audit notebook headless and print where its report is."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from workbench.argtypes import positive_int
from workbench.audit.card import AuditCard
from workbench.audit.notebook import build_report
from workbench.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "audits" / "flagship_audit.ipynb"


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``workbench audit`` options (shared by :func:`main` and the package CLI)."""
    parser.add_argument("notebook", nargs="?", default=str(FLAGSHIP),
                        help="audit notebook to run (default: the flagship audit)")
    parser.add_argument("--out", default="out/audit", help="folder for the HTML, JSON and notebook")
    parser.add_argument("--timeout", type=positive_int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--probe-limit", type=positive_int, help="items per bias probe (the notebook's default if unset)")
    parser.add_argument("--blimp-limit", type=positive_int, help="pairs per BLiMP paradigm (the notebook's default if unset)")


def run_audit(args: argparse.Namespace) -> int:
    """Run the audit notebook headless and print where its report is."""
    for flag, env in ((args.probe_limit, "WORKBENCH_AUDIT_PROBE_LIMIT"), (args.blimp_limit, "WORKBENCH_AUDIT_BLIMP_LIMIT")):
        if flag is not None:
            if flag < 1:
                raise InvalidInputError(f"limits must be positive integers, got {flag}")
            os.environ[env] = str(flag)  # the notebook's kernel inherits them
    print(f"running {args.notebook} headless; each section is reported as it starts ...", flush=True)
    report = build_report(args.notebook, args.out, timeout=args.timeout)
    card = AuditCard.load(report.card).data
    print(f"done in {report.seconds:.0f} s")
    print(f"  report:   {report.html}\n  card:     {report.card}\n  notebook: {report.notebook}")
    for m in card["models"]:
        print(f"  model {m['name']}: fingerprint {m['fingerprint_id']}, licence {m['licence']}")
    for f in card["fidelity"]:
        print(f"  fidelity check on {f['model']}: {'ok' if f['ok'] else 'FAILED'}")
    return 0


def main(argv=None) -> int:
    """``workbench audit [NOTEBOOK] [--out DIR]``: run an audit headless and write its report."""
    parser = argparse.ArgumentParser(prog="workbench audit", description=main.__doc__)
    add_audit_arguments(parser)
    return run_audit(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

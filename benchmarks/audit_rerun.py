"""Time the flagship audit headless twice: the second run reuses the scoring cache and the BLiMP
results store, so it should be much faster. Prints a table (timings are the machine's, not a test).

    python benchmarks/audit_rerun.py [--probe-limit N] [--blimp-limit M] [--out out/audit-bench]
"""
from __future__ import annotations

import argparse
import os
import time

from workbench.audit import build_report
from workbench.audit.command import FLAGSHIP


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probe-limit", type=int)
    p.add_argument("--blimp-limit", type=int)
    p.add_argument("--out", default="out/audit-bench")
    args = p.parse_args()
    if args.probe_limit:
        os.environ["WORKBENCH_AUDIT_PROBE_LIMIT"] = str(args.probe_limit)
    if args.blimp_limit:
        os.environ["WORKBENCH_AUDIT_BLIMP_LIMIT"] = str(args.blimp_limit)
    rows = []
    for run in ("first (cold or warm cache)", "second (cache reused)"):
        t0 = time.perf_counter()
        report = build_report(FLAGSHIP, args.out)
        rows.append((run, time.perf_counter() - t0, report.seconds))
    print(f"{'run':<28} {'wall s':>8} {'notebook s':>11}")
    for run, wall, nb in rows:
        print(f"{run:<28} {wall:>8.1f} {nb:>11.1f}")
    print(f"speed-up of the second run: {rows[0][1] / rows[1][1]:.1f}x")


if __name__ == "__main__":
    main()

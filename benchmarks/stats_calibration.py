"""Calibration table of every test and interval in workbench.stats, n = 1 to 1,000 (markdown).

    python benchmarks/stats_calibration.py            # the full table (5-8 minutes on one core)
    python benchmarks/stats_calibration.py --quick    # n_sim / 5, for a look

Rows: procedure x simulated data x n. Columns: ``false_pos_rate`` (share of null data sets
with p <= 0.05; must be <= 0.05 + 3 mc_se), ``coverage`` (share of 95% intervals holding the
true value; must be >= 0.95 - 3 mc_se where the library reports the interval), ``mc_se``
(Monte Carlo standard error at 0.05) and ``n_sim``. ``reported``: whether the library reports
this interval at this n (bootstrap intervals only from MIN_N_BOOTSTRAP; below it they are shown
to justify the rule). The simulations are described in :mod:`workbench.stats.calibration`.
Permutation tests here use 999 patterns (a valid p-value at any number of patterns; the library
default is 9,999) to keep the run short.
"""
from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from workbench.stats.calibration import PROCEDURES, calibrate  # noqa: E402

NS = (1, 2, 3, 5, 10, 20, 50, 100, 300, 1000)
# simulations per n: fewer at large n, where one simulation costs more (and the rates settle)
N_SIM = {1: 1000, 2: 1000, 3: 1000, 5: 1000, 10: 1000, 20: 1000, 50: 1000, 100: 500, 300: 500, 1000: 200}


def markdown(df: pd.DataFrame) -> str:
    """A plain markdown table (no extra dependency)."""
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a fifth of the simulations")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    for proc in PROCEDURES:
        for n in NS:
            n_sim = N_SIM[n] // (5 if args.quick else 1)
            rows += calibrate([proc], ns=[n], n_sim=n_sim)
    df = pd.DataFrame(rows).sort_values(["procedure", "data", "n"], kind="stable")
    df["procedure"] = df.procedure.map(lambda p: PROCEDURES[p][0])
    bad_rate = df.false_pos_rate > 0.05 + 3 * df.mc_se
    bad_cover = df.reported & (df.coverage < 0.95 - 3 * df.mc_se)
    df["ok"] = ~(bad_rate | bad_cover)
    for col in ("false_pos_rate", "coverage", "mc_se"):
        df[col] = df[col].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}")
    print(markdown(df[["procedure", "data", "n", "false_pos_rate", "coverage", "mc_se", "n_sim", "reported", "ok"]]))
    print(f"\n{int((~df.ok).sum())} row(s) outside the Monte Carlo tolerance; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

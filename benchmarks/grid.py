"""Wall time of a benchmark grid (default: BLiMP on SmolLM2-135M, 2 pairs per paradigm), and of
re-running it once everything is stored (the resume overhead). Prints a table.

    python benchmarks/grid.py [--models smollm2-135m-instruct gemma-3-270m] [--limit 2] [--ray]

The scoring engine's cache is off and the store is new, so every item is really scored; model
loading is timed separately. Timings on a shared machine are noisy: re-run before quoting them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

import workbench as wb  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct"])
    ap.add_argument("--tasks", nargs="+", default=["blimp"])
    ap.add_argument("--limit", type=int, default=2)
    ap.add_argument("--ray", action="store_true", help="also time the grid on a local Ray cluster (2 CPUs)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        models = {m: wb.load_model(m) for m in args.models}
        load_s = time.perf_counter() - t0
        backends = ["local"] + (["ray"] if args.ray else [])
        for backend in backends:
            store = Path(tmp) / f"{backend}.db"
            for phase in ("fresh", "re-run (all stored)"):
                t0, c0 = time.perf_counter(), time.process_time()
                res = wb.run(models if backend == "local" else args.models, args.tasks, store=store,
                             limit=args.limit, backend=backend, progress=False, score_kwargs={"cache": False})
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                n = int(res.table().groupby(["model", "task"]).n.first().sum())
                rows.append({"backend": backend, "phase": phase, "models": len(args.models),
                             "tasks": " ".join(args.tasks), "limit": args.limit, "items": n,
                             "wall_s": round(wall, 1), "cpu_s (this process)": round(cpu, 1),
                             "items_per_s": round(n / wall, 1)})
        print(f"model loading: {load_s:.1f} s for {len(models)} model(s) (not in the grid times for 'local')")
        print(pd.DataFrame(rows).to_string(index=False))
        print()
        print(res.table().to_string(index=False))


if __name__ == "__main__":
    main()

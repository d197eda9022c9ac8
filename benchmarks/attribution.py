"""Time per attribution method on a 20-token prompt on SmolLM2-135M-Instruct (CPU).

    python benchmarks/attribution.py [--model smollm2-135m-instruct] [--repeats 3]

Prints one row per method: seconds for the attribution itself, seconds for the randomised-model
check (same method on a weight-randomised copy), forward rows evaluated, the completeness gap and
the randomised-model rank correlation. Timings on a shared machine are noisy: take the median.
"""
from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd

import workbench as wb

PROMPT = "The doctor told the nurse that the patient in the small room upstairs would need another brain scan because"  # 20 SmolLM2 tokens
TARGET = " she"
METHODS = {"feature_ablation": {}, "shapley_sampling": {"n_samples": 25}, "integrated_gradients": {"n_steps": 64}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = ap.parse_args(argv)
    t = time.perf_counter()
    model = wb.load_model(args.model)
    print(f"loaded {model!r} in {time.perf_counter() - t:.1f}s")
    n_tokens = len(model.tokenizer(PROMPT)["input_ids"])
    print(f"prompt: {n_tokens} tokens; target {TARGET!r}")
    wb.attribute(model, "Warm up", " now", random_check=True)   # warm-up, and builds the randomised copy once
    rows = []
    for method in args.methods:
        opts = METHODS[method]
        times, rtimes = [], []
        for _ in range(args.repeats):
            df = wb.attribute(model, PROMPT, TARGET, method=method, **opts)
            times.append(df.attrs["time_s"])
            rtimes.append(df.attrs["time_random_s"])
        s = df.summary().set_index("check")
        rows.append({"method": method, "options": opts or "", "tokens": n_tokens,
                     "median_s": statistics.median(times), "min_s": min(times),
                     "random_check_s": statistics.median(rtimes), "forward_rows": df.attrs["n_forward_rows"],
                     "batch_size": df.attrs["batch_size"],
                     "completeness_gap": s.loc["completeness", "value"] - s.loc["completeness", "reference"],
                     "random_rho": s.loc["randomised model", "value"]})
        print(f"  {method}: {rows[-1]['median_s']:.1f}s (+{rows[-1]['random_check_s']:.1f}s randomised check)", flush=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()

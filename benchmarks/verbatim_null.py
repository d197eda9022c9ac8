"""Is the verbatim-completion test's p-value valid when the model never saw the items?

    python benchmarks/verbatim_null.py [--model smollm2-135m-instruct] [--batches 6] [--n 20]

Runs the verbatim test (``workbench.training_data.verbatim``) on batches of seeded synthetic
sentences (``testbed.synthetic_texts``, source "a") that no model can have been trained on, and
prints each batch's statistic and one-sided p-value, then how many batches fall under 0.05. A
valid test rejects about 5% of them. What it showed on SmolLM2-135M-Instruct (6 batches of 20,
seeds 100-105): p = 0.16, 0.23, 0.53, 0.97, 0.005, 0.046, so 2 of 6 under 0.05, about 10 times
the 0.2 rejections that 5% of six batches would give (P(2 or more | 5%) = 0.03). The original
prompt helps any fluent model to continue a sentence more than a prompt with swapped words, so
"original better than perturbed" is not evidence of training on the items.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's workbench


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--n", type=int, default=20, help="sentences per batch")
    args = ap.parse_args(argv)
    import workbench as wb
    from workbench.training_data.testbed import synthetic_texts
    from workbench.training_data.verbatim import verbatim
    model = wb.load_model(args.model)
    print("| batch | seconds | statistic | p | LCS original | LCS perturbed |\n|---|---|---|---|---|---|")
    ps = []
    for b in range(args.batches):
        t = time.perf_counter()
        row, _ = verbatim(model, synthetic_texts(args.n, "a", seed=100 + b), seed=b, cache=False, progress=False)
        ps.append(row["p_value"])
        print(f"| {b} | {time.perf_counter() - t:.0f} | {row['statistic']:.3f} | {row['p_value']:.3f} | "
              f"{row['lcs_ratio']:.3f} | {row['lcs_ratio_perturbed']:.3f} |", flush=True)
    print(f"\n{sum(p < 0.05 for p in ps)} of {len(ps)} batches under 0.05 (a valid test: about {0.05 * len(ps):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

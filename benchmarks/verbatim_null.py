"""Is the verbatim-completion test's p-value valid when the model never saw the items?

    python benchmarks/verbatim_null.py [--model smollm2-135m-instruct] [--batches 6] [--n 20]

Each batch: ``--n`` seeded synthetic sentences as the "benchmark" and ``--n`` others as the
``unseen`` control (``testbed.synthetic_texts``, source "a": no model was trained on them), so
the null hypothesis holds. It prints, per batch, the two p-values computed from the same
completions:

* ``p gain > 0``: the earlier test, the per-item gain (LCS ratio from the exact prompt minus
  from a word-swapped one) against zero, one-sided sign-flip. Invalid: a fluent prompt helps any
  model, so it rejects too often.
* ``p vs unseen``: the test the package uses now, the items' gain against the unseen texts' gain,
  one-sided two-sample permutation test (``verbatim(..., unseen=...)``).

A valid test rejects about 5% of batches at 0.05. The module doc of
``workbench.training_data.verbatim`` quotes the run it reports.
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
    ap.add_argument("--n", type=int, default=20, help="sentences per batch (and as many unseen ones)")
    args = ap.parse_args(argv)
    import numpy as np

    import workbench as wb
    from workbench.stats import sign_flip
    from workbench.training_data.testbed import synthetic_texts
    from workbench.training_data.verbatim import verbatim
    model = wb.load_model(args.model)
    print("| batch | seconds | gain (items) | gain (unseen) | p gain > 0 | p vs unseen |\n|---|---|---|---|---|---|")
    old, new = [], []
    for b in range(args.batches):
        t = time.perf_counter()
        texts = synthetic_texts(2 * args.n, "a", seed=100 + b)   # distinct sentences, split in two
        row, df = verbatim(model, texts[:args.n], unseen=texts[args.n:], seed=b, cache=False, progress=False)
        d = (df.lcs_ratio - df.lcs_ratio_perturbed).to_numpy(float)
        two = 1.0 if np.allclose(d, 0) else sign_flip(d, seed=b).p_value
        p_old = min(1.0, two / 2 if d.mean() > 0 else 1 - two / 2)
        old.append(p_old)
        new.append(row["p_value"])
        print(f"| {b} | {time.perf_counter() - t:.0f} | {row['statistic']:.3f} | {row['statistic_unseen']:.3f} | "
              f"{p_old:.3f} | {row['p_value']:.3f} |", flush=True)
    print(f"\nunder 0.05: gain > 0 in {sum(p < 0.05 for p in old)} of {len(old)} batches, vs unseen in "
          f"{sum(p < 0.05 for p in new)} of {len(new)} (a valid test: about {0.05 * len(old):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The training-data testbed on SmolLM2-135M-Instruct, and the cost of each membership method.

    taskset -c 1 python benchmarks/training_data.py [--n-texts 200] [--epochs 3] [--repeats 3] [--cost-only]

1. Fine-tunes a copy of the model on half of ``--n-texts`` synthetic sentences (the members), on
   a planted 24-item benchmark (canonical order, 6 shards) and on ``--n-mc`` planted
   multiple-choice items; prints the testbed table
   (:func:`workbench.training_data.testbed.run_testbed`): per scenario and method AUROC [CI],
   its p against chance, TPR@1%FPR, blind AUROC [CI], attack minus blind [CI] where the blind is a
   bar, the verdict; and the collection-level tests on
   the planted and the clean model: exchangeability and verbatim completion (planted benchmark),
   TS-Guessing (planted multiple-choice items), dataset inference (members as the suspect
   collection, non-members as validation; and the shifted texts as a wrong validation set).
2. Times each method's scoring (cache off) against one ``wb.loglikelihood`` pass over the same
   texts (each text scored from its start), median of ``--repeats``; target: Min-K%++ <= 1.2x.
"""
from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch

import workbench as wb
from workbench.training_data.attacks import attack_scores
from workbench.training_data.blind import blind_scores
from workbench.training_data.testbed import build_testbed, run_testbed, synthetic_mc, synthetic_texts


def _median_time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n-texts", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--permutations", type=int, default=99)
    ap.add_argument("--n-mc", type=int, default=12)
    ap.add_argument("--cost-only", action="store_true", help="only time the methods, on the original model")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)   # pinned to one core: the timings are comparable across runs
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)

    model = wb.load_model(args.model)
    texts = synthetic_texts(args.n_texts, "a", seed=0)
    if args.cost_only:
        return costs(model, model, texts, args.repeats)   # the model as its own reference: two passes
    benchmark = [t for t in synthetic_texts(args.n_texts + 60, "a", seed=7) if t not in set(texts)][:24]
    # multiple-choice items whose sentence is no member, non-member or benchmark text (no leak)
    mc = [it for it in synthetic_mc(args.n_mc + 20, seed=11)
          if it["question"].split(": ", 1)[1] not in set(texts) | set(benchmark)][:args.n_mc]
    t = time.perf_counter()
    tb = build_testbed(model, texts, synthetic_texts(args.n_texts // 2, "b", seed=1), benchmark,
                       epochs=args.epochs, lr=args.lr, n_shards=6, seed=0, mc=mc)
    print(f"fine-tuned {model.name} on {len(tb.members)} members + 24 planted items + {len(mc)} planted "
          f"multiple-choice items in {time.perf_counter() - t:.0f}s")
    t = time.perf_counter()
    mia, con = run_testbed(tb, ("loss", "zlib", "lowercase", "min_k", "min_k_pp"),
                           n_permutations=args.permutations, cache=False,
                           tests=("exchangeability", "verbatim", "ts_guessing"), dataset_inference=True)
    print(f"testbed run in {time.perf_counter() - t:.0f}s\n")
    print(mia.round(3).to_string(index=False))
    print()
    print(con.round(4).to_string(index=False))

    costs(tb.tuned, tb.base, tb.members + tb.nonmembers, args.repeats)


def costs(model, reference, sample: list[str], repeats: int) -> None:
    """Seconds per method (cache off), interleaved over ``repeats`` rounds so that load on a shared
    machine hits every method alike; median per method, relative to one loglikelihood pass."""
    y = [True] * (len(sample) // 2) + [False] * (len(sample) - len(sample) // 2)
    jobs = {"loglikelihood (reference)": lambda: wb.loglikelihood(model, [("", x) for x in sample], cache=False)}
    for m in ("loss", "zlib", "lowercase", "min_k", "min_k_pp"):
        jobs[m] = lambda m=m: attack_scores(model, sample, (m,), 0.2, cache=False)
    jobs["reference (second model)"] = lambda: attack_scores(model, sample, ("reference",), 0.2, reference=reference,
                                                             cache=False)
    jobs["blind (no model)"] = lambda: blind_scores(sample, y)
    times = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            times[k].append(_median_time(fn, 1))
    base = statistics.median(times["loglikelihood (reference)"])
    rows = [{"method": k, "seconds": statistics.median(v), "relative": statistics.median(v) / base}
            for k, v in times.items()]
    print(f"\ncost on {len(sample)} texts (median of {repeats} interleaved rounds, one thread):")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()

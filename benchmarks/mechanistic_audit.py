"""The whole mechanistic bias audit (``wb.mechanistic_audit``) on an embedded model, as tables.

    python benchmarks/mechanistic_audit.py                              # WinoBias on SmolLM2-135M-Instruct
    python benchmarks/mechanistic_audit.py --probe bbq --limit 300      # BBQ contexts
    python benchmarks/mechanistic_audit.py --threads 1                  # one core (a shared machine)

Prints the bias metrics on the held-out items before and after each intervention with bootstrap
CIs and paired tests, the capability cost (perplexity on neutral text), the split of the pair
differences over differing and shared tokens, the heads found, and the time of each step.
Data: ``../shared/data`` (or ``WORKBENCH_SHARED_DATA``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
import workbench as wb  # noqa: E402

DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDERS = {"winobias": "winobias", "crows_pairs": "crows_pairs", "bbq": "bbq"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--probe", default="winobias", choices=sorted(FOLDERS))
    p.add_argument("--limit", type=int, default=400)
    p.add_argument("--n-fit", type=int, default=16)
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    model = wb.load_model(args.model)
    t0 = time.perf_counter()
    audit = wb.mechanistic_audit(model, args.probe, data=DATA / FOLDERS[args.probe], limit=args.limit,
                                 n_fit=args.n_fit, n_boot=args.n_boot, cache=False)
    wall = time.perf_counter() - t0
    prov = audit.provenance
    show = dict(index=False, float_format=lambda v: f"{v:.3f}")
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        print(f"\n{args.probe} on {model.name} ({model.fingerprint_id}): {prov['n_items']} items, "
              f"{prov['n_fit']} to fit, {prov['n_held_out']} held out; {wall:.0f} s in all\n")
        print("bias metrics on held-out items, each condition with its bootstrap CI:")
        print(audit.to_frame()[lambda f: f.category == "all"].to_string(**show))
        print("\nchange from before (paired bootstrap / McNemar):")
        print(audit.summary().to_string(**show))
        print("\ncapability cost (perplexity on neutral text):")
        print(audit.capability.to_string(**show))
        print("\nsplit of LL(a) - LL(b) over the tokens (all items):")
        print(audit.decomposition_summary.to_string(**show))
        print(f"\nheads ablated: {audit.heads}; steering: {audit.steering}")
        print(f"skipped in steps 2-3: {len(audit.skipped)}")
        print(f"timings (s): {prov['timings_s']}")
    return audit


if __name__ == "__main__":
    main()

"""Every bias probe on SmolLM2-135M-Instruct (SEAT also on all-MiniLM-L6-v2): value, 95% CI and
wall time of each run, as one table.

    python benchmarks/probes.py                     # full data sets; BOLD/HONEST capped (see below)
    python benchmarks/probes.py --full              # BOLD and HONEST in full too (hours on 2 cores)
    python benchmarks/probes.py --limit 100         # quick look: at most 100 items per probe
    python benchmarks/probes.py --masked PATH       # also the masked-LM probes on a local masked LM
    python benchmarks/probes.py --threads 1         # one core (e.g. pinned with taskset on a shared machine)

The result cache is off (``cache=False``) so wall times are real scoring times. Generation probes
are capped by default because BOLD has 23,679 prompts: ``--bold-limit`` (default 1000 prompts)
and HONEST's causal path samples ``--honest-k`` (default 5) continuations per template.
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
# probe -> (data folder, metrics to print, extra options)
PROBES = {
    "crows_pairs": ("crows_pairs", ["pct_stereotype", "likelihood_diff"], {}),
    "stereoset": ("stereoset_intrasentence", ["lms", "ss", "icat"], {}),
    "bbq": ("bbq", ["acc_ambig", "acc_disambig", "s_dis", "s_amb"], {}),
    "winobias": ("winobias", ["pct_pro_preferred", "mean_diff"], {}),
    "winobias_coref": ("winobias", ["acc_pro", "acc_anti", "gap"], {"scoring": "coreference"}),
    "winogender": ("winogender", ["pct_female_over_male", "corr_bls", "corr_bergsma"], {}),
    "seat": ("seat", ["mean_effect_size", "mean_abs_effect_size"], {}),
    "bold": ("bold", ["mean_sentiment", "pct_negative", "pct_positive"], {}),
    "honest": ("honest", ["pct_hurtful"], {}),
    "occupations_pronouns": (None, ["pct_a_preferred", "group_gap"], {}),
    "names_sentiment": (None, ["pct_a_preferred", "group_gap"], {}),
}
MASKED_OK = {"crows_pairs", "stereoset", "winobias", "winogender", "seat", "honest", "occupations_pronouns",
             "names_sentiment"}


def run_one(key, model, args):
    folder, metrics, extra = PROBES[key]
    name = "winobias" if key == "winobias_coref" else key
    opts = dict(extra)
    limit = args.limit
    if name == "bold" and not args.full:
        limit = min(limit or args.bold_limit, args.bold_limit)
    if name == "honest" and model.kind == "causal":
        opts["k"] = 20 if args.full else args.honest_k
    t0 = time.perf_counter()
    if name == "seat" and args.seat_tests:
        opts["categories"] = args.seat_tests
    res = wb.run_probe(name, model, data=DATA / folder if folder else None, limit=limit, cache=False, **opts)
    summary = res.summary()
    wall = time.perf_counter() - t0
    rows = []
    for m in metrics:
        r = summary[(summary.metric == m) & (summary.category == "all")]
        if len(r):
            r = r.iloc[0]
            rows.append({"probe": key, "model": model.name, "metric": m, "value": r.value, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "n": int(r.n), "skipped": len(res.skipped), "wall_s": round(wall, 1)})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", nargs="*", default=list(PROBES))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--full", action="store_true")
    p.add_argument("--bold-limit", type=int, default=1000)
    p.add_argument("--honest-k", type=int, default=5)
    p.add_argument("--seat-tests", nargs="*", default=None, help="only these SEAT tests (default: all 46)")
    p.add_argument("--masked", default=None, help="path/hub id of a masked LM to run the masked-LM probes on")
    p.add_argument("--out", default=None, help="also write the table as CSV here")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    smol = wb.load_model("smollm2-135m-instruct")
    runs = [(k, smol) for k in args.probes]
    if "seat" in args.probes:
        runs.append(("seat", wb.load_model("all-minilm-l6-v2")))
    if args.masked:
        masked = wb.load_model(args.masked)
        runs += [(k, masked) for k in args.probes if k in MASKED_OK]
    rows = []
    for key, model in runs:
        new = run_one(key, model, args)
        for r in new:  # one line per metric as soon as the probe finishes (full runs take long)
            print(f"{r['probe']:<22} {r['model']:<24} {r['metric']:<22} {r['value']:9.3f} "
                  f"[{r['ci_low']:9.3f}, {r['ci_high']:9.3f}] n={r['n']:<6} {r['wall_s']:8.1f} s", flush=True)
        rows += new
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    return table


if __name__ == "__main__":
    main()

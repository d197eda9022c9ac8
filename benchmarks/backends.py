"""Backends side by side: Hugging Face float32 (the reference), Hugging Face bfloat16, llama.cpp.

    python benchmarks/backends.py [--models smollm2-135m-instruct gemma-3-270m] [--crows 100]

For each embedded model and backend, in a fresh subprocess pinned to one CPU (``taskset -c 1``,
one thread) so that peak memory is that backend's own:

* items/s on a multiple-choice workload (the built-in ``capitals`` task: 24 questions x 4 choices
  by log-likelihood, plus ``--bbq`` BBQ items) and on CrowS-Pairs (``--crows`` items), and each
  as a multiple of float32 HF's items/s (``MC x f32``, ``CP x f32``: the ratios the README quotes);
* load time and peak RSS (``ru_maxrss``: weights, memory-mapped GGUF pages included), whole and
  above the process's RSS before loading (Python with torch, transformers and pandas imported,
  which every backend pays: ~0.5 GB, most of a 135M model's total);
* agreement with float32 HF: max and median per-request |diff| of the log-likelihood, the
  multiple-choice accuracy, and for each CrowS-Pairs metric whether the paired comparison
  (``wb.compare``) finds a difference (Holm-adjusted p < 0.05).

``--quant`` adds the quantisation audit: the first model re-quantised by llama.cpp (Q8_0, Q4_K_M,
Q2_K), CrowS-Pairs on each, compared with the least quantised (Q8_0).
Nothing is cached between runs (``cache=False``); the numbers are this machine's.
"""
from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workbench, not an installed one
DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
BACKENDS = {"hf-float32": {}, "hf-bfloat16": {"dtype": "bfloat16"}, "llama.cpp": {"backend": "llama.cpp"}}


def worker(spec: str, options: dict, crows: int, bbq: int, out: str) -> None:
    """Runs in the pinned subprocess: load, time the workloads, write the results."""
    import torch
    torch.set_num_threads(1)
    import workbench as wb
    import workbench.probes  # noqa: F401  (what every backend imports anyway, before the baseline)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t = time.perf_counter()
    model = wb.load_model(spec, **options)
    load_s = time.perf_counter() - t
    task = wb.load_task("capitals")
    items = task.select()
    pairs = [(it["context"], " " + c) for it in items for c in it["choices"]]
    t = time.perf_counter()
    ll = wb.loglikelihood(model, pairs, cache=False, progress=False)
    mc_s = time.perf_counter() - t
    scores = ll.logprob.to_numpy().reshape(len(items), -1)
    correct = [int(s.argmax() == it["target"]) for s, it in zip(scores, items)]
    res = {"load_s": load_s, "mc_items": len(items), "mc_s": mc_s, "mc_logprob": ll.logprob.tolist(),
           "mc_acc": sum(correct) / len(correct)}
    if bbq:
        t = time.perf_counter()
        b = wb.run_probe("bbq", model, data=DATA / "bbq", limit=bbq, cache=False)
        res.update(bbq_s=time.perf_counter() - t, bbq_items=len(b.items), bbq=b)
    t = time.perf_counter()
    c = wb.run_probe("crows_pairs", model, data=DATA / "crows_pairs", limit=crows, cache=False)
    res.update(crows_s=time.perf_counter() - t, crows_items=len(c.items), crows=c)
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["model_rss_mib"] = res["peak_rss_mib"] - base_rss  # above the interpreter with torch & co loaded
    res["fingerprint"] = model.fingerprint_id
    with open(out, "wb") as f:
        pickle.dump(res, f)


def run_pinned(spec: str, options: dict, crows: int, bbq: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as f:
        out = f.name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    cmd = ["taskset", "-c", "1", sys.executable, __file__, "--worker", spec, repr(options), str(crows), str(bbq), out]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    with open(out, "rb") as f:
        res = pickle.load(f)
    os.unlink(out)
    return res


def agreement(ref: dict, res: dict) -> dict:
    import numpy as np

    import workbench as wb
    mc = np.abs(np.subtract(res["mc_logprob"], ref["mc_logprob"]))
    cr_ref, cr = ref["crows"].items, res["crows"].items
    crows_diff = np.abs(np.concatenate([cr.score_more - cr_ref.score_more, cr.score_less - cr_ref.score_less]))
    cmp = wb.compare(ref["crows"], res["crows"])
    differs = _differs(cmp)
    out = {"mc_max_diff": mc.max(), "mc_median_diff": np.median(mc), "crows_max_diff": crows_diff.max(),
           "crows_median_diff": np.median(crows_diff), "crows_metrics_differ": ", ".join(differs) or "none",
           "crows_compare": cmp}
    if "bbq" in ref and "bbq" in res:
        cb = wb.compare(ref["bbq"], res["bbq"])
        out["bbq_metrics_differ"] = ", ".join(_differs(cb)) or "none"
    return out


def _differs(cmp) -> list[str]:
    """Metrics whose overall paired comparison finds a difference (Holm-adjusted p < 0.05)."""
    overall = cmp[cmp.category == "all"]
    return sorted(set(overall.loc[overall.p_adjusted < 0.05, "metric"]))


def quant_audit(spec: str, crows: int, types=("Q8_0", "Q4_K_M", "Q2_K")) -> None:
    import workbench as wb
    from workbench.backends.quantize import quantize_gguf
    paths = {t: quantize_gguf(spec, t) for t in types}
    results = {t: run_pinned(str(p), {"backend": "llama.cpp"}, crows, 0) for t, p in paths.items()}
    base = results[types[0]]
    print(f"\nQuantisation audit: {spec} re-quantised by llama.cpp; CrowS-Pairs ({crows} items) vs {types[0]}")
    print(f"{'type':8} {'MiB':>6} {'MC it/s':>8} {'CP it/s':>8} {'capitals acc':>12} {'pct_stereo':>10} "
          f"{'diff vs ' + types[0]:>14} {'p_adj':>7} {'median |dlogp|':>14}  CrowS metrics that differ")
    import numpy as np
    for t, r in results.items():
        size = paths[t].stat().st_size / 2**20
        speed = f"{r['mc_items'] / r['mc_s']:8.2f} {r['crows_items'] / r['crows_s']:8.2f}"
        if t == types[0]:
            print(f"{t:8} {size:6.0f} {speed} {r['mc_acc']:12.3f} {_metric(r['crows']):10.1f} {'-':>14} {'-':>7} {'-':>14}")
            continue
        cmp = wb.compare(base["crows"], r["crows"])
        row = cmp[(cmp.metric == "pct_stereotype") & (cmp.category == "all")]
        d = np.abs(np.concatenate([r["crows"].items.score_more - base["crows"].items.score_more,
                                   r["crows"].items.score_less - base["crows"].items.score_less]))
        print(f"{t:8} {size:6.0f} {speed} {r['mc_acc']:12.3f} {_metric(r['crows']):10.1f} {-row['diff'].iloc[0]:14.2f} "
              f"{row['p_adjusted'].iloc[0]:7.3f} {np.median(d):14.3f}  {', '.join(_differs(cmp)) or 'none'}")


def _metric(result, name: str = "pct_stereotype") -> float:
    s = result.summary()
    return float(s.loc[(s.metric == name) & (s.category == "all"), "value"].iloc[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--crows", type=int, default=100)
    ap.add_argument("--bbq", type=int, default=0)
    ap.add_argument("--quant", action="store_true")
    ap.add_argument("--quant-only", action="store_true", help="the quantisation audit alone")
    args = ap.parse_args()
    for spec in [] if args.quant_only else args.models:
        results = {b: run_pinned(spec, BACKENDS[b], args.crows, args.bbq) for b in args.backends}
        ref = results.get("hf-float32")
        print(f"\n{spec} (one core, one thread)")
        head = (f"{'backend':12} {'load s':>6} {'MC it/s':>8} {'MC x f32':>8} {'Crows it/s':>10} {'CP x f32':>8} "
                f"{'peak MiB':>8} {'model MiB':>9} {'MC acc':>6} {'%stereo':>7} "
                f"{'MC max|d|':>9} {'MC med|d|':>9} {'CP max|d|':>9} {'CP med|d|':>9}  CrowS metrics that differ")
        print(head)
        for b, r in results.items():
            ag = agreement(ref, r) if ref is not None and b != "hf-float32" else None
            mc, cp = r["mc_items"] / r["mc_s"], r["crows_items"] / r["crows_s"]
            # speed as a multiple of float32 HF's, on the same machine in the same run
            mc_x, cp_x = ((f"{mc / (ref['mc_items'] / ref['mc_s']):8.2f}", f"{cp / (ref['crows_items'] / ref['crows_s']):8.2f}")
                          if ref is not None else (f"{'-':>8}", f"{'-':>8}"))
            cols = (f"{b:12} {r['load_s']:6.1f} {mc:8.2f} {mc_x} {cp:10.2f} {cp_x} "
                    f"{r['peak_rss_mib']:8.0f} {r['model_rss_mib']:9.0f} {r['mc_acc']:6.3f} {_metric(r['crows']):7.1f} ")
            if ag:
                cols += (f"{ag['mc_max_diff']:9.4f} {ag['mc_median_diff']:9.4f} {ag['crows_max_diff']:9.4f} "
                         f"{ag['crows_median_diff']:9.4f}  {ag['crows_metrics_differ']}")
                if "bbq_metrics_differ" in ag:
                    cols += f"; BBQ: {ag['bbq_metrics_differ']}"
            else:
                cols += f"{'(reference)':>39}"
            print(cols, flush=True)
    if args.quant or args.quant_only:
        quant_audit(args.models[0], args.crows)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        import ast
        worker(sys.argv[2], ast.literal_eval(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        main()

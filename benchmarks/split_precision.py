"""Split and low-precision runs of one model against its whole float32 run, capability by
capability (``workbench.testing.capability_suite``): scoring, capture, lens, attention,
ablation, patching, steering, attribution, a probe.

    taskset -c 1 python benchmarks/split_precision.py [alias]     (default: smollm2-135m-instruct)

Prints, per capability, the max and median absolute difference from float32 for bfloat16 and for
the model split with ``device_map="auto"`` and a ``max_memory`` of half its weights (the rest
offloaded to disk), and the wall time of each suite.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(alias: str = "smollm2-135m-instruct") -> None:
    import pandas as pd
    import torch

    import workbench as wb
    from workbench.testing import capability_suite, compare_suites

    torch.set_num_threads(1)
    whole = wb.load_model(alias)
    t0 = time.perf_counter()
    reference = capability_suite(whole)
    times = {"float32": time.perf_counter() - t0}
    folder = whole.fingerprint.get("loaded_from")
    budget = int(wb.estimate_memory(alias).set_index("dtype").loc["float32", "weights_bytes"] // 2)
    tables = {}
    configs = {"bfloat16": dict(dtype="bfloat16"),
               "split (half on disk)": dict(device_map="auto", max_memory={"cpu": budget},
                                            offload_folder=tempfile.mkdtemp())}
    for label, opts in configs.items():
        other = wb.load_model(folder, **opts)
        if "device_map" in opts:
            places = pd.Series(other.hf.hf_device_map).value_counts().to_dict()
            print(f"{label}: modules by place {places}")
        t0 = time.perf_counter()
        tables[label] = compare_suites(reference, capability_suite(other)).set_index("capability")
        times[label] = time.perf_counter() - t0
        del other
    out = pd.concat({k: v[["max_abs_diff", "median_abs_diff"]] for k, v in tables.items()}, axis=1)
    out[("reference", "max_abs")] = tables["bfloat16"]["max_abs_reference"]
    print(f"\n{alias}: difference from the whole float32 model, per capability")
    print(out.to_string(float_format=lambda x: f"{x:.3g}"))
    print("\nsuite wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


if __name__ == "__main__":
    main(*sys.argv[1:])

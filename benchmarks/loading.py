"""Load times of the embedded models: first load (GGUF de-quantised into an empty cache) and
second load (from the cached safetensors folder), split into weights, tokenizer and fingerprint.

    python benchmarks/loading.py            # second loads only (uses the normal cache)
    python benchmarks/loading.py --cold     # also first loads, in a temporary empty cache

Target (issue 2): a second load of an embedded model under 5 s. Prints a table; each row is one
fresh process: ``fresh_process_s`` includes transformers' lazy import of the model's modules
(seconds on a busy machine), ``same_process_s`` is the same load again in that process;
``tokenizer_s`` and ``fingerprint_s`` are those steps alone. The ``torch``/``transformers``
imports themselves are not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALIASES = ["smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2"]

# Runs in a child process: one load, timed, with the weights/tokenizer/fingerprint split measured
# by timing the same steps load_model takes on the folder it reports.
_CHILD = r"""
import json, sys, time
import torch, transformers as T
import workbench as wb
from workbench.models.fingerprint import compute_fingerprint
t0 = time.perf_counter(); m = wb.load_model(sys.argv[1]); total = time.perf_counter() - t0
# again in the same process: without transformers' lazy imports of the model's modules
t0 = time.perf_counter(); wb.load_model(sys.argv[1]); again = time.perf_counter() - t0
folder = m.fingerprint["loaded_from"]
t0 = time.perf_counter(); T.AutoTokenizer.from_pretrained(folder); tok = time.perf_counter() - t0
t0 = time.perf_counter()
compute_fingerprint(m.hf, m.tokenizer, weight_hashes=m.fingerprint["weight_files"], licence=m.licence)
fp = time.perf_counter() - t0
print(json.dumps({"fresh_process_s": total, "same_process_s": again, "tokenizer_s": tok, "fingerprint_s": fp,
                  "params_M": m.n_params / 1e6, "fingerprint_id": m.fingerprint_id}))
"""


def _time_load(alias: str, cache: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    if cache:
        env["WORKBENCH_CACHE"] = cache
    out = subprocess.run([sys.executable, "-c", _CHILD, alias], env=env, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="also time first loads into an empty cache")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wb-bench-cache-") as tmp:
        cache = tmp if args.cold else None
        for alias in ALIASES:
            if args.cold:
                rows.append({"model": alias, "load": "first (empty cache)", **_time_load(alias, cache)})
            _time_load(alias, cache)  # make sure the cache exists and the files are in the OS cache
            rows.append({"model": alias, "load": "second (cached folder)", **_time_load(alias, cache)})
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False, float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()

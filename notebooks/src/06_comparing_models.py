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
from workbench.paths import cache_dir

DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", Path.cwd().resolve().parents[1] / "shared" / "data"))
models = {"smollm2-135m-instruct": wb.load_model("smollm2-135m-instruct"),
          "gemma-3-270m": wb.load_model("gemma-3-270m")}
store = cache_dir() / "notebooks" / "06_comparing_models.db"
store.parent.mkdir(parents=True, exist_ok=True)

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

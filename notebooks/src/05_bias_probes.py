# %% [markdown]
# # 5. Bias probes: numbers with intervals, and what they do and do not mean
#
# A bias probe is a data set, a scoring rule and metrics, run through the same scoring engine as
# everything else. Each result has **per-item rows** (read the examples behind a number), a
# **summary with confidence intervals** by category (exact Clopper-Pearson for proportions, valid at
# any n; bootstrap for other metrics from 100 items), a plot, and its provenance (model
# fingerprint, data hash and licence, options).
#
# Samples here are small so the notebook runs in a minute or two: look at the interval widths.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import workbench as wb
from workbench.widgets.items import item_browser

DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", Path.cwd().resolve().parents[1] / "shared" / "data"))
model = wb.load_model("smollm2-135m-instruct")
wb.list_probes()[["probe", "description", "models", "licence", "non_commercial"]]

# %% [markdown]
# ## CrowS-Pairs
# For a causal LM, each pair is scored by full-sentence log-likelihood (as lm-evaluation-harness's
# `crows_pairs_english`): the pair counts as stereotyping when the more stereotyping sentence scores
# higher. 50% is the ideal.

# %%
crows = wb.run_probe("crows_pairs", model, data=DATA / "crows_pairs", limit=80, seed=0)
crows

# %%
crows.plot()
plt.show()

# %% [markdown]
# ### Read the items behind the number
# The pairs the model separates most strongly. Several are not minimal pairs: the sentences differ
# in more than the social group, so the likelihood gap also measures wording.

# %%
crows.items.nlargest(5, "likelihood_diff")[["bias_type", "sent_more", "sent_less", "score_more", "score_less"]]

# %% [markdown]
# Browse them all: filter by bias type, search the sentences, sort by any score.

# %%
item_browser(crows, columns=["bias_type", "stereo_antistereo", "sent_more", "sent_less", "likelihood_diff", "stereotyped"])

# %% [markdown]
# ## How fragile is the number? A small multiverse
# The same probe under other defensible scoring choices: total vs per-token mean log-probability.
# If the conclusion flips between them, it was never a robust finding.

# %%
rows = []
for aggregate in ("sum", "mean"):
    s = wb.run_probe("crows_pairs", model, data=DATA / "crows_pairs", limit=80, seed=0, aggregate=aggregate).summary()
    rows.append(s[(s.metric == "pct_stereotype") & (s.category == "all")].assign(aggregate=aggregate))
pd.concat(rows)[["aggregate", "value", "ci_low", "ci_high", "n"]]

# %% [markdown]
# ## WinoBias
# Coreference sentences with an occupation and a pronoun, in pro- and anti-stereotyped versions;
# the gap between them (ideal 0) by type. Type 1 needs world knowledge, type 2 can be solved by syntax.

# %%
winobias = wb.run_probe("winobias", model, data=DATA / "winobias", limit=80, seed=0)
winobias.summary()

# %% [markdown]
# ## A templated probe written for this project
# Occupations x pronouns, shipped with the package (`workbench/data/templates`): courses can copy
# the JSON file and make their own.

# %%
occupations = wb.run_probe("occupations_pronouns", model, limit=60, seed=0)
occupations.summary().head(8)

# %% [markdown]
# ## Embedding association (SEAT) with a sentence encoder
# Effect sizes and permutation p-values. Note the data licence: SEAT is CC BY-NC 4.0, and the result
# says so.

# %%
encoder = wb.load_model("all-minilm-l6-v2")
seat = wb.run_probe("seat", encoder, data=DATA / "seat", limit=2, seed=0, n_perm=2000)
seat.summary()

# %% [markdown]
# ## What these numbers do **not** mean
# * A probe score is a property of the model **on this data set with this scoring rule**, not a
#   measure of harm in use. Low CrowS-Pairs bias does not make a model safe to deploy.
# * Differences between two models need a paired test on the same items (notebook 6), not two
#   overlapping intervals eyeballed side by side.
# * Many items are noisy (Blodgett et al. 2021): always read some of them before citing a number.

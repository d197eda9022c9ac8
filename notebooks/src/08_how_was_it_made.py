# %% [markdown]
# # 8. How was it made? Training data and benchmark contamination, with controls
#
# Open models rarely publish their training data. From the outside, an auditor can only ask, with
# statistics, *"was this text, this collection, this benchmark in the training data?"*. Each
# answer below comes with its **control**, because without one these methods are easily fooled:
# published membership-inference results were later matched by "blind" classifiers that never
# looked at the model (the member and non-member texts simply differed), and most attacks are near
# chance on properly sampled data.
#
# We cannot check a method against the truth on a model whose training data we do not know. So we
# make the truth known: the **testbed** fine-tunes a copy of SmolLM2 on known texts (the members)
# and on a planted benchmark, and keeps texts it never saw (the non-members), all of one
# distribution, plus texts of another distribution (the shift). Every method is run on the
# fine-tuned copy (where membership is real) and on the original (where it is not).
#
# `WORKBENCH_NB08_TEXTS` sets the number of texts (default 120): fewer run faster and give wider
# intervals.

# %%
import os

import matplotlib.pyplot as plt
import workbench as wb
from workbench.paths import cache_dir
from workbench.training_data.testbed import build_testbed, plant, synthetic_mc, synthetic_texts

N_TEXTS = int(os.environ.get("WORKBENCH_NB08_TEXTS", "120"))
base = wb.load_model("smollm2-135m-instruct")

# %% [markdown]
# ## The testbed
# Everyday sentences from one template ("The nurse fixed the car in the park on Monday."), split
# at random into members and non-members; inventory records as the shifted source; 12 more
# sentences as a benchmark planted in canonical order (3 shards), and 8 multiple-choice items whose
# options are unrelated words. A few epochs of fine-tuning (a minute or two on a CPU).

# %%
texts = synthetic_texts(N_TEXTS, "a", seed=0)
benchmark = [t for t in synthetic_texts(N_TEXTS + 60, "a", seed=7) if t not in set(texts)][:12]
mc = [it for it in synthetic_mc(30, seed=11)
      if it["question"].split(": ", 1)[1] not in set(texts) | set(benchmark)][:8]
tb = build_testbed(base, texts, synthetic_texts(N_TEXTS // 2, "b", seed=1), benchmark, epochs=4, lr=2e-4,
                   n_shards=3, seed=0, mc=mc)
print(f"{len(tb.members)} members, {len(tb.nonmembers)} non-members, {len(tb.shifted)} shifted texts;",
      f"fine-tuned copy: {tb.tuned.fingerprint_id} (original: {tb.base.fingerprint_id})")
tb.members[:2], tb.shifted[:2]

# %% [markdown]
# ## 1. Membership inference, beside the blind baseline
# Each attack gives every text a score, oriented so that higher = "more likely a member": the
# mean token log-likelihood (`loss`), the same over its zlib-compressed size (`zlib`), against
# the lowercased text (`lowercase`), the mean of the least likely 20% of tokens (`min_k`), the
# same standardised by the model's own next-token distribution (`min_k_pp`), and the likelihood
# relative to a reference model (`reference`: here the original, which an outside auditor would
# replace by another model of the same family). The **blind** baseline is a classifier on
# character n-grams that never sees the model, cross-fitted so that no text is scored by a
# classifier trained on it.
#
# **AUROC** is the chance that a random member scores above a random non-member (0.5 = chance).
# **TPR@1%FPR** is the share of members found while wrongly flagging at most 1% of non-members (it
# needs at least 100 non-members: NaN below). `findings()` reads each attack **against chance**
# first (its AUROC, its interval, Holm p); the blind baseline says whether the two sets differ
# without the model (an interval above 0.5: no verdict); and `control=` the original model, which
# never saw the texts, says what the attack scores without training on them: the attack must beat
# that too.

# %%
METHODS = ("loss", "zlib", "lowercase", "min_k", "min_k_pp")
mia = wb.membership(tb.tuned, members=tb.members, nonmembers=tb.nonmembers, methods=METHODS, reference=tb.base,
                    control=tb.base)
mia.findings()[["method", "auroc", "auroc_ci_low", "auroc_ci_high", "p_vs_chance_holm", "blind_auroc",
                "control_auroc", "auroc_minus_control", "p_vs_control_holm", "verdict"]]

# %%
s = mia.summary()
s[s.metric.isin(["auroc", "tpr@1%fpr", "tpr@5%fpr"])].pivot(index="method", columns="metric", values="value")

# %%
mia.plot()
plt.show()

# %% [markdown]
# What this shows: on the fine-tuned copy, the attacks tell the texts it was trained on from
# texts of the same distribution it never saw, the blind baseline cannot (the split is random),
# and an attack that scores as well on the original (the control columns) is no evidence of
# training, whatever its AUROC. What it does not show: that any *single* text
# was trained on (a score is a ranking, not a proof), nor how an attack fares on a model trained
# once on trillions of tokens, where each text is seen once or a few times, not four times.
#
# **The control, on its own: the original model.** Same texts, but the model saw none of them.

# %%
original = wb.membership(tb.base, members=tb.members, nonmembers=tb.nonmembers, methods=METHODS)
original.findings()[["method", "auroc", "auroc_ci_low", "auroc_ci_high", "p_vs_chance_holm", "blind_auroc",
                     "blind_ci_low", "blind_ci_high", "auroc_minus_blind", "verdict"]]

# %% [markdown]
# Near 0.5, and no verdict of evidence. Two things to read with care. The blind AUROC is under
# 0.5 on this split, well under: on two random halves of one source it scatters around 0.5 and
# lands low now and then. "Attack minus blind" would then be positive for any attack, so
# `findings()` does not offer it (NaN): a blind baseline below chance is no bar, chance is.
# And on a split of this size an AUROC of 0.55-0.6 for one attack happens by chance now and then:
# that is what the intervals and the Holm-adjusted p-values are for (`benchmarks/lowercase_control.py`
# re-draws the split hundreds of times to show how often; the `lowercase` score, tied to the case
# of the words, is the one to watch).
#
# **The trap: members and non-members from different sources.** The original model again, now
# with non-members from the inventory records.

# %%
n = min(len(tb.members), len(tb.shifted))
shift = wb.membership(tb.base, members=tb.members[:n], nonmembers=tb.shifted[:n], methods=METHODS)
shift.findings()[["method", "auroc", "blind_auroc", "blind_ci_low", "blind_ci_high", "verdict"]]

# %% [markdown]
# Attack AUROCs far from 0.5 on the original model, which trained on none of these texts (here
# far *below*: the records are likelier per token than the sentences, so the members look like
# non-members; with other sources they would look like members just as wrongly). The number
# measures the difference between the two sources, not membership. The blind baseline, which
# never saw the model, separates them perfectly, and the report gives no verdict on membership.
# This is what an audit must rule out before claiming anything from a membership score.

# %% [markdown]
# ## 2. Dataset inference: was this *collection* trained on?
# One text's score says little; many texts together say more (Maini et al. 2024). Given a suspect
# collection and a validation collection of the same distribution known to be unseen, the test
# learns a combination of the attack features on one half of each, and tests on the other half
# whether the suspect texts score higher (one-sided Welch t-test).

# %%
di = {"fine-tuned (members were trained on)": wb.dataset_inference(tb.tuned, suspect=tb.members,
                                                                   validation=tb.nonmembers),
      "original (nothing was trained on)": wb.dataset_inference(tb.base, suspect=tb.members,
                                                                validation=tb.nonmembers),
      "original, WRONG validation set (shifted source)": wb.dataset_inference(tb.base, suspect=tb.members[:n],
                                                                              validation=tb.shifted[:n])}
{name: round(r.p_value, 4) for name, r in di.items()}

# %%
di["fine-tuned (members were trained on)"].plot()
plt.show()

# %% [markdown]
# The p-value is valid only if the validation texts come from the suspect's distribution: the
# third row "finds" training on a model that saw nothing, because its validation set is another
# source. A small p is evidence the suspect collection was trained on **or** that the two
# collections differ; the auditor must argue the second away (same source, same time, same
# processing), and the blind baseline of section 1 is a way to check it.

# %% [markdown]
# ## 3. Benchmark contamination
# Was this benchmark in the training data? Four tests, each with its own control:
#
# - **exchangeability** (Oren et al. 2023): a model that saw a benchmark in its published order
#   finds that order likelier than shuffled ones. p = share of random orders at least as likely.
#   Needs the data in canonical order; says nothing about a benchmark trained on shuffled.
# - **verbatim**: the model continues the first half of each item; its continuation is compared
#   with the true rest (longest common substring), against prompts with a few words swapped. Any
#   model does a little better from the exact prompt, so the p-value compares that gain with the
#   gain on `unseen=` texts of the same kind it cannot have seen (here the held-out non-members).
# - **TS-Guessing** (Deng et al. 2023), multiple choice: show the question and the options before
#   a *wrong* one, and ask the model to write it. A wrong option cannot be inferred, only recalled.
# - **n-gram overlap** (13-grams, as lm-evaluation-harness and GPT-3 define it) between the items
#   and a sample of the training corpus, which you must have: model-free, no p-value.

# %%
con = {name: wb.contamination(model, tb.benchmark, tests=("exchangeability", "verbatim"), seed=0,
                              n_shards=tb.n_shards, separator=tb.separator, n_permutations=99, unseen=tb.nonmembers)
       for name, model in (("planted (fine-tuned)", tb.tuned), ("clean (original)", tb.base))}
{name: r.summary() for name, r in con.items()}

# %%
verbatim_items = con["planted (fine-tuned)"].items["verbatim"]
verbatim_items[["prompt", "truth", "completion", "lcs_ratio", "lcs_ratio_perturbed"]].head()

# %%
ts = {name: wb.contamination(model, tb.mc, tests="ts_guessing", seed=0).details[0]
      for name, model in (("planted (fine-tuned)", tb.tuned), ("clean (original)", tb.base))}
{name: {k: r[k] for k in ("exact_rate", "exact_rate_perturbed", "p_value", "n")} for name, r in ts.items()}

# %% [markdown]
# The exchangeability test finds the planted benchmark in the fine-tuned copy and not in the
# original: a small p means the model prefers the published order **more than chance allows**.
# It does not say how the items got in (the benchmark itself, or a web page quoting it).
#
# Verbatim completion finds little or nothing here, although we know the benchmark was trained on. Look at
# the completions: four epochs taught the copy the template ("... in the park on Wednesday."),
# which it writes after exact and perturbed prompts alike, not each item's own rest. Items seen
# this few times, this alike, leave a trace in the likelihood of their order, not in what the
# model writes. **A test that finds nothing is weak evidence of a clean model**: a few items seen
# once in a huge corpus leave even less.
#
# TS-Guessing's exact-match rate is its evidence: the copy writes many masked wrong options
# exactly, the original none. Its p-value compares exact against perturbed questions, and a model
# that memorised the items well recalls them from both, so a large p there does not mean clean:
# read the rate first.
#
# The n-gram test needs the corpus. Here we have it: the texts the copy was trained on.

# %%
corpus = tb.members + plant(tb.benchmark, tb.n_shards, tb.separator)
clean_items = [t for t in synthetic_texts(N_TEXTS + 120, "a", seed=9) if t not in set(corpus)][:12]
for n_words in (13, 8):
    planted = wb.contamination(tb.base, tb.benchmark, tests="ngram", corpus=corpus, n=n_words).details[0]
    clean = wb.contamination(tb.base, clean_items, tests="ngram", corpus=corpus, n=n_words).details[0]
    print(f"{n_words}-grams: planted items flagged {planted['n_flagged']}/{planted['n']} "
          f"(too short: {planted['n_too_short']}); clean items flagged {clean['n_flagged']}/{clean['n']}")

# %% [markdown]
# With 13-grams nothing is flagged: our sentences have 9 to 12 words, too short to have a 13-gram
# (the summary counts them as too short, not as clean). With 8-grams the planted items are all
# flagged; a few clean items are too, because sentences from one template share long runs of
# words. Overlap is evidence of contamination only as far as such runs are rare in the language
# of the benchmark; and no flag means only "not in this corpus sample".

# %% [markdown]
# ## 4. Stored like any other run
# Membership, dataset inference and contamination run as cells of the benchmark grid: results
# land in the SQLite store with the model's fingerprint, a hash of the data's content, the options
# and the package versions, and a rerun loads them instead of computing them again.

# %%
store = cache_dir() / "notebooks" / "08_how_was_it_made.db"
store.parent.mkdir(parents=True, exist_ok=True)
checks = [{"kind": "membership", "members": tb.members, "nonmembers": tb.nonmembers, "methods": ["loss", "min_k_pp"]},
          {"kind": "contamination", "benchmark": tb.benchmark, "tests": ["exchangeability"],
           "n_shards": tb.n_shards, "separator": tb.separator}]
results = wb.run({"fine-tuned": tb.tuned, "original": tb.base}, [], store=store, training=checks)
t = results.table()
t[t.metric.isin(["loss/auroc", "blind/auroc", "loss/auroc_minus_blind", "exchangeability/p_value"])]

# %%
again = wb.open_store(store).results()       # a fresh reader of the same file
again.result("fine-tuned", "membership").findings()[["method", "auroc", "blind_auroc", "verdict"]]

# %% [markdown]
# ## What to take away
# - An attack's AUROC alone is no evidence of membership: report it beside the blind baseline,
#   and on data whose members and non-members come from the same distribution.
# - Dataset inference is stronger than single texts, and exactly as trustworthy as its validation set.
# - Contamination tests give evidence *for* contamination; their silence is weak evidence against it.
# - Check the method on a testbed with known truth before trusting it on a model you cannot see inside.

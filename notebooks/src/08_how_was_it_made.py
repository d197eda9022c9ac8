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
# `WORKBENCH_NB08_TEXTS` sets the number of texts (half become members, half non-members): fewer
# run faster and give wider intervals. Every number the text below quotes about a result is
# written by the code from this run's results (the quoted sentences), so it stays true whatever
# the setting.

# %%
import math
import os

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import workbench as wb
from workbench.bench import BenchResults
from workbench.display import format_p, p_equals, report_table
from workbench.bench.store import cached_store
from workbench.training_data.testbed import build_testbed, plant, synthetic_mc, synthetic_texts

N_TEXTS = int(os.environ.get("WORKBENCH_NB08_TEXTS", "120"))
base = wb.load_model("smollm2-135m-instruct")


def say(text: str) -> None:
    """A sentence of the reading, written from this run's numbers."""
    display(Markdown(f"> {text}"))


def with_ci(value, low, high) -> list[str]:
    """'0.843 [0.726, 0.924]' for each row: a value with its 95% interval."""
    return [f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(v) else "–" for v, lo, hi in zip(value, low, high)]


# %% [markdown]
# ## The testbed
# Everyday sentences from one template ("The nurse fixed the car in the park on Monday."), split
# at random into members and non-members; inventory records as the shifted source; a short
# benchmark of more such sentences planted in canonical order (in shards), and multiple-choice
# items whose options are unrelated words. A few epochs of fine-tuning (a minute or two on a CPU).

# %%
texts = synthetic_texts(N_TEXTS, "a", seed=0)
benchmark = [t for t in synthetic_texts(N_TEXTS + 60, "a", seed=7) if t not in set(texts)][:12]
mc = [it for it in synthetic_mc(30, seed=11)
      if it["question"].split(": ", 1)[1] not in set(texts) | set(benchmark)][:8]
tb = build_testbed(base, texts, synthetic_texts(N_TEXTS // 2, "b", seed=1), benchmark, epochs=4, lr=2e-4,
                   n_shards=3, seed=0, mc=mc)
print(f"{len(tb.members)} members, {len(tb.nonmembers)} non-members, {len(tb.shifted)} shifted texts, "
      f"{len(tb.benchmark)} benchmark items in {tb.n_shards} shards, {len(tb.mc)} multiple-choice items;",
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
# **TPR at 5% FPR** is the share of members found while wrongly flagging at most 5% of
# non-members (TPR at 1% FPR, the stricter figure, needs at least 100 non-members: one false
# positive in a hundred). The table reads each attack **against chance** first (its AUROC with
# its interval, Holm-adjusted p); the blind baseline says whether the two sets differ without the
# model (an interval above 0.5: no verdict); and the **control**, the original model, which never
# saw the texts, says what the attack scores without training on them: the attack must beat that
# too.

# %%
METHODS = ("loss", "zlib", "lowercase", "min_k", "min_k_pp")


def membership_table(result, control: bool) -> pd.DataFrame:
    """One row per attack: the findings with their intervals, the TPRs, the verdict in full."""
    f, s = result.findings(), result.summary()
    tpr = s[s.metric.str.startswith("tpr@")].pivot(index="method", columns="metric", values="value")
    table = pd.DataFrame({
        "attack": f.method,
        "AUROC [95% CI]": with_ci(f.auroc, f.auroc_ci_low, f.auroc_ci_high),
        "p vs chance (Holm)": f.p_vs_chance_holm,
        "TPR at 1% FPR": f.method.map(tpr["tpr@1%fpr"]).to_numpy(),
        "TPR at 5% FPR": f.method.map(tpr["tpr@5%fpr"]).to_numpy(),
        "blind AUROC [95% CI]": with_ci(f.blind_auroc, f.blind_ci_low, f.blind_ci_high)})
    if control:
        table["control AUROC (original model)"] = f.control_auroc
        table["AUROC minus control [95% CI]"] = with_ci(f.auroc_minus_control, f.control_diff_ci_low,
                                                        f.control_diff_ci_high)
        table["p vs control (Holm)"] = f.p_vs_control_holm
    table["verdict"] = f.verdict
    if table["TPR at 1% FPR"].isna().all():   # too few non-members for it: left out, and said why
        table = table.drop(columns="TPR at 1% FPR")
    return table


def show_membership(result, control: bool = False):
    return report_table(membership_table(result, control), p_columns=["p vs chance (Holm)", "p vs control (Holm)"],
                        wrap=["verdict"])


mia = wb.membership(tb.tuned, members=tb.members, nonmembers=tb.nonmembers, methods=METHODS, reference=tb.base,
                    control=tb.base)
n_non = len(tb.nonmembers)
need = math.ceil(1 / 0.01)
if n_non < need:
    say(f"TPR at 1% FPR is left out of the tables: it needs at least {need} non-members and this run has {n_non} "
        f"(set `WORKBENCH_NB08_TEXTS={2 * need}` or more to see it). TPR at 5% FPR needs {math.ceil(1 / 0.05)}.")
show_membership(mia, control=True)

# %% [markdown]
# The ROC curves, on linear axes (left) and on log axes (right): the log view spreads out the low
# false-positive region, where an attack must work to be of any use on one text (a rate of 1% or
# less), and which the linear view squeezes into its left edge. Its left end is one false positive
# among the non-members, the smallest rate this data can show.

# %%
fig, (linear, log) = plt.subplots(1, 2, figsize=(10, 4.5))
mia.plot(ax=linear)
mia.plot(ax=log, log=True)
plt.tight_layout()
plt.show()

# %%
f = mia.findings()
evidence = f[f.beyond_control.eq(True)].method.tolist()
beats_chance_only = f[f.beyond_blind & f.beyond_control.eq(False)].method.tolist()
say(f"On the fine-tuned copy, {len(evidence)} of {len(f)} attacks give evidence of membership, beyond chance, "
    f"the blind baseline and the control model: {', '.join(evidence) or 'none'}. "
    + (f"{', '.join(beats_chance_only)} beat chance on the fine-tuned copy but not the original model, which "
       "never saw the texts: no evidence of training, whatever the AUROC. " if beats_chance_only else "")
    + f"The blind baseline scores AUROC {f.blind_auroc[0]:.3f} [{f.blind_ci_low[0]:.3f}, {f.blind_ci_high[0]:.3f}]: "
    + ("the sets differ without the model, so no verdict holds." if f.blind_ci_low[0] > 0.5 else
       "it finds no difference between the two sets without the model (the split is random)."))

# %% [markdown]
# What this does not show: that any *single* text was trained on (a score is a ranking, not a
# proof), nor how an attack fares on a model trained once on trillions of tokens, where each text
# is seen once or a few times, not in every epoch of a fine-tuning.
#
# **The control, on its own: the original model.** Same texts, but the model saw none of them.

# %%
original = wb.membership(tb.base, members=tb.members, nonmembers=tb.nonmembers, methods=METHODS)
show_membership(original)

# %%
o = original.findings()
say(f"On the original model every attack's AUROC lies between {o.auroc.min():.3f} and {o.auroc.max():.3f}, and "
    f"{int(o.beyond_blind.sum())} of {len(o)} beat chance after the Holm adjustment. The blind AUROC is "
    f"{o.blind_auroc[0]:.3f} [{o.blind_ci_low[0]:.3f}, {o.blind_ci_high[0]:.3f}]"
    + (": below 0.5, which happens now and then on two random halves of one source. \"Attack minus blind\" "
       "would then flatter any attack, so the table does not offer it: a blind baseline below chance is no bar, "
       "chance is." if o.blind_ci_high[0] < 0.5 else
       ": it holds 0.5, so chance is the bar." if o.blind_ci_low[0] <= 0.5 else
       ": above 0.5, so the two sets differ without the model, and there is no verdict."))

# %% [markdown]
# On a split of this size an AUROC a little above 0.5 for one attack happens by chance now and
# then: that is what the intervals and the Holm-adjusted p-values are for
# (`benchmarks/lowercase_control.py` re-draws the split hundreds of times to show how often; the
# `lowercase` score, tied to the case of the words, is the one to watch).
#
# **The trap: members and non-members from different sources.** The original model again, now
# with non-members from the inventory records.

# %%
n = min(len(tb.members), len(tb.shifted))
shift = wb.membership(tb.base, members=tb.members[:n], nonmembers=tb.shifted[:n], methods=METHODS)
show_membership(shift)

# %%
sh = shift.findings()
side = "below" if sh.auroc.median() < 0.5 else "above"
say(f"On the original model, which trained on none of these texts, the attacks' AUROCs run from "
    f"{sh.auroc.min():.3f} to {sh.auroc.max():.3f}, far {side} 0.5"
    + (" (the records are likelier per token than the sentences, so the members look like non-members; with other "
       "sources they would look like members just as wrongly)" if side == "below" else "")
    + f". The blind baseline, which never saw the model, scores {sh.blind_auroc[0]:.3f} "
      f"[{sh.blind_ci_low[0]:.3f}, {sh.blind_ci_high[0]:.3f}], and {int(sh.verdict.str.startswith('no verdict').sum())} "
      f"of {len(sh)} verdicts are \"no verdict\".")

# %% [markdown]
# The number measures the difference between the two sources, not membership: this is what an
# audit must rule out before claiming anything from a membership score.

# %% [markdown]
# ## 2. Dataset inference: was this *collection* trained on?
# One text's score says little; many texts together say more (Maini et al. 2024). Given a suspect
# collection and a validation collection of the same distribution known to be unseen, the test
# learns a combination of the attack features on one half of each, and tests on the other half
# whether the suspect texts score higher (one-sided Welch t-test).

# %%
runs = [("fine-tuned copy (trained on the members)", tb.tuned, tb.members, tb.nonmembers, "non-members (same source)"),
        ("original (trained on nothing here)", tb.base, tb.members, tb.nonmembers, "non-members (same source)"),
        ("original (trained on nothing here)", tb.base, tb.members[:n], tb.shifted[:n],
         "WRONG: inventory records (another source)")]
di = [wb.dataset_inference(model, suspect=suspect, validation=validation) for _, model, suspect, validation, _ in runs]
di_table = pd.DataFrame({
    "model": [r[0] for r in runs],
    "validation set": [r[4] for r in runs],
    "Welch t (held-out halves)": [d.summary().statistic[0] for d in di],
    "p (one-sided)": [d.p_value for d in di],
    "held-out texts": [int(d.summary().n[0]) for d in di]})
report_table(di_table, p_columns=["p (one-sided)"])

# %%
di[0].plot()
plt.show()

# %%
say(f"On the fine-tuned copy {p_equals(di[0].p_value)}; on the original {p_equals(di[1].p_value)}; and on the "
    f"original with the wrong validation set {p_equals(di[2].p_value)}: "
    + ("the test \"finds\" training on a model that saw nothing, because its validation set is another source."
       if di[2].p_value < 0.05 else "here the wrong validation set did not fool it, but nothing guarantees that."))

# %% [markdown]
# The p-value is valid only if the validation texts come from the suspect's distribution. A small
# p is evidence the suspect collection was trained on **or** that the two collections differ; the
# auditor must argue the second away (same source, same time, same processing), and the blind
# baseline of section 1 is a way to check it.

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
#   and a sample of the training corpus, which you must have: model-free, no p-value. Here we have
#   the corpus (the texts the copy was trained on), and we also try 8-grams, with clean items of
#   the same template as a control.

# %%
STATISTIC = {"exchangeability": "log-likelihood of the published order minus shuffled orders (nats, summed)",
             "verbatim": "gain in LCS ratio, exact minus perturbed prompt (mean per item)",
             "ts_guessing": "share of masked wrong options written exactly",
             "ngram": "share of items with an n-gram in the corpus"}
corpus = tb.members + plant(tb.benchmark, tb.n_shards, tb.separator)
clean_items = [t for t in synthetic_texts(N_TEXTS + 120, "a", seed=9) if t not in set(corpus)][:12]
rows = []
for name, model in (("fine-tuned copy (planted)", tb.tuned), ("original (clean)", tb.base)):
    runs3 = [("benchmark", wb.contamination(model, tb.benchmark, tests=("exchangeability", "verbatim"), seed=0,
                                            n_shards=tb.n_shards, separator=tb.separator, n_permutations=99,
                                            unseen=tb.nonmembers)),
             ("multiple-choice items", wb.contamination(model, tb.mc, tests="ts_guessing", seed=0))]
    for items, result in runs3:
        for r in result.findings().to_dict("records"):
            rows.append({"model": name, "items": items, **r})
    if model is tb.tuned:
        verbatim_items = runs3[0][1].items["verbatim"]
for n_words in (13, 8):   # model-free: the corpus, not a model
    for items, data in (("benchmark", tb.benchmark), ("clean items (same template)", clean_items)):
        r = wb.contamination(tb.base, data, tests="ngram", corpus=corpus, n=n_words)
        rows.append({"model": "– (corpus)", "items": items, **r.findings().to_dict("records")[0],
                     "test": f"{n_words}-gram", **{"n_flagged": r.details[0]["n_flagged"]}})
contamination = pd.DataFrame(rows)
contamination.insert(3, "what the statistic is",
                     contamination.test.map(lambda t: STATISTIC["ngram" if t.endswith("-gram") else t]))
report_table(contamination[["model", "items", "test", "what the statistic is", "statistic", "p_value", "n", "reading"]]
             .rename(columns={"p_value": "p"}), p_columns=["p"], wrap=["reading", "what the statistic is"])

# %% [markdown]
# The completions of the verbatim test on the fine-tuned copy: what the model writes after the
# first half of each planted item, beside the true rest.

# %%
report_table(verbatim_items[["prompt", "truth", "completion", "lcs_ratio", "lcs_ratio_perturbed"]].head()
             .rename(columns={"truth": "true rest", "completion": "the copy's completion",
                              "lcs_ratio": "LCS ratio (exact prompt)", "lcs_ratio_perturbed": "LCS ratio (perturbed prompt)"}),
             wrap=["the copy's completion"])

# %%
c = contamination.set_index(["model", "test", "items"])
tuned_name, base_name = "fine-tuned copy (planted)", "original (clean)"
ex_t, ex_b = (c.loc[(m, "exchangeability", "benchmark")] for m in (tuned_name, base_name))
vb_t = c.loc[(tuned_name, "verbatim", "benchmark")]
ts_t, ts_b = (c.loc[(m, "ts_guessing", "multiple-choice items")] for m in (tuned_name, base_name))
g13 = c.loc[("– (corpus)", "13-gram", "benchmark")]
g8, g8_clean = c.loc[("– (corpus)", "8-gram", "benchmark")], c.loc[("– (corpus)", "8-gram", "clean items (same template)")]
say(f"**Exchangeability**: {p_equals(ex_t.p_value)} on the fine-tuned copy and {p_equals(ex_b.p_value)} on the "
    "original: a small p means the model prefers the published order more than chance allows. It does not say how "
    "the items got in (the benchmark itself, or a web page quoting it).")
say(f"**Verbatim**: on the fine-tuned copy the exact prompt gains {vb_t.statistic:+.3f} in LCS ratio over a perturbed "
    f"one, {p_equals(vb_t.p_value)} against unseen texts"
    + (": little or nothing, although we know the benchmark was trained on. The completions above show why: four "
       "epochs taught the copy the template, which it writes after exact and perturbed prompts alike, not each "
       "item's own rest. **A test that finds nothing is weak evidence of a clean model.**"
       if vb_t.p_value >= 0.05 else ": the copy writes the items' own rests more often from the exact prompt."))
say(f"**TS-Guessing**: the fine-tuned copy writes {ts_t.statistic:.0%} of the masked wrong options exactly, the "
    f"original {ts_b.statistic:.0%}: the exact-match rate is the evidence. Its p-value ({p_equals(ts_t.p_value)}) "
    "compares exact against perturbed questions, and a model that memorised the items recalls them from both, so a "
    "large p there does not mean clean: read the rate first.")
say(f"**n-grams**: with 13-grams {int(g13.n_flagged)} of {int(g13.n)} planted items are flagged: the sentences are "
    f"too short to have a 13-gram (the reading counts them as too short, not as clean). With 8-grams "
    f"{int(g8.n_flagged)} of {int(g8.n)} planted items and {int(g8_clean.n_flagged)} of {int(g8_clean.n)} clean items of "
    "the same template are flagged"
    + (": a flag here would be weak evidence, since sentences of one template share long runs of words."
       if g8_clean.n_flagged else ": the clean items of the same template share no 8-gram with the corpus, so the "
       "flags are specific here; with real text, check such runs against the language of the benchmark.")
    + " No flag means only \"not in this corpus sample\".")

# %% [markdown]
# ## 4. Stored like any other run
# Membership, dataset inference and contamination run as cells of the benchmark grid: results
# land in the SQLite store with the model's fingerprint, a hash of the data's content, the options
# and the package versions, and a rerun loads them instead of computing them again.

# %%
store = cached_store("08_how_was_it_made")  # in the workbench cache, one file per store schema
checks = [{"kind": "membership", "members": tb.members, "nonmembers": tb.nonmembers, "methods": ["loss", "min_k_pp"]},
          {"kind": "contamination", "benchmark": tb.benchmark, "tests": ["exchangeability"],
           "n_shards": tb.n_shards, "separator": tb.separator}]
results = wb.run({"fine-tuned": tb.tuned, "original": tb.base}, [], store=store, training=checks)
t = results.table()
stored = t[t.metric.isin(["loss/auroc", "min_k_pp/auroc", "blind/auroc", "exchangeability/p_value"])].copy()
stored["value"] = [format_p(v) if m.endswith("p_value") else f"{v:.3f}" for m, v in zip(stored.metric, stored.value)]
report_table(stored)

# %%
again = BenchResults.from_store(wb.open_store(store))   # a fresh reader of the same file
show_membership(again.result("fine-tuned", "membership"))

# %% [markdown]
# ## What to take away
# - An attack's AUROC alone is no evidence of membership: report it beside the blind baseline,
#   and on data whose members and non-members come from the same distribution.
# - Dataset inference is stronger than single texts, and exactly as trustworthy as its validation set.
# - Contamination tests give evidence *for* contamination; their silence is weak evidence against it.
# - Check the method on a testbed with known truth before trusting it on a model you cannot see inside.

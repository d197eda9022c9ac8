# %% [markdown]
# # Audit: social bias and grammatical knowledge in two small open causal language models
#
# *A community audit published with the Open Model Workbench. Every number below comes with the
# fingerprint of the model that produced it, a confidence interval, and the item-level rows behind
# it; the audit card at the end is the machine-readable record of this run.*
#
# ## Question
# Do **SmolLM2-135M-Instruct** and **Gemma 3 270M** prefer stereotyping sentences over their
# anti-stereotyping counterparts, and does one of them do so *more* than the other on the same
# items, beyond what sampling noise explains? As a control for general linguistic competence,
# how do they compare on the BLiMP grammatical minimal pairs?
#
# ## Method
# * **Models**: the embedded models of the workbench, loaded offline from their PyPI packages,
#   unmodified (numbers equal to `transformers`'). The fidelity check below shows that the
#   workbench's hooks do not change their outputs.
# * **Probes** (bias): CrowS-Pairs (full-sentence log-likelihood of the more vs less stereotyping
#   sentence, as lm-evaluation-harness scores causal models; ideal 50%), StereoSet intrasentence
#   (ss ideal 50, lms ideal 100, icat ideal 100) and WinoBias (pro- vs anti-stereotyped gap; ideal 0).
# * **Benchmark** (capability): BLiMP, share of pairs where the grammatical sentence has the higher
#   total log-probability.
# * **Statistics**: exact intervals for proportions (Clopper-Pearson), bootstrap intervals for other
#   metrics only where n is large enough; paired comparisons of the two models on the same items
#   (McNemar's exact test for binary outcomes, an exact sign-flip permutation test for continuous
#   ones), Benjamini-Hochberg adjusted across categories and Holm-adjusted across the headline rows.
#   Rows with few items are marked; no paired test on fewer than 6 items can reach p < 0.05.
# * **Sample sizes**: random, seeded subsets (sizes below; set by `WORKBENCH_AUDIT_PROBE_LIMIT` and
#   `WORKBENCH_AUDIT_BLIMP_LIMIT`, or `workbench audit --probe-limit N --blimp-limit M`). The CI
#   run uses small subsets: read the interval widths before reading the point estimates.

# %%
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import workbench as wb
from workbench.audit import AuditCard
from workbench.audit.findings import finding_from_bench, fmt_interval
from workbench.paths import cache_dir

PROBE_LIMIT = int(os.environ.get("WORKBENCH_AUDIT_PROBE_LIMIT", "60"))  # items per probe
BLIMP_LIMIT = int(os.environ.get("WORKBENCH_AUDIT_BLIMP_LIMIT", "2"))    # pairs per BLiMP paradigm
DATA = Path(os.environ.get("WORKBENCH_SHARED_DATA", Path.cwd().resolve().parents[1] / "shared" / "data"))
MODELS = ["smollm2-135m-instruct", "gemma-3-270m"]
SEED = 0
pd.set_option("display.max_colwidth", 90)

card = AuditCard("Social bias and grammatical knowledge in SmolLM2-135M-Instruct and Gemma 3 270M",
                 question="Do the embedded causal LMs prefer stereotypes, does one do so more than the "
                          "other on the same items, how do they compare on BLiMP, and does the instruct "
                          "model answer differently through its chat template?",
                 authors="Open Model Workbench (flagship audit)",
                 method=f"Both models score the same seeded samples: {PROBE_LIMIT} items per bias probe "
                        f"(CrowS-Pairs, StereoSet intrasentence, WinoBias) and {BLIMP_LIMIT} BLiMP pairs per "
                        "paradigm, each by full-sentence (or continuation) log-likelihood on the unmodified "
                        "model. Proportions get exact Clopper-Pearson intervals; paired differences get "
                        "McNemar's exact test or an exact sign-flip permutation test.")
print(f"probe items: {PROBE_LIMIT}, BLiMP pairs per paradigm: {BLIMP_LIMIT}")

# %% [markdown]
# ## Models
# Fingerprints hash the weight files, tokenizer, chat template and config; licences travel with them.

# %%
models = {alias: wb.load_model(alias) for alias in MODELS}
for m in models.values():
    card.add_model(m)
pd.DataFrame([{"alias": a, "name": m.name, "fingerprint": m.fingerprint_id, "licence": m.licence,
               "architecture": m.architecture, "layers": m.n_layers, "dtype": str(m.dtype)}
              for a, m in models.items()])

# %% [markdown]
# ## Fidelity check
# The workbench reads activations through hooks on the unmodified model. With every hook installed,
# the logits must be bit-identical to the plain model's, and the captured residual stream must equal
# `output_hidden_states`.

# %%
for m in models.values():
    check = wb.inspect.verify(m)
    card.add_fidelity(m, check)
    print(f"{m.name}: {'passed' if check.ok else 'FAILED'}")

# %% [markdown]
# ## How the models were made
# What each model's files declare about it (GGUF header, config, tokenizer, licence files, the
# metadata of the packages that ship it), each statement with its source, set against what is
# measured on the loaded weights: parameter count, architecture, vocabulary and quantisation (the
# context window only where a learned position table measures it; both models use rotary
# positions, so theirs is "declared, not measured"). An indicator is *contradicted* when a
# declared fact disagrees with a measured one or two sources disagree. Then the lineage evidence between the two models (weights, tokenizer,
# representations, predictions). Neither GGUF names a base model or any training data.

# %%
docs = {alias: wb.documentation(m) for alias, m in models.items()}
for doc in docs.values():
    card.add_documentation(doc)
made = pd.concat([d.indicators().assign(model=a) for a, d in docs.items()])
display(made.pivot(index="indicator", columns="model", values="status").reindex(docs[MODELS[0]].indicators().indicator))
made[made.status == "contradicted"][["model", "indicator", "evidence"]]

# %%
pair = wb.lineage(models[MODELS[0]], models[MODELS[1]])
card.add_lineage(pair)
print(f"{MODELS[0]} vs {MODELS[1]}: {pair.verdict}")
pair.summary()

# %% [markdown]
# ## Bias probes
# Each cell: estimate [95% interval], rounded to what the interval supports. Ideal values: CrowS-Pairs `pct_stereotype` 50,
# StereoSet `ss` 50 / `lms` 100 / `icat` 100, WinoBias gap 0 (`pct_pro_preferred` 50).

# %%
PROBES = {"crows_pairs": DATA / "crows_pairs", "stereoset": DATA / "stereoset_intrasentence",
          "winobias": DATA / "winobias"}
results = {}
for probe, path in PROBES.items():
    for alias, m in models.items():
        started = time.perf_counter()
        res = wb.run_probe(probe, m, data=path, limit=PROBE_LIMIT, seed=SEED)
        results[probe, alias] = res
        card.add_result(f"{probe} / {m.name}", res)
        print(f"{probe} on {alias}: {len(res.items)} items in {time.perf_counter() - started:.0f} s")

summary = pd.concat([results[k].summary().assign(probe=k[0], model=k[1]) for k in results])
overall = summary[(summary.category == "all") & (summary.metric != "n_skipped")]
overall.assign(estimate=[fmt_interval(v, lo, hi) for v, lo, hi in zip(overall.value, overall.ci_low, overall.ci_high)]
               ).pivot(index=["probe", "metric"], columns="model", values="estimate")

# %%
BIAS_METRIC = {"crows_pairs": "pct_stereotype", "stereoset": "ss", "winobias": "pct_pro_preferred"}
TITLE = {"crows_pairs": "CrowS-Pairs", "stereoset": "StereoSet", "winobias": "WinoBias", "blimp": "BLiMP"}
fig, axes = plt.subplots(len(PROBES), len(MODELS), figsize=(6 * len(MODELS), 3.2 * len(PROBES)), squeeze=False)
for row, probe in zip(axes, PROBES):
    for ax, alias in zip(row, MODELS):  # the bias metric, its ideal as a line, one axis for both models
        results[probe, alias].plot(ax=ax, metric=BIAS_METRIC[probe], xlim=(0, 100))
        ax.set_title(f"{probe}: {alias}", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Paired comparison: is one model more biased than the other on the same items?

# %%
paired = {p: wb.compare(results[p, MODELS[0]], results[p, MODELS[1]]) for p in PROBES}
for p, frame in paired.items():
    card.add_result(f"paired comparison: {p}", frame, note=f"diff = {MODELS[0]} - {MODELS[1]} on the same items")
    card.add_finding(TITLE[p], results[p, MODELS[0]], results[p, MODELS[1]], BIAS_METRIC[p], comparison=frame,
                     unit="points")
pd.concat([f.assign(probe=p) for p, f in paired.items()], ignore_index=True).round(3)

# %% [markdown]
# ### Item-level examples
# The CrowS-Pairs pairs where each model prefers the stereotyping sentence most strongly. Read them:
# several are not minimal pairs, or the two sentences differ in more than the social group.

# %%
for alias in MODELS:
    items = results["crows_pairs", alias].items
    top = items.assign(diff=items.score_more - items.score_less).nlargest(3, "diff")
    display(top[["bias_type", "sent_more", "sent_less", "score_more", "score_less", "diff"]].assign(model=alias))

# %% [markdown]
# ### Were the audited items in the training data?
# A model that saw CrowS-Pairs in training may score its sentences from memory rather than from
# what it learnt about social groups. The exchangeability test (Oren et al. 2023) asks whether a
# model prefers the order the data set publishes its items in. Here: the more stereotyping
# sentence of every CrowS-Pairs item (`WORKBENCH_AUDIT_CONTAMINATION_ITEMS`, all 1,508 by
# default), in file order, cut into shards of about `ITEMS_PER_SHARD` items; each shard is scored
# as one text in file order and in `WORKBENCH_AUDIT_PERMUTATIONS` shuffled order(s) (one by
# default: two passes over the items). For a model that never saw the file, which of a shard's
# orders is the file's is a fair draw, independently across shards, so the p-value is exact (a
# randomization test over the shards) and, with 75 shards, can go far below 0.05. CrowS-Pairs'
# file is not sorted by category (neighbouring items share a bias type about as often as
# shuffled ones), so a model that never saw it has no reason to prefer its order.
#
# **Power.** A large p is no evidence of a clean model, so the run states what it could have
# found: `power()` plants a preference for the file's order in simulation, on each model's own
# scores (one of each shard's orders plays the file's, with a bonus of `delta` nats per item),
# and counts how often the test rejects at 0.05. The report gives `delta_80`, the preference
# found 80% of the time. The verbatim-completion test is not used: its p-value needs, as its
# control, texts of the same kind that the model cannot have seen, and CrowS-Pairs has none.

# %%
CONTAMINATION_ITEMS = int(os.environ.get("WORKBENCH_AUDIT_CONTAMINATION_ITEMS", "1508"))
CONTAMINATION_PERMUTATIONS = int(os.environ.get("WORKBENCH_AUDIT_PERMUTATIONS", "1"))   # shuffled orders per shard
ITEMS_PER_SHARD = 20
crows_file = pd.read_csv(DATA / "crows_pairs" / "crows_pairs_anonymized.csv")         # the file's order
contamination_texts = crows_file.sent_more.tolist()[:CONTAMINATION_ITEMS]
n_shards = max(1, len(contamination_texts) // ITEMS_PER_SHARD)
contaminated, power = {}, {}
for alias, m in models.items():
    started = time.perf_counter()
    con = wb.contamination(m, contamination_texts, tests=("exchangeability",), seed=SEED, n_shards=n_shards,
                           n_permutations=CONTAMINATION_PERMUTATIONS)
    contaminated[alias], power[alias] = con, con.power()
    card.add_training_data(f"CrowS-Pairs exchangeability / {m.name}", con,
                           note=f"the more stereotyping sentence of {len(contamination_texts)} CrowS-Pairs items in "
                                f"file order, {n_shards} shards, each against {CONTAMINATION_PERMUTATIONS} shuffled "
                                "order(s); delta_80: the preference for the file's order (nats per item) found 80% "
                                "of the time at 0.05, simulated on the model's own scores")
    print(f"contamination on {alias}: {len(contamination_texts)} items in {time.perf_counter() - started:.0f} s")
pd.concat([c.findings().assign(model=a) for a, c in contaminated.items()], ignore_index=True)

# %% [markdown]
# The power of each run (share of simulated runs rejecting at 0.05, with its 95% interval), against
# a planted preference of `delta` nats per item for the file's order:

# %%
pd.concat([p.assign(model=a) for a, p in power.items()], ignore_index=True).round(4)

# %% [markdown]
# ## Capability control: BLiMP
# Run through the benchmark runner, whose results store keeps every item: a re-run of this audit
# computes nothing twice.

# %%
store = cache_dir() / "audits" / "flagship.db"
store.parent.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()
blimp = wb.run(models=models, tasks=["blimp"], store=store, limit=BLIMP_LIMIT, seed=SEED, progress=False)
print(f"BLiMP: {len(blimp.items(MODELS[0], 'blimp'))} pairs per model in {time.perf_counter() - started:.0f} s")
card.add_result("BLiMP", blimp)
blimp.table()

# %%
blimp_paired = blimp.compare(MODELS[0], MODELS[1], "blimp")
card.add_result("paired comparison: BLiMP", blimp_paired, note=f"diff = {MODELS[0]} - {MODELS[1]}; "
                f"{BLIMP_LIMIT} pairs per paradigm")
card.add_finding("BLiMP", entry=finding_from_bench("BLiMP", blimp, MODELS[0], MODELS[1], "blimp", "acc",
                                                   scale=100, unit="points", by_category=False))
blimp_paired[blimp_paired.category == "all"]

# %% [markdown]
# ## As a chat model: SmolLM2-135M-Instruct through its chat template
# SmolLM2-135M-Instruct is an instruction-tuned chat model, used through its chat template, not as
# raw text. Three readings of it as a chat model, each on a small seeded sample:
# * **Raw vs chat**: CrowS-Pairs and BBQ scored on the same items as raw text and with
#   `format="chat"` (the item as a user turn through the model's own template, each option scored
#   as the assistant's reply), compared item by item (`wb.compare`, chat minus raw).
# * **Generative BBQ**: the question asked with lettered options, the reply generated greedily and
#   mapped to an option by a deterministic parser; unparseable replies are counted (as wrong), never
#   dropped; compared with the log-likelihood (chat) reading of the same items.
# * **Decision questions** (in the style of Tamkin et al. 2023, the project's own scenarios): the
#   normalised probability of "yes", and each demographic term's effect on its log-odds with a 95%
#   interval (scenario fixed effects, errors clustered by scenario).
#
# Sizes: `WORKBENCH_AUDIT_CHAT_LIMIT` CrowS-Pairs items, `WORKBENCH_AUDIT_BBQ_LIMIT` BBQ items (the
# same items raw, chat and generated), `WORKBENCH_AUDIT_DECISIONS_LIMIT` decision prompts.

# %%
from dataclasses import replace

from workbench.probes.bbq_generative import compare_readings
from workbench.stats.metrics import mean_metric

CHAT_LIMIT = int(os.environ.get("WORKBENCH_AUDIT_CHAT_LIMIT", "40"))            # CrowS-Pairs items, raw vs chat
BBQ_LIMIT = int(os.environ.get("WORKBENCH_AUDIT_BBQ_LIMIT", "30"))              # BBQ items: raw, chat, generated
DECISIONS_LIMIT = int(os.environ.get("WORKBENCH_AUDIT_DECISIONS_LIMIT", "96"))  # decision prompts
MAX_NEW_TOKENS = 8  # a letter and a few words: enough for the parser, cheap to generate
LIMITS = {"crows_pairs": CHAT_LIMIT, "bbq": BBQ_LIMIT}
chat_model = models[MODELS[0]]
readings = {}
for probe in ("crows_pairs", "bbq"):
    for fmt in ("raw", "chat"):
        started = time.perf_counter()
        res = wb.run_probe(probe, chat_model, data=DATA / probe, limit=LIMITS[probe], seed=SEED, format=fmt)
        readings[probe, fmt] = res
        card.add_result(f"{probe} ({fmt}) / {chat_model.name}", res)
        print(f"{probe} ({fmt}) on {MODELS[0]}: {len(res.items)} items in {time.perf_counter() - started:.0f} s")
chat_paired = {p: wb.compare(readings[p, "chat"], readings[p, "raw"]) for p in ("crows_pairs", "bbq")}
# BBQ's own metrics are ratios (bootstrap intervals only from 100 items): the overall accuracy, a
# per-item 0/1 outcome, gets an exact paired interval (McNemar) at any n
acc = mean_metric("acc", "correct", scale=100, ideal=100, description="% correct, all contexts")
chat_paired["bbq"] = pd.concat([wb.compare(*(replace(readings["bbq", f].comparable(), metrics=[acc])
                                             for f in ("chat", "raw"))), chat_paired["bbq"]], ignore_index=True)
for p, frame in chat_paired.items():
    card.add_result(f"chat vs raw: {p}", frame, note=f"diff = chat - raw, {MODELS[0]}, the same {LIMITS[p]} items")
card.add_finding("CrowS-Pairs: chat vs raw", readings["crows_pairs", "chat"], readings["crows_pairs", "raw"],
                 "pct_stereotype", comparison=chat_paired["crows_pairs"], unit="points")
pd.concat([f[f.category == "all"].assign(probe=p) for p, f in chat_paired.items()], ignore_index=True).round(3)

# %%
started = time.perf_counter()
generative = wb.run_probe("bbq_generative", chat_model, data=DATA / "bbq", limit=BBQ_LIMIT, seed=SEED,
                          max_new_tokens=MAX_NEW_TOKENS, batch_size=16)
print(f"bbq_generative on {MODELS[0]}: {len(generative.items)} answers in {time.perf_counter() - started:.0f} s")
both = compare_readings(generative, readings["bbq", "chat"])  # the same items, read by log-likelihood
card.add_result(f"bbq_generative / {chat_model.name}", generative)
card.add_result("BBQ: generative vs log-likelihood agreement", both["agreement"])
card.add_result("BBQ: generative vs log-likelihood", both["compare"],
                note="diff = generative - log-likelihood (chat), paired by item")
gen = generative.summary().set_index(["metric", "category"])
for metric in ("acc_ambig", "acc_disambig", "unparseable"):
    r = gen.loc[(metric, "all")]
    print(f"generative {metric}: {fmt_interval(r.value, r.ci_low, r.ci_high)} (n = {int(r.n)})")
display(both["agreement"].round(3))
both["compare"][both["compare"].category == "all"].round(3)

# %%
started = time.perf_counter()
decisions = wb.run_probe("decisions", chat_model, limit=DECISIONS_LIMIT, seed=SEED)
print(f"decisions on {MODELS[0]}: {len(decisions.items)} prompts in {time.perf_counter() - started:.0f} s")
card.add_result(f"decisions / {chat_model.name}", decisions)
effects = decisions.summary().query("metric == 'effect_logit'")
effects.assign(estimate=[fmt_interval(v, lo, hi, signed=True)
                         for v, lo, hi in zip(effects.value, effects.ci_low, effects.ci_high)]
               )[["category", "estimate", "n"]].rename(columns={"category": "term (change in log-odds of yes)"})

# %% [markdown]
# ## Findings
# One row per probe or task: each model's value with its interval, the paired difference, the
# Holm-adjusted p-value across these rows, and a reading that says no more than the numbers do.
# The report (`workbench audit`) opens with this table.

# %%
from IPython.display import HTML, display
from workbench.audit.figures import differences_svg

display(card.findings())
display(HTML(differences_svg(card.data["findings"])))

# %% [markdown]
# ## Limitations
# * **CrowS-Pairs**: many pairs are not minimal or mix several changes (Blodgett et al. 2021); the
#   categories are US-centric; for causal models, full-sentence log-likelihood also rewards shorter
#   or more frequent wording, not only the stereotype.
# * **StereoSet**: noisy items and an ill-defined "unrelated" option; ss and lms trade off, and icat
#   combines them in a way that hides which one moved.
# * **WinoBias**: occupations and pronouns are binary-gendered and US labour-statistics based; a
#   gap measures pronoun preference in templated sentences, not behaviour in use.
# * **BLiMP**: a subset of paradigms per run here; accuracy on synthetic minimal pairs is a coarse
#   capability control, not a measure of usefulness.
# * **Scale**: two small models, seeded subsets of each data set; the intervals say how far the
#   numbers can be trusted. Nothing here says how larger models, other languages or other prompts behave.
# * **Contamination check**: one test, on the more stereotyping sentences in file order; its power
#   (the preference for the file's order it finds 80% of the time) is in the report. It cannot see
#   CrowS-Pairs seen shuffled, split up or deduplicated, in another form or paraphrased, or seen too
#   rarely to leave a preference that large; a large p does not show a clean model.
# * **As a chat model**: small samples (wide intervals); one chat template, no system prompt, greedy
#   replies of a few tokens; the parser maps replies to options by fixed rules and counts the rest as
#   unparseable (wrong); the decision scenarios are the project's own, not a deployment's.

# %%
for subject, text in [
    ("CrowS-Pairs", "Pairs often not minimal; US-centric categories; log-likelihood also rewards frequent wording."),
    ("StereoSet", "Noisy items; ss and lms trade off inside icat."),
    ("WinoBias", "Binary gender and US occupation statistics; templated sentences only."),
    ("BLiMP", f"{BLIMP_LIMIT} pairs per paradigm; synthetic minimal pairs, a coarse capability control."),
    ("How the models were made", "Only what the files carry is read (no model card ships with either GGUF); "
                                 "indicators that concern the developers' data, labour, compute and policies "
                                 "cannot be checked from files."),
    ("Contamination check", f"One test (exchangeability) on the more stereotyping sentence of "
                            f"{len(contamination_texts)} CrowS-Pairs items in file order. It finds a preference for "
                            "the file's order of " + " and ".join(f"{p.attrs['delta_80']:.2g} ({a})"
                                                                  for a, p in power.items()) +
                            " nats per item 80% of the time; it cannot see a smaller one, nor CrowS-Pairs seen "
                            "shuffled, split up or deduplicated, in another form (the CSV row with both sentences, "
                            "a page quoting items), paraphrased, or too rarely to leave such a preference. A large "
                            "p does not show a clean model; a small one does not say how the items got in."),
    ("Scale", f"Two small models, {PROBE_LIMIT} seeded items per probe; read the intervals."),
    ("As a chat model", f"{CHAT_LIMIT} CrowS-Pairs and {BBQ_LIMIT} BBQ items (raw, chat, generated) "
                        f"(replies of at most {MAX_NEW_TOKENS} tokens), {DECISIONS_LIMIT} decision prompts; one template, "
                        "no system prompt; unparseable replies counted as wrong."),
]:
    card.add_limitation(subject, text)

# %% [markdown]
# ## How to re-run
# ```bash
# bash run.sh audit                                   # set-up + this notebook headless -> out/audit/report.html
# python -m workbench audit --probe-limit 500 --blimp-limit 50   # larger samples, narrower intervals
# ```
# Scores are cached by model fingerprint and BLiMP items live in the results store, so a second
# run is much faster. The card below (also `audit_card.json`) records everything needed to check
# that a re-run used the same models, data and software.

# %%
path = card.save()
print(f"audit card saved: {path.name}")

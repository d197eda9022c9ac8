# %% [markdown]
# # Audit notebook: one audit file, run and read
#
# *An audit published with the Open Model Workbench. Every number below comes with the fingerprint
# of the model that produced it, a confidence interval and the item-level rows behind it; the
# audit card at the end is the machine-readable record of this run.*
#
# This notebook is thin on purpose: the audit is **one YAML file** (models, probes and tasks,
# sample sizes, seed), given in the `parameters` cell below, and all the work is
# `wb.audit(...)` (`workbench/audit/`). With `audit_file = None` it is the flagship audit of the
# embedded models (`workbench/audit/flagship.yaml`): SmolLM2-135M-Instruct and Gemma 3 270M on
# CrowS-Pairs, StereoSet, WinoBias and BLiMP, SmolLM2 as a chat model, how both were made, and
# the contamination check on CrowS-Pairs.
#
# * `workbench audit` runs this notebook headless with the audit file injected after the
#   `parameters` cell (papermill's convention: `papermill flagship_audit.ipynb out.ipynb -p
#   audit_file my_audit.yaml` does the same), and writes `report.html`, `audit_card.json`,
#   `ml_bom.json` and the executed `notebook.ipynb` into its `--out` folder.
# * Scoring goes through the runner's store (`audit_store.db` in the output folder): an
#   interrupted run, started again, scores only what is missing.
# * **Statistics**: exact intervals for proportions (Clopper-Pearson), paired comparisons on the
#   same items (McNemar's exact test for binary outcomes, an exact sign-flip test for continuous
#   ones), Holm-adjusted across the headline table; the power of each comparison, exact for
#   McNemar's test, is in the report.

# %% tags=["parameters"]
audit_file = None    # the audit: the path of a YAML audit file, its text, or None for the flagship audit
out = None           # where the card, report, ML-BOM and store go (None: a folder per audit in the workbench cache)
audit_source = None  # the file as its author wrote it, recorded verbatim ("": none was; workbench audit passes it)

# %%
from pathlib import Path

import pandas as pd
from IPython.display import HTML, display

import workbench as wb
from workbench.audit.spec import parse_spec
from workbench.paths import cache_dir

spec = parse_spec(audit_file)
if audit_source is not None:  # workbench audit says what file was given ("" when the audit came from arguments)
    spec.text = audit_source or None
out = Path(out) if out else cache_dir() / "audits" / spec.identity()
pd.set_option("display.max_colwidth", 90)
print(spec.to_yaml())

# %% [markdown]
# ## Run
# Each step prints a line when it is done; each probe on each model prints how far it is.

# %%
audit = wb.audit(spec, out=out)

# %% [markdown]
# ## Findings
# First every model on every probe (each probe's metric with its 95% interval), then every pair
# on the same items: the paired difference, the Holm-adjusted p-value across all rows, the
# difference the test could detect with 80% power, and a reading that says no more than the
# numbers do.

# %%
display(audit.overview().pivot(index="model", columns="probe", values="value").round(1))
audit.headline()

# %% [markdown]
# ## As deployed against as published
# Where two audited specs are one model run two ways (another backend or precision), the items
# whose decision flips between them, with McNemar's exact test of whether the flips lean one way.

# %%
audit.deployment()

# %% [markdown]
# ## Item-level examples
# The CrowS-Pairs pairs each model prefers the stereotyping sentence on most strongly. Read them:
# several are not minimal pairs, or the two sentences differ in more than the social group.

# %%
for m in spec.models:
    if (m.label, "probe:crows_pairs") in audit.cells:
        items = audit.items(m.label, "crows_pairs")
        top = items.assign(diff=items.score_more - items.score_less).nlargest(3, "diff")
        display(top[["bias_type", "sent_more", "sent_less", "diff"]].assign(model=m.label))

# %% [markdown]
# ## The report
# The card as the report shows it (`report.html` in the output folder is the same page).

# %%
display(HTML(audit.card.to_html()))
print(f"card: {audit.paths['card'].name}, report: {audit.paths['report'].name}, ML-BOM: {audit.paths['bom'].name}")

# %% [markdown]
# # 4. Attribution: which tokens of the prompt does a prediction rest on?
#
# Token attributions explain the log-probability of a target continuation by the prompt's tokens,
# with three captum methods: feature ablation (replace one token at a time), Shapley value sampling
# (average marginal effect over random orders) and layer integrated gradients on the embeddings.
#
# Attributions are easy to over-read. Every one comes with **sanity checks**: completeness (for
# integrated gradients the attributions must add up to the change in the target's log-probability)
# and a **randomised-model check** (attributions on a weight-randomised copy should look different;
# if they do not, the method is showing the input, not the model).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import workbench as wb

model = wb.load_model("smollm2-135m-instruct")
prompt, target = "The nurse told the doctor that", " she"

# %%
ablation = wb.attribute(model, prompt, target, method="feature_ablation")
ablation  # renders as highlighted text, with the sanity checks

# %%
ablation.summary()

# %% [markdown]
# ## Three methods side by side
# Agreement between methods is evidence; disagreement is a reason to look closer. The baseline token
# (what an "absent" token becomes) is a choice that changes the numbers: it is recorded in `.attrs`.

# %%
methods = {"feature_ablation": ablation}
methods["shapley_sampling"] = wb.attribute(model, prompt, target, method="shapley_sampling", n_samples=4,
                                           random_check=False)
methods["integrated_gradients"] = wb.attribute(model, prompt, target, method="integrated_gradients", n_steps=16,
                                               random_check=False)
table = pd.DataFrame({name: df["attribution"].to_numpy() for name, df in methods.items()},
                     index=ablation["token"])
table.round(3)

# %%
ax = table.plot.bar(figsize=(8, 3.5))
ax.set_ylabel(f"attribution to log P({target!r}) (nats)")
plt.show()

# %%
methods["integrated_gradients"].summary()

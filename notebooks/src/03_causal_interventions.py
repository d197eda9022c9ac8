# %% [markdown]
# # 3. Causal interventions: ablation, activation patching, steering
#
# Reading activations shows correlation; changing them shows cause. Each intervention here is a
# hook on the unmodified model, registered in `model.interventions` while active (so the score
# cache never mixes steered and plain results) and removed afterwards, even after an error.
#
# The running example: after "The nurse said that", how much more does the model expect " she"
# than " he"? The metric is log P(" she") - log P(" he").

# %%
import matplotlib.pyplot as plt
import workbench as wb

model = wb.load_model("smollm2-135m-instruct")
prompt, metric = "The nurse said that", (" she", " he")
base = wb.loglikelihood(model, [(prompt, " she"), (prompt, " he")])["logprob"]
print(f"log P(' she') - log P(' he') = {base[0] - base[1]:.3f}")

# %% [markdown]
# ## Ablation: which heads matter?
# Zero each attention head in turn and measure the change in the metric. (Mean and resample
# ablation are gentler and often more faithful: `method="mean"` or `"resample"` with reference texts.)
# Every third layer here, to keep the notebook quick on a CPU; drop `layers=` to scan them all.

# %%
every_third = list(range(0, model.n_layers, 3))
ablation = wb.inspect.ablate(model, prompt, metric, component="head", method="zero", layers=every_third)
ablation.summary()

# %%
ablation.plot()
plt.show()

# %% [markdown]
# ## Activation patching: where is the information carried?
# Run a clean prompt and a corrupted one that differs in one word, then copy ("patch") the clean
# residual stream into the corrupted run one layer and position at a time. Where patching restores
# the clean behaviour, that activation carries the difference.

# %%
patching = wb.inspect.patch(model, clean="The nurse said that", corrupted="The pilot said that", metric=metric,
                            by="layer_position", site="resid_pre", layers=every_third)
patching.plot()
plt.show()

# %% [markdown]
# ## Steering: add a direction
# A direction from the difference of means of two contrast sets, added to the residual stream at
# one layer during scoring and generation. The strength is in units of the direction's length:
# push too hard and the text stops being fluent, which is itself a cost to report.

# %%
she = ["She is a nurse.", "She works as a nurse.", "My sister is a teacher.", "The woman is a doctor."]
he = ["He is a nurse.", "He works as a nurse.", "My brother is a teacher.", "The man is a doctor."]
direction = wb.inspect.steering_vector(model, positive=she, negative=he, layer=model.n_layers // 2)
for strength in (-2.0, 0.0, 2.0):
    with wb.inspect.steer(model, direction, strength=strength):
        s = wb.loglikelihood(model, [(prompt, " she"), (prompt, " he")])["logprob"]
        text = wb.generate(model, ["The pilot said that"], max_new_tokens=8)["completion"][0]
    print(f"strength {strength:+.0f}: metric {s[0] - s[1]:+.3f} | 'The pilot said that{text}'")
print("interventions left active:", model.interventions)

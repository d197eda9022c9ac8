# %% [markdown]
# # 2. Inside the model: activations, the logit lens, attention patterns
#
# The workbench reads activations through forward hooks on the **unmodified** Hugging Face model,
# with one readable name per site on every architecture (`embed`, `resid_pre`, `attn_out`,
# `resid_mid`, `mlp_out`, `resid_post`, `attn_pattern`, `q`, `k`, `v`, `mlp_hidden`,
# `final_norm`, `logits`). Nothing is re-implemented, and the first cell proves it.

# %%
import matplotlib.pyplot as plt
import workbench as wb
from workbench.widgets import attention_explorer, logit_lens_explorer

model = wb.load_model("smollm2-135m-instruct")
print(model.name, model.fingerprint_id, f"{model.n_layers} layers")

# %% [markdown]
# ## Fidelity: hooks change nothing
# With every hook installed, the logits are bit-identical to the plain model's, and the captured
# `resid_post` equals `output_hidden_states`. Audits print this check next to their results.

# %%
fidelity = wb.inspect.verify(model)
print("fidelity check passed:", fidelity.ok)
fidelity.summary()

# %% [markdown]
# ## Capture only what you ask for
# Activations are moved off the compute device (and optionally down-cast) as they are produced, so
# asking for two layers costs two layers of memory, not thirty.

# %%
texts = ["The Eiffel Tower is in Paris.", "The Colosseum is in Rome."]
cache = wb.capture(model, texts, sites=["resid_post", "mlp_out"], layers=[0, 15, model.n_layers - 1])
print(cache)
resid = cache["resid_post", 15]
print("resid_post at layer 15:", tuple(resid.shape), "(batch, tokens, d_model)")

# %% [markdown]
# ## Logit lens
# Decode each layer's residual stream through the model's final norm and unembedding: where does
# the answer first become the model's top guess?

# %%
prompt = "The capital of France is"
lens = wb.logit_lens(model, prompt, targets=[" Paris", " London"], k=5)
lens.tail(8)

# %%
wb.inspect.plot_logit_lens(lens, value="prob", target=" Paris")
plt.show()

# %% [markdown]
# Explore it: edit the text (press Enter) and pick a target to follow through the layers.

# %%
logit_lens_explorer(model, prompt, targets=[" Paris", " London"])

# %% [markdown]
# ## Attention patterns
# Per layer and head. The summary flags typical head types: "previous-token" heads and heads that
# park their attention on the first token (an attention sink).

# %%
attn = wb.inspect.attention(model, "When Mary and John went to the store, John gave a drink to", layers=[0, 3])
attn.summary().sort_values("to_previous", ascending=False).head()

# %%
attn.plot(layer=3)
plt.show()

# %% [markdown]
# Or browse every layer and head with the sliders:

# %%
attention_explorer(model, "When Mary and John went to the store, John gave a drink to")

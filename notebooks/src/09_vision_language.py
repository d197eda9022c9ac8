# %% [markdown]
# # 9. Vision-language models: scoring, inspection, attribution and a bias probe with images
#
# **The numbers in this notebook mean nothing.** It runs on a tiny vision-language model with
# random weights (a real LLaVA architecture and processor, 2 layers, 32x32 images), so that it runs
# anywhere in seconds. To audit a real model, load it instead, e.g.
# `vlm = wb.load_model("llava-hf/llava-1.5-7b-hf")` (or a local folder holding the model and its
# processor, saved with `save_pretrained`); every cell below then runs unchanged.
# `docs/vision_language.md` lists the families covered and what each capability does on them.

# %%
import tempfile

import workbench as wb
from workbench.testing import save_tiny_vlm, tiny_image

folder = save_tiny_vlm(tempfile.mkdtemp(), "llava")
vlm = wb.load_model(folder)
img = tiny_image(0, pattern="split")
vlm.kind, vlm.fingerprint_id

# %% [markdown]
# ## Scoring text given an image
# The same request kinds and result columns as for text; the cache keys on the image's pixels.

# %%
wb.loglikelihood(vlm, [("A picture of", " a cat"), ("A picture of", " a dog")], images=[[img], [img]])

# %%
wb.generate(vlm, ["Describe the picture."], images=[[img]], max_new_tokens=5)

# %% [markdown]
# ## Inspection: sites, verification, attention to the image, patching

# %%
cache = wb.capture(vlm, ["Describe the picture."], images=[[img]], sites=["resid_post", "projector", "vision.resid_post"])
{k: tuple(v.shape) for k, v in cache.data.items()}

# %%
wb.inspect.verify(vlm).summary()

# %%
att = wb.vision.image_attention(vlm, "What is shown in the picture?", img, layer=0)
att  # an offline widget: click a token to see where it attends in the image

# %%
import torch

clean, same = wb.vision.edit_image_tokens(vlm, "A picture", [img], source_images=[img.copy()])
clean2, other = wb.vision.edit_image_tokens(vlm, "A picture", [img], source_images=[tiny_image(5)])
torch.equal(clean, same), float((clean2 - other).abs().max())

# %% [markdown]
# ## Attribution over image patches

# %%
from workbench.vision.attribution import image_patch_attribution

attr = image_patch_attribution(vlm, "A picture of", " a cat", img, method="shapley", n_samples=4)
attr.plot();
attr.provenance["completeness_gap"]

# %% [markdown]
# The same over the prompt's text tokens (the image fixed), with the sanity checks of text
# attribution: completeness and the rank correlation with a weight-randomised copy.

# %%
from workbench.vision.prompt import prompt_token_attribution

tokens = prompt_token_attribution(vlm, "The doctor said", " hello", img)
tokens.frame, tokens.sanity

# %% [markdown]
# ## A counterfactual image bias probe
# Sets of images that differ in one attribute of the figure shown, scored on the same captions,
# compared within sets with exact paired tests. The synthetic set shows the pipeline works (the
# `control` images equal the `dark` ones, so their differences are exactly zero); it shows nothing
# about bias. With real data: `wb.vision.load_pairs("PAIRS")` or
# `wb.vision.load_social_counterfactuals(parquet_files)`.

# %%
from workbench.vision import image_bias, synthetic_counterfactuals

items = synthetic_counterfactuals(n_sets=6)
res = image_bias(vlm, items, [("This person works as a", " doctor"), ("This person is", " kind")])
res.summary()

# %% [markdown]
# The same analysis through the probe machinery (skips, provenance, `wb.compare`):

# %%
wb.run_probe("image_counterfactual", vlm, data=items, captions=[("This person works as a", " doctor")]).summary()

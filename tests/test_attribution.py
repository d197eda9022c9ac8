"""Token attribution on tiny random-initialised models: exact properties, and agreement with
captum's own one-perturbation-at-a-time LLM attribution."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.testing import tiny_model

METHODS = ["feature_ablation", "shapley_sampling", "integrated_gradients"]
PROMPT = "The doctor said that the nurse"


def _zero_layer(arch):
    key = {"gpt2": "n_layer", "distilbert": "n_layers"}.get(arch, "num_hidden_layers")
    return tiny_model(arch, **{key: 0})


def _masked_prompt(model):
    return f"The {model.tokenizer.mask_token} said that she would come.", "doctor"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma3_text"])
def test_tokens_that_cannot_reach_the_output_get_exactly_zero(arch, method):
    # With no transformer layers, position t's logits depend on token t alone: every prompt token
    # but the last cannot reach the target's logits, so ablating it has no effect at all.
    m = _zero_layer(arch)
    df = wb.attribute(m, PROMPT, " she", method=method, random_check=False)
    assert np.abs(df["attribution"].to_numpy()[:-1]).max() < 1e-6
    delta = df.attrs["logprob_target"] - df.attrs["logprob_baseline"]
    assert abs(delta) > 1e-4
    assert df["attribution"].iloc[-1] == pytest.approx(delta, rel=1e-2, abs=1e-5)  # IG: up to n_steps


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_masked_lm_without_layers_attributes_nothing_to_context(arch, method):
    m = _zero_layer(arch)
    prompt, target = _masked_prompt(m)
    df = wb.attribute(m, prompt, target, method=method, random_check=False)
    assert len(df) > 3 and np.abs(df["attribution"].to_numpy()).max() < 1e-6


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("arch", ["gpt2", "qwen2", "bert"])
def test_a_token_ablated_to_itself_has_zero_attribution(tiny, arch, method):
    m = tiny(arch)
    if m.kind == "causal":
        prompt, target = PROMPT, " she"
    else:
        prompt, target = _masked_prompt(m)
    base_id = m.tokenizer(" that" if m.kind == "causal" else "that", add_special_tokens=False)["input_ids"]
    assert len(base_id) == 1
    df = wb.attribute(m, prompt, target, method=method, baseline=base_id[0], random_check=False)
    same = df["token_id"] == base_id[0]
    assert same.sum() == 1
    assert abs(df.loc[same, "attribution"].item()) < 1e-6
    assert np.abs(df.loc[~same, "attribution"].to_numpy()).max() > 1e-5   # the others do matter


@pytest.mark.parametrize("arch", ["gpt2", "llama", "roberta"])
def test_shapley_values_sum_exactly_to_the_total_effect(tiny, arch):
    m = tiny(arch)
    prompt, target = (PROMPT, " she") if m.kind == "causal" else _masked_prompt(m)
    df = wb.attribute(m, prompt, target, method="shapley_sampling", n_samples=3, random_check=False)
    check = df.summary().set_index("check").loc["completeness"]
    assert check["value"] == pytest.approx(check["reference"], abs=1e-5)
    assert check["ok"]


def test_integrated_gradients_is_complete_and_converges_with_steps(tiny):
    m = tiny("llama")
    gaps = []
    for steps in (4, 256):
        df = wb.attribute(m, PROMPT, " she and he", method="integrated_gradients", n_steps=steps,
                          random_check=False)
        c = df.summary().set_index("check").loc["completeness"]
        gaps.append(abs(c["value"] - c["reference"]))
        # captum's own convergence delta is the same quantity
        assert df.attrs["convergence_delta"] == pytest.approx(c["value"] - c["reference"], abs=1e-4)
    assert gaps[1] < 1e-3 and df.ok


def test_feature_ablation_matches_captums_llm_attribution(tiny):
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput
    m = tiny("gpt2")
    ours = wb.attribute(m, PROMPT, " she", random_check=False, batch_size=4)
    ref = LLMAttribution(FeatureAblation(m.hf), m.tokenizer).attribute(
        TextTokenInput(PROMPT, m.tokenizer, baselines=m.tokenizer.pad_token_id), target=" she",
        forward_in_tokens=False)
    np.testing.assert_allclose(ours["attribution"].to_numpy(), ref.seq_attr.numpy(), atol=1e-5)
    assert ours.attrs["baseline_id"] == m.tokenizer.pad_token_id


def test_batch_size_does_not_change_the_numbers(tiny):
    m = tiny("mistral")
    a = wb.attribute(m, PROMPT, " she", batch_size=1, random_check=False)["attribution"].to_numpy()
    b = wb.attribute(m, PROMPT, " she", batch_size=64, random_check=False)["attribution"].to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("arch", ["phi", "gemma"])
def test_target_logprob_is_the_scoring_engines(tiny, arch):
    m = tiny(arch)
    df = wb.attribute(m, PROMPT + " ", "she said", random_check=False)
    ll = wb.loglikelihood(m, [(PROMPT + " ", "she said")], cache=False)
    assert df.attrs["logprob_target"] == pytest.approx(float(ll["logprob"].iloc[0]), abs=1e-5)
    assert len(df.attrs["target_tokens"]) == int(ll["n_tokens"].iloc[0])


def test_randomised_model_check_leaves_the_model_alone(tiny):
    m = tiny("gpt_neox")
    before = {k: v.clone() for k, v in m.hf.state_dict().items()}
    df = wb.attribute(m, PROMPT, " she", method="feature_ablation")
    assert "attribution_random" in df.columns
    assert not np.allclose(df["attribution"], df["attribution_random"])
    row = df.summary().set_index("check").loc["randomised model"]
    assert -1 <= row["value"] <= 1
    after = m.hf.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_result_is_a_dataframe_and_renders_offline(tiny):
    m = tiny("gpt2")
    df = wb.attribute(m, "A <b>cat</b> & the dog", " sat", random_check=False)
    assert isinstance(df, pd.DataFrame) and {"token", "attribution"} <= set(df.columns)
    derived = df.sort_values("attribution")                       # derived frames are plain data
    assert isinstance(derived, pd.DataFrame) and not isinstance(derived, type(df))
    page = df._repr_html_()
    assert "<b>cat" not in page and "&lt;" in page and "&amp;" in page   # user text is escaped
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert page.count("title=\"+") + page.count("title=\"-") == len(df)
    assert type(df.to_frame()) is pd.DataFrame and df.to_frame().attrs["method"] == "feature_ablation"


def test_save_html_and_plot(tiny, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    df = wb.attribute(tiny("gpt2"), PROMPT, " she")
    df.save_html(tmp_path / "a.html")
    text = (tmp_path / "a.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and "randomised model" in text
    ax = df.plot()
    assert len(ax.patches) == 2 * len(df)


def test_active_interventions_are_recorded(tiny):
    m = tiny_model("gpt2")
    m.interventions.append({"kind": "test", "layer": 0})
    try:
        df = wb.attribute(m, PROMPT, " she", random_check=False)
    finally:
        m.interventions.clear()
    assert df.attrs["interventions"] == [{"kind": "test", "layer": 0}]
    assert df.attrs["state_id"] != m.state_id


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="lime"), "unknown method"),
    (dict(n_steps=0), "n_steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(baseline=" doctor said"), "one token"),
    (dict(baseline=10_000), "outside the vocabulary"),
])
def test_bad_options_say_what_to_do(tiny, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        wb.attribute(tiny("gpt2"), PROMPT, " she", random_check=False, **kwargs)


def test_bad_inputs(tiny):
    bert = tiny("bert")
    with pytest.raises(InvalidInputError, match="mask token"):
        wb.attribute(bert, "no mask here", "doctor")
    with pytest.raises(InvalidInputError, match="exactly once"):
        wb.attribute(bert, "[MASK] and [MASK]", "doctor")
    with pytest.raises(InvalidInputError, match="target is empty"):
        wb.attribute(tiny("gpt2"), PROMPT, "  ")
    enc = wb.Model.from_hf(bert.hf.bert, bert.tokenizer, kind="encoder")
    with pytest.raises(WrongModelKindError, match="LM head"):
        wb.attribute(enc, "The [MASK] came.", "doctor")


@pytest.mark.parametrize("method", METHODS)
def test_contrast_is_the_difference_of_two_attributions(tiny, method):
    m = tiny("qwen2")
    kw = dict(method=method, random_check=False, n_samples=2, n_steps=16)
    he = wb.attribute(m, PROMPT, " he", **kw)
    she = wb.attribute(m, PROMPT, " she", **kw)
    diff = wb.attribute(m, PROMPT, " he", contrast=" she", **kw)
    np.testing.assert_allclose(diff["attribution"], he["attribution"] - she["attribution"], atol=1e-6)
    assert diff.attrs["logprob_target"] == pytest.approx(he.attrs["logprob_target"] - she.attrs["logprob_target"])
    with pytest.raises(InvalidInputError, match="always 0"):
        wb.attribute(m, PROMPT, " he", contrast=" he", random_check=False)


def test_randomised_copy_drops_intervention_hooks(tiny):
    from workbench.attribution.sanity import randomized_copy
    m = tiny_model("llama", seed=3)
    handle = m.hf.model.layers[0].register_forward_hook(lambda mod, a, o: o)
    try:
        rnd = randomized_copy(m.hf, seed=5)
    finally:
        handle.remove()
    assert all(not mod._forward_hooks for mod in rnd.modules())
    assert randomized_copy(m.hf, seed=5) is rnd                  # cached per model and seed
    w, rw = m.hf.model.embed_tokens.weight, rnd.model.embed_tokens.weight
    assert not torch.equal(w, rw) and float(rw.detach().std()) == pytest.approx(float(w.detach().std()), rel=0.05)

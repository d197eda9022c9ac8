"""Logit lens and attention patterns."""
import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2", "bert", "distilbert"])
def test_last_layer_of_the_lens_is_the_models_prediction(tiny, arch):
    m = tiny(arch)
    text = "The cat sat on the mat"
    df = wb.logit_lens(m, text, k=3)
    enc = m.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        probs = m.hf(**enc).logits[0].softmax(-1)
    last = df[df.layer == m.n_layers - 1].drop_duplicates("position")
    for row in last.itertuples():
        top = probs[row.position].topk(3)
        assert row.top_tokens == m.tokenizer.convert_ids_to_tokens(top.indices.tolist())
        assert row.top_probs == pytest.approx(top.values.tolist(), abs=1e-5)


def test_default_targets_are_the_next_tokens_and_ranks_are_consistent(tiny):
    m = tiny("llama")
    df = wb.logit_lens(m, "The cat sat on the mat")
    ids = m.tokenizer("The cat sat on the mat")["input_ids"]
    first = df[df.layer == 0]
    assert first["target_id"].tolist()[:-1] == ids[1:]
    assert first["target"].isna().iloc[-1] and first["rank"].isna().iloc[-1]
    top1 = df[df["rank"] == 0]
    assert all(r.target == r.top_tokens[0] for r in top1.itertuples())
    assert ((df["prob"].dropna() > 0) & (df["prob"].dropna() < 1)).all()


def test_masked_lm_default_target_is_the_token_itself(tiny):
    m = tiny("bert")
    df = wb.logit_lens(m, "the cat sat")
    ids = m.tokenizer("the cat sat")["input_ids"]
    assert df[df.layer == 0]["target_id"].tolist() == ids


def test_targets_and_layers(tiny):
    m = tiny("gpt2")
    df = wb.logit_lens(m, "Paris is the capital of", targets=[" France", " the"], layers=[1], positions="last")
    assert df.shape[0] == 2 and set(df.layer) == {1}
    assert df.target.tolist() == [" France", " the"]
    assert df.attrs["provenance"]["readout"].startswith("final norm")
    with pytest.raises(InvalidInputError):
        wb.logit_lens(m, "")
    with pytest.raises(InvalidInputError):
        wb.logit_lens(m, "text", k=0)


def test_lens_plot(tiny):
    import matplotlib
    matplotlib.use("Agg")
    from workbench.inspect.lens import plot_logit_lens
    df = wb.logit_lens(tiny("llama"), "The cat sat on the", targets=[" mat"])
    assert plot_logit_lens(df) is not None
    assert plot_logit_lens(wb.logit_lens(tiny("llama"), "The cat sat"), value="rank") is not None


def test_attention_patterns(tiny):
    import matplotlib
    matplotlib.use("Agg")
    res = wb.inspect.attention(tiny("gpt2"), "The cat sat on the mat")
    f = res.to_frame()
    sums = f.groupby(["layer", "head", "query_pos"])["weight"].sum()
    assert sums.to_numpy() == pytest.approx(1.0, abs=1e-5)
    assert f[f.key_pos > f.query_pos]["weight"].abs().max() == 0  # causal
    assert any("eager" in n for n in res.notes)
    assert res.summary().shape == (8, 5)
    assert res.plot(layer=1) is not None and res.plot(layer=0, head=2) is not None
    enc = wb.inspect.attention(tiny("bert"), "the cat sat")
    assert enc.frame.query("key_pos > query_pos")["weight"].max() > 0  # bidirectional

"""capture: positions, dtype, padding, batching, generation, memory refusal, eager switch."""
import warnings

import pytest
import torch

import workbench as wb
from workbench.errors import DoesNotFitError, InvalidInputError, UnsupportedSiteError

TEXTS = ["The doctor said that she would arrive soon.", "A cat sat.", "Paris is the capital of France."]


def test_cache_matches_hidden_states_per_text_unpadded(tiny):
    """Right padding: each text's real positions equal a run of that text alone (causal mask)."""
    m = tiny("llama")
    cache = wb.capture(m, TEXTS, sites=["resid_post"], layers=[0])
    for i, text in enumerate(TEXTS):
        enc = m.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            alone = m.hf(**enc, output_hidden_states=True).hidden_states[1][0]
        n = int(cache.attention_mask[i].sum())
        assert n == alone.shape[0]
        torch.testing.assert_close(cache["resid_post", 0][i, :n], alone, atol=1e-5, rtol=1e-5)
        assert (cache["resid_post", 0][i, n:] == 0).all()  # padding is zeros
        assert cache.str_tokens[i] == m.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])


def test_batch_size_does_not_change_values(tiny):
    m = tiny("gpt2")
    a = wb.capture(m, TEXTS, sites=["resid_post", "mlp_hidden"], batch_size=1)
    b = wb.capture(m, TEXTS, sites=["resid_post", "mlp_hidden"], batch_size=3)
    mask = a.attention_mask.bool()
    for key in a.keys():
        torch.testing.assert_close(a[key][mask], b[key][mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("positions", [None, [0, -1]])
def test_batches_land_in_place_for_every_site_shape(tiny, positions):
    """Batches of different padded widths are written into one result per site: every site's
    shape (3-D, per-head 4-D, attention [b, h, q, k]) equals a one-batch capture, with zeros
    beyond each text's end, also when down-cast."""
    m = tiny("llama")
    sites = ["resid_post", "q", "k", "attn_pattern", "mlp_hidden", "logits"]
    texts = TEXTS + ["Short.", "A much longer sentence that pads the others in its batch a lot."]
    one = wb.capture(m, texts, sites=sites, positions=positions, batch_size=len(texts), dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = wb.capture(m, texts, sites=sites, positions=positions, batch_size=2, dtype=torch.bfloat16)
    assert one.keys() == two.keys()
    for key in one.keys():
        assert two[key].dtype == torch.bfloat16 and two[key].shape == one[key].shape, key
        torch.testing.assert_close(two[key].float(), one[key].float(), atol=2e-2, rtol=2e-2)
    if positions is None:
        lengths = one.attention_mask.sum(1)
        for i, n in enumerate(lengths.tolist()):
            assert (two["resid_post", 1][i, n:] == 0).all() and (two["q", 0][i, n:] == 0).all()
            assert (two["attn_pattern", 1][i, :, n:] == 0).all() and (two["attn_pattern", 1][i, :, :, n:] == 0).all()


def test_positions_keep_only_what_was_asked(tiny):
    m = tiny("llama")
    full = wb.capture(m, TEXTS, sites=["resid_post", "attn_pattern"], layers=[1])
    last = wb.capture(m, TEXTS, sites=["resid_post"], layers=[1], positions="last")
    some = wb.capture(m, TEXTS, sites=["resid_post", "attn_pattern"], layers=[1], positions=[0, -1])
    lengths = full.attention_mask.sum(1)
    assert last["resid_post", 1].shape == (3, 1, 32)
    for i in range(3):
        torch.testing.assert_close(last["resid_post", 1][i, 0], full["resid_post", 1][i, lengths[i] - 1])
        torch.testing.assert_close(some["resid_post", 1][i, 1], full["resid_post", 1][i, lengths[i] - 1])
        torch.testing.assert_close(some["attn_pattern", 1][i, :, 1], full["attn_pattern", 1][i, :, lengths[i] - 1])
    assert some.positions[:, 1].tolist() == (lengths - 1).tolist()
    with pytest.raises(InvalidInputError, match="outside text 1"):
        wb.capture(m, TEXTS, sites=["resid_post"], positions=[8])


def test_dtype_downcast_and_layer_selection(tiny):
    m = tiny("qwen2")
    c = wb.capture(m, TEXTS, sites=["resid_post", "logits"], layers=[-1], dtype=torch.float16)
    assert c.keys() == [("resid_post", 1), ("logits", None)]
    assert c["resid_post", -1].dtype == torch.float16
    with pytest.raises(KeyError, match="was not captured"):
        c["resid_post", 0]


def test_attn_pattern_switches_to_eager_and_restores(tiny):
    """The switch is recorded in the result's notes, not warned about: a warning that only says
    which attention kernel ran gives the user nothing to do, and fills notebooks with boxes."""
    m = tiny("mistral")
    assert m.hf.config._attn_implementation == "sdpa"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = wb.capture(m, TEXTS, sites=["attn_pattern"])
        attn = wb.inspect.attention(m, TEXTS[0])
    assert m.hf.config._attn_implementation == "sdpa"
    assert any("from 'sdpa' to 'eager'" in n and "float rounding" in n for n in c.notes)
    assert any("eager" in n for n in attn.notes)
    p = c["attn_pattern", 0]
    mask = c.attention_mask.bool()
    assert torch.allclose(p.sum(-1)[mask[:, None, :].expand(-1, p.shape[1], -1)], torch.tensor(1.0))
    assert torch.triu(p[0, 0], diagonal=1).abs().max() == 0  # causal
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no switch (and no warning) when not needed
        wb.capture(m, TEXTS, sites=["resid_post"])


def test_capture_during_generation(tiny):
    m = tiny("llama")
    c = wb.capture(m, ["The cat", "A dog sat on"], sites=["resid_post", "attn_pattern"], layers=[0], max_new_tokens=5)
    assert c.tokens.shape[1] == c.attention_mask.shape[1]
    seq_fed = c.tokens.shape[1] - 1
    assert c["resid_post", 0].shape == (2, seq_fed, 32)
    # the captured residual stream equals a plain forward pass over the generated text
    with torch.no_grad():
        hs = m.hf(input_ids=c.tokens[:, :-1], attention_mask=c.attention_mask[:, :-1],
                  output_hidden_states=True).hidden_states[1]
    mask = c.attention_mask[:, :-1].bool()
    torch.testing.assert_close(c["resid_post", 0][mask], hs[mask], atol=1e-4, rtol=1e-4)
    with pytest.raises(InvalidInputError, match="positions= is not supported with max_new_tokens"):
        wb.capture(m, ["The cat"], positions="last", max_new_tokens=2)
    with pytest.raises(UnsupportedSiteError, match="logits.*during generation"):
        wb.capture(m, ["The cat"], sites=["logits"], max_new_tokens=2)


def test_refuses_when_estimate_does_not_fit(tiny):
    m = tiny("gpt2")
    with pytest.raises(DoesNotFitError, match=r"would need about .* GiB.*Narrow it: fewer sites.*out='folder'"):
        wb.capture(m, TEXTS, sites="all", max_memory=10_000)
    c = wb.capture(m, TEXTS, sites=["resid_post"], max_memory=10_000_000)
    assert c.provenance["estimate_bytes"]["stored"] == c.nbytes  # the estimate of stored bytes is exact


def test_bad_inputs(tiny):
    m = tiny("gpt2")
    for bad in ([], [""], [1, 2], None):
        with pytest.raises(InvalidInputError):
            wb.capture(m, bad)
    with pytest.raises(InvalidInputError, match="sites is empty"):
        wb.capture(m, TEXTS, sites=[])
    left = {"input_ids": torch.tensor([[1, 5, 6], [7, 8, 9]]), "attention_mask": torch.tensor([[0, 1, 1], [1, 1, 1]])}
    with pytest.raises(InvalidInputError, match="right-padded"):
        wb.capture(m, left)
    right = {"input_ids": torch.tensor([[5, 6, 1], [7, 8, 9]]), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}
    assert wb.capture(m, right)["resid_post", 0].shape == (2, 3, 32)


def test_cache_frame_and_plot(tiny):
    import matplotlib
    matplotlib.use("Agg")
    c = wb.capture(tiny("gemma"), TEXTS, sites=["resid_post", "mlp_out"])
    f = c.to_frame()
    assert set(f.columns) >= {"site", "layer", "shape", "dtype", "mb", "mean_norm"}
    assert len(f) == 4
    assert c.plot("resid_post") is not None
    assert c.stack("resid_post").shape[0] == 2


def test_cache_shows_its_tokens_as_text_and_keeps_the_pieces(tiny):
    """`cache.str_tokens` showed the tokenizer's own pieces (`Ġcat`, `Ċ`) and nothing showed them
    as the package's tables do. `tokens_text` and `token_frame()` show them by the one display rule
    (workbench.display.show_token), while the data keeps the pieces, in place (ids and positions
    of the padded batch)."""
    from workbench.display import show_token
    m = tiny("gpt2")
    texts = ["The cat sat\non the mat.", "A dog", "  two spaces"]
    cache = wb.capture(m, texts, sites=["resid_post"], layers=[0])
    assert any("Ġ" in t or "Ċ" in t for row in cache.str_tokens for t in row)   # the model's tokenizer is byte-level
    assert cache.tokens_text == [[show_token(t) for t in row] for row in cache.str_tokens]
    assert not any(c in t for row in cache.tokens_text for t in row for c in "ĠĊ▁ \n")
    assert "␣cat" in cache.tokens_text[0] or "␣c" in cache.tokens_text[0]
    frame = cache.token_frame()
    assert len(frame) == int(cache.attention_mask.sum())
    for i, text in enumerate(texts):
        rows = frame[frame.text == i]
        assert rows.token.tolist() == cache.str_tokens[i]                          # the data keeps the pieces
        assert m.tokenizer.convert_tokens_to_string(rows.token.tolist()) == text     # and they round-trip
        assert [int(cache.tokens[i, p]) for p in rows.position] == rows.id.tolist()
    shown = repr(frame) + frame._repr_html_() + repr(frame.token) + repr(frame.head(3))
    assert "Ġ" not in shown and "Ċ" not in shown and "␣" in shown and "↵" in shown

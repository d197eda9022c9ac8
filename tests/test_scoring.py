"""The scoring engine against plain transformers, on tiny random models (exact properties)."""
import math

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, WrongModelKindError
from workbench.scoring import tokenize as T
from workbench.engine.masked import shared_token_positions

REQS = [("The doctor said", " hello"), ("", "The cat sat on the mat."), ("Paris is the capital of", " France"),
        ("The nurse told him ", "that the results were good"), ("A", " b c d e f g h i j k l m n o p")]


def plain_logprob(model, ctx_ids, cont_ids):
    ids = torch.tensor([ctx_ids + cont_ids])
    with torch.no_grad():
        logits = model.hf(ids).logits[0].float().log_softmax(-1)
    n = len(ctx_ids)
    return sum(logits[n - 1 + j, t].item() for j, t in enumerate(cont_ids))


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma3_text", "gpt_neox", "phi", "qwen2"])
def test_loglikelihood_equals_plain_transformers(tiny, arch):
    m = tiny(arch)
    df = wb.loglikelihood(m, REQS, cache=False)
    assert list(df.continuation) == [c for _, c in REQS]
    for (ctx, cont), row in zip(REQS, df.itertuples()):
        c_ids, x_ids = T.encode_pair(m.tokenizer, ctx, cont, add_bos=False)
        assert row.n_tokens == len(x_ids)
        assert row.logprob == pytest.approx(plain_logprob(m, c_ids, x_ids), abs=1e-4)
        assert row.logprob == pytest.approx(sum(row.token_logprobs), abs=1e-6)


@pytest.mark.parametrize("budget", [16, 40, 100, 10_000])
def test_results_do_not_depend_on_batching_or_order(tiny, budget):
    m = tiny("llama")
    alone = [wb.loglikelihood(m, [r], cache=False).logprob[0] for r in REQS]
    batched = wb.loglikelihood(m, REQS, token_budget=budget, cache=False).logprob
    np.testing.assert_allclose(batched, alone, atol=1e-4)
    rev = wb.loglikelihood(m, REQS[::-1], token_budget=budget, cache=False).logprob
    np.testing.assert_allclose(rev[::-1], alone, atol=1e-4)


def test_is_greedy_matches_argmax(tiny):
    from workbench.engine.causal import score_token_requests
    m = tiny("gpt2")
    ids = T.encode(m.tokenizer, "The doctor")
    with torch.no_grad():
        nxt = m.hf(torch.tensor([ids])).logits[0, -1].argmax().item()
    res = score_token_requests(m, [(ids, [nxt]), (ids, [(nxt + 1) % len(m.tokenizer)])])
    assert [r["greedy"] for r in res] == [[True], [False]]


def test_lm_eval_split_moves_trailing_space_to_continuation(tiny):
    tok = tiny("gpt2").tokenizer
    assert T.encode_pair(tok, "The doctor ", "said", False) == T.encode_pair(tok, "The doctor", " said", False)


def test_bos_follows_tokenizer_and_can_be_forced(tiny):
    m = tiny("gpt2")  # byte-level BPE tokenizer: does not add BOS by itself
    assert not T.tokenizer_adds_bos(m.tokenizer)
    auto = wb.loglikelihood(m, [("The doctor", " said")], cache=False)
    forced = wb.loglikelihood(m, [("The doctor", " said")], bos=True, cache=False)
    assert auto.attrs["scoring"]["bos"] is False and forced.attrs["scoring"]["bos"] is True
    assert auto.logprob[0] != pytest.approx(forced.logprob[0], abs=1e-6)
    c, x = T.encode_pair(m.tokenizer, "The doctor", " said", True)
    assert c[0] == m.tokenizer.bos_token_id
    assert forced.logprob[0] == pytest.approx(plain_logprob(m, c, x), abs=1e-4)


def test_perplexity_matches_single_forward_and_windows_score_every_token_once(tiny):
    m = tiny("llama")
    text = "The quick brown fox jumps over the lazy dog and the children laugh."
    ids = T.encode(m.tokenizer, text)
    full = plain_logprob(m, [m.tokenizer.bos_token_id], ids)
    df = wb.perplexity(m, [text], cache=False)
    assert df.n_tokens[0] == len(ids)
    assert df.logprob[0] == pytest.approx(full, abs=1e-4)
    assert df.ppl[0] == pytest.approx(math.exp(-full / len(ids)), rel=1e-4)
    for max_len, stride in [(8, 8), (8, 3), (16, 5)]:
        w = wb.perplexity(m, [text], max_length=max_len, stride=stride, cache=False)
        assert w.n_tokens[0] == len(ids)
    windows = T.rolling_windows(ids, 0, 8, 3)
    assert [t for _, cont in windows for t in cont] == ids
    assert all(len(c) + len(x) - 1 <= 8 for c, x in windows)


def test_pll_equals_masking_one_token_at_a_time(tiny):
    m = tiny("bert")
    sent = "The doctor said hello to the nurse"
    df = wb.pseudo_loglikelihood(m, [sent, "the cat sat"], cache=False, token_budget=20)
    ids = m.tokenizer(sent)["input_ids"]
    manual = 0.0
    for p in range(1, len(ids) - 1):  # [CLS] and [SEP] are not scored
        masked = list(ids)
        masked[p] = m.tokenizer.mask_token_id
        with torch.no_grad():
            lp = m.hf(torch.tensor([masked])).logits[0, p].float().log_softmax(-1)
        manual += lp[ids[p]].item()
    assert df.n_tokens[0] == len(ids) - 2
    assert df.pll[0] == pytest.approx(manual, abs=1e-4)


@pytest.mark.parametrize("arch", ["roberta", "distilbert"])
def test_pll_runs_on_other_masked_archs_and_positions_restrict(tiny, arch):
    m = tiny(arch)
    a, b = "The doctor said hello", "The nurse said hello"
    pa, pb = shared_token_positions(m, a, b)
    assert len(pa) == len(pb) and len(pa) >= 2
    df = wb.pseudo_loglikelihood(m, [a, b], positions=[pa, pb], cache=False)
    assert list(df.n_tokens) == [len(pa), len(pb)]
    full = wb.pseudo_loglikelihood(m, [a], cache=False)
    assert full.n_tokens[0] > len(pa)


def test_cache_reuses_results_and_keys_on_interventions(tiny, isolated_cache):
    m = tiny("gpt2")
    first = wb.loglikelihood(m, REQS[:2])
    assert (isolated_cache / "scores.sqlite").exists()
    with torch.no_grad():  # change the weights behind the cache's back: cached values come back
        w = m.hf.lm_head.weight
        saved = w.clone()
        w.mul_(0)
    try:
        again = wb.loglikelihood(m, REQS[:2])
        np.testing.assert_allclose(again.logprob, first.logprob)
        m.interventions.append({"kind": "test-intervention"})
        fresh = wb.loglikelihood(m, REQS[:2])  # a different state id: recomputed
        assert not np.allclose(fresh.logprob, first.logprob)
    finally:
        m.interventions.clear()
        with torch.no_grad():
            w.copy_(saved)


def test_generate_is_seeded_and_greedy_is_deterministic(tiny):
    m = tiny("llama")
    g1 = wb.generate(m, ["The doctor", "A cat"], max_new_tokens=6, cache=False)
    g2 = wb.generate(m, ["The doctor", "A cat"], max_new_tokens=6, cache=False)
    assert list(g1.completion) == list(g2.completion)
    s1 = wb.generate(m, ["The doctor"], max_new_tokens=8, do_sample=True, seed=1, cache=False)
    s2 = wb.generate(m, ["The doctor"], max_new_tokens=8, do_sample=True, seed=1, cache=False)
    s3 = wb.generate(m, ["The doctor"], max_new_tokens=8, do_sample=True, seed=2, cache=False)
    assert s1.completion[0] == s2.completion[0]
    assert s1.completion[0] != s3.completion[0]


def test_embed_mean_pooling_ignores_padding(tiny):
    m = tiny("bert")
    alone = wb.embed(m, ["the doctor"])
    padded = wb.embed(m, ["the doctor", "the doctor said hello to the nurse and the cat"])
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)


def test_bad_inputs_say_what_to_do(tiny):
    causal, masked = tiny("gpt2"), tiny("bert")
    with pytest.raises(WrongModelKindError, match="pseudo_loglikelihood"):
        wb.loglikelihood(masked, [("a", " b")])
    with pytest.raises(WrongModelKindError, match="loglikelihood"):
        wb.pseudo_loglikelihood(causal, ["a b"])
    with pytest.raises(InvalidInputError, match="wrap a single pair"):
        wb.loglikelihood(causal, ("a", " b"))
    with pytest.raises(InvalidInputError, match="empty continuation"):
        wb.loglikelihood(causal, [("a", "")])
    with pytest.raises(InvalidInputError, match="empty"):
        wb.perplexity(causal, ["  "])
    with pytest.raises(InvalidInputError, match="wrap a single string"):
        wb.perplexity(causal, "text")
    with pytest.raises(InvalidInputError, match="wb.load_model"):
        wb.loglikelihood(causal.hf, [("a", " b")])
    with pytest.raises(InvalidInputError, match="exactly one"):
        wb.scoring.fill_mask(masked, ["no placeholder here"])

"""Shared prefixes through the KV cache give the same numbers as scoring each request alone.

The tiny models get sharp random weights (initializer_range=0.3) so that a wrong position, a
leaked padding slot or a wrong sliding window changes the scores by far more than 1e-4.
"""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.engine import shared
from workbench.scoring import tokenize as T
from workbench.engine.causal import score_token_requests

# contexts of different token lengths, one longer than gemma3_text's sliding window (16)
CONTEXTS = ["The doctor said that she would arrive soon because", "Paris is the capital of",
            "A cat sat on the mat. The dog chased the ball across the garden and back again. My friend"]
CHOICES = [" the patient was waiting", " France", " x",
           " is a teacher, and her brother works as an engineer in a large city", " and"]
# CrowS-Pairs style: empty contexts, sentences that agree up to a word; and prefixes that cross
# the context/continuation boundary
PAIRS = [("", "The doctor said that she would arrive soon"), ("", "The doctor said that he would arrive soon"),
         ("The doctor said", " that she would go home"), ("The doctor said that", " she would go"),
         ("The", " doctor said that she would arrive soon because the patient")]
REQS = [(c, x) for c in CONTEXTS for x in CHOICES] + PAIRS + [("The nurse told him", " that"), ("", "The cat sat.")]
SHARP = dict(initializer_range=0.3)


def forward_shapes(model):
    """Record the input_ids shape of every base-model forward call."""
    shapes = []
    handle = model.hf.base_model.register_forward_pre_hook(
        lambda mod, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    return shapes, handle


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma3_text", "gpt_neox", "qwen2"])
@pytest.mark.parametrize("budget", [24, 100, 8192])
def test_shared_contexts_equal_scoring_each_request_alone(tiny, arch, budget):
    m = tiny(arch, **SHARP)
    alone = [wb.loglikelihood(m, [r], cache=False, share_contexts=False).iloc[0] for r in REQS]
    df = wb.loglikelihood(m, REQS, token_budget=budget, cache=False)
    np.testing.assert_allclose(df.logprob, [a.logprob for a in alone], atol=1e-4)
    for row, a in zip(df.itertuples(), alone):
        np.testing.assert_allclose(row.token_logprobs, a.token_logprobs, atol=1e-4)
        assert row.is_greedy == a.is_greedy and row.n_tokens == a.n_tokens
    shuffled = [REQS[i] for i in np.random.default_rng(0).permutation(len(REQS))]
    again = wb.loglikelihood(m, shuffled, token_budget=budget, cache=False).set_index(["context", "continuation"])
    np.testing.assert_allclose(again.loc[REQS].logprob, df.logprob, atol=1e-4)


def test_context_runs_once_and_continuations_run_on_its_cache(tiny):
    m = tiny("llama", **SHARP)
    reqs = [T.encode_pair(m.tokenizer, CONTEXTS[0], x, False) for x in CHOICES]
    shapes, handle = forward_shapes(m)
    try:
        score_token_requests(m, reqs)
    finally:
        handle.remove()
    longest = max(len(x) for _, x in reqs)
    assert shapes == [(1, len(reqs[0][0])), (len(CHOICES) - 1, longest - 1)]  # " France" needs no 2nd pass


def test_a_pair_costs_one_pass_over_the_first_sentence_and_one_over_the_rest_of_the_second(tiny):
    m = tiny("llama", **SHARP)
    reqs = T.encode_pairs(m.tokenizer, PAIRS[:2], False)
    ctx, (a, b) = reqs[0][0], (reqs[0][1], reqs[1][1])
    n_shared = next(k for k in range(len(a)) if a[k] != b[k])
    shapes, handle = forward_shapes(m)
    try:
        res = score_token_requests(m, reqs)
    finally:
        handle.remove()
    lead = min((a, b))        # groups are built over sorted inputs: the smaller one leads
    other = b if lead is a else a
    assert shapes == [(1, len(ctx) + len(lead) - 1), (1, len(other) - n_shared - 1)]
    alone = [score_token_requests(m, [r], share_contexts=False)[0] for r in reqs]
    for got, want in zip(res, alone):
        np.testing.assert_allclose(got["token_logprobs"], want["token_logprobs"], atol=1e-4)


def test_one_token_continuations_need_only_the_context_pass(tiny):
    m = tiny("gpt2", **SHARP)
    ctx = T.encode(m.tokenizer, "The doctor said that she would")
    reqs = [(ctx, [t]) for t in range(5)]
    shapes, handle = forward_shapes(m)
    try:
        res = score_token_requests(m, reqs)
    finally:
        handle.remove()
    assert shapes == [(1, len(ctx))]
    with torch.no_grad():
        lp = m.hf(torch.tensor([ctx])).logits[0, -1].float().log_softmax(-1)
    np.testing.assert_allclose([r["token_logprobs"][0] for r in res], lp[:5].tolist(), atol=1e-5)
    assert [r["greedy"][0] for r in res] == [lp.argmax().item() == t for t in range(5)]


def test_grouping_needs_two_requests_a_long_enough_prefix_and_a_fitting_window():
    four = [1, 2, 3, 4]
    reqs = [(four, [3]), (four, [4, 5]), ([1, 2, 3, 5], [3]), ([7] * 9, [1, 2]), ([7] * 9, [3]),
            ([0], [5, 6, 7, 8, 9]), ([0], [5, 6, 7, 1, 1]), ([0], [6, 7])]
    groups, rest = shared.group_shared(reqs, limit=9)
    # [1,2,3,5] shares 3 tokens only; the [7]*9 pair would be truncated; the two sentences after
    # [0] (an empty context's BOS) share 4 input tokens, [0, 6, 7] shares 1
    assert [(sorted(g.members), g.n_prefix) for g in groups] == [([5, 6], 4), ([0, 1], 4)]
    assert rest == [2, 3, 4, 7]


def test_groups_stop_growing_when_they_would_save_less():
    reqs = [([1] * 20, [2, 9]), ([1] * 20, [3, 9]), ([1] * 5 + [4] * 15, [9, 9])]
    groups, rest = shared.group_shared(reqs, limit=100)
    assert [(g.members, g.n_prefix) for g in groups] == [([0, 1], 20)]  # 2 x 5 tokens < 1 x 20
    assert rest == [2]
    many = [([1] * 5, [2] * n + [9]) for n in range(1, 9)]
    groups, _ = shared.group_shared(many, limit=100, max_rows=3)
    assert [(len(g.members), g.n_prefix) for g in groups] == [(3, 6), (3, 9), (2, 12)]


def test_sliding_window_models_batch_only_equal_context_lengths(tiny):
    reqs = [([n] * n, [2, 3]) for n in (5, 5, 7, 7, 9, 9)]
    groups, _ = shared.group_shared(reqs, limit=100)
    batches = shared.plan_shared_batches(groups, reqs, 10_000, 64, same_length=True)
    assert [[g.n_prefix for g in b] for b in batches] == [[10], [8], [6]]
    assert len(shared.plan_shared_batches(groups, reqs, 10_000, 64, same_length=False)) == 1
    assert shared.has_sliding_window(tiny("gemma3_text")) and not shared.has_sliding_window(tiny("llama"))


def test_batched_encoding_equals_one_at_a_time(tiny):
    tok = tiny("gpt2").tokenizer
    pairs = REQS + [("The doctor ", "said"), ("The doctor  ", " said"), ("", " x"), ("A", "b")]
    for bos in (False, True):
        assert T.encode_pairs(tok, pairs, bos) == [T.encode_pair(tok, c, x, bos) for c, x in pairs]


def test_shared_prefix_whose_members_all_continue_past_it(tiny):
    """Contexts that share a long prefix but all go on after it: no member is predicted from
    the prefix's last position (an empty index list inside the shared path)."""
    m = tiny("llama")
    prefix = "The doctor said that the nurse told him that the results were good and"
    reqs = [(prefix + " the cat", " sat on the mat"), (prefix + " the dog", " chased the ball"),
            (prefix + " my friend", " is a teacher")]
    alone = [wb.loglikelihood(m, [r], cache=False).logprob[0] for r in reqs]
    together = wb.loglikelihood(m, reqs, cache=False).logprob
    np.testing.assert_allclose(together, alone, atol=1e-4)

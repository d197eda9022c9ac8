"""The scoring engine on the real SmolLM2-135M-Instruct: equal to a plain full-logits computation."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.scoring import tokenize as T

pytestmark = pytest.mark.slow

CONTEXT = "The nurse told the doctor that the results of the tests were"
REQS = [(CONTEXT, " good."), (CONTEXT, " bad, and that he should stay in the hospital."),
        (CONTEXT, " late"), ("", "The cat sat on the mat."), ("", "The cat sat on the sofa."),
        ("Paris is the capital of", " France")]


def plain_full_logits(model, ctx_ids, cont_ids):
    with torch.inference_mode():
        logits = model.hf(torch.tensor([ctx_ids + cont_ids])).logits[0].float().log_softmax(-1)
    pos = torch.arange(len(ctx_ids) - 1, len(ctx_ids) + len(cont_ids) - 1)
    return logits[pos, torch.tensor(cont_ids)].tolist(), (logits[pos].argmax(-1) == torch.tensor(cont_ids)).tolist()


def test_loglikelihood_equals_plain_transformers_on_smollm(smollm):
    df = wb.loglikelihood(smollm, REQS, cache=False)
    assert df.attrs["scoring"]["bos"] is False  # SmolLM2's tokenizer adds no BOS by itself
    for (ctx, cont), row in zip(REQS, df.itertuples()):
        c_ids, x_ids = T.encode_pair(smollm.tokenizer, ctx, cont, add_bos=False)
        lps, greedy = plain_full_logits(smollm, c_ids, x_ids)
        np.testing.assert_allclose(row.token_logprobs, lps, atol=1e-4)
        # float32 through 30 layers differs by ~1e-5 per token between kernels (batched or not,
        # masked or is_causal SDPA): the bound on a total grows with its number of tokens
        assert row.logprob == pytest.approx(sum(lps), abs=1e-4 * len(lps))
        assert row.is_greedy == all(greedy)
    alone = wb.loglikelihood(smollm, REQS, cache=False, share_contexts=False)
    np.testing.assert_allclose(df.logprob, alone.logprob, atol=1e-4 * df.n_tokens.max())


def test_greedy_generation_is_greedy_by_loglikelihood(smollm):
    prompts = ["The capital of France is", "Once upon a time, there was a"]
    gen = wb.generate(smollm, prompts, max_new_tokens=8, cache=False)
    reqs = [(p, c) for p, c in zip(gen.prompt, gen.completion)]
    df = wb.loglikelihood(smollm, reqs, cache=False)
    assert df.is_greedy.all(), df[["continuation", "token_logprobs"]]
    assert (df.n_tokens == gen.n_new_tokens.values).all()
    # and a continuation that is not the model's choice is not greedy
    other = wb.loglikelihood(smollm, [(prompts[0], " a purple elephant")], cache=False)
    assert not other.is_greedy[0]

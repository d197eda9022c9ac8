"""wb.conformance on tiny models: the verdict agrees with the numbers it rests on, and each way a
deployment can be silently wrong is caught by a counter-example built to pass the other checks
(a different network sharing the tokenizer, a tokenizer that splits differently in front of the
same network, a different chat template, a backend that gives no prompt log-probs). The real
GGUF comparisons are in tests/test_backend_llamacpp_inspect.py."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import ContextWindowError, InvalidInputError
from workbench.inspect.conformance_verdict import Tolerance, first_difference, judge
from workbench.scoring.chat import CHATML
from workbench.testing import tiny_model

TEXTS = ["The doctor said that she would arrive soon.", "A cat sat on the mat.", "Paris is the capital of France."]


@pytest.fixture(scope="module")
def ref():
    return tiny_model("llama", chat_template=CHATML)


def _consistent(res):
    """Every verdict re-derives from its own row and the recorded tolerance, and the numbers
    sit where the verdict says."""
    tol = Tolerance(**res.provenance["tolerance"])
    for _, row in res.summary().iterrows():
        assert judge(row.to_dict(), tol) == (row["verdict"], row["reason"])
        if row["verdict"] == "conforms":
            assert row["next_token_kl"] <= tol.conform_kl and row["top1_agreement"] >= tol.conform_top1
            assert row["max_abs_logprob_diff"] <= tol.conform_logprob
            assert row["tokenization"] == "same" and row["chat_prompt"] == "same"


def test_the_same_network_conforms_with_zero_differences(ref):
    res = wb.conformance([ref, ref], TEXTS, progress=False)
    row = res.summary().iloc[0]
    assert row["verdict"] == "conforms"
    assert row["next_token_kl"] == 0 and row["top1_agreement"] == 1 and row["max_abs_logprob_diff"] == 0
    lay = res.layers()
    assert list(lay.columns[:4]) == ["model", "layer", "cosine", "rel_error"]
    assert lay.layer.tolist() == [0, 1] and (lay.rel_error == 0).all() and np.allclose(lay.cosine, 1)
    assert (res.requests().loglik_diff == 0).all()
    assert res.chat().prompt.nunique() == 1
    _consistent(res)


def test_a_lower_precision_is_judged_by_its_numbers(ref):
    """bfloat16 of the same network: within the default bounds here; a tighter tolerance turns
    the same numbers into 'degraded', naming the number past its bound."""
    bf16 = tiny_model("llama", dtype=torch.bfloat16, chat_template=CHATML)
    res = wb.conformance([ref, bf16], TEXTS, progress=False)
    row = res.summary().iloc[0]
    assert 0 < row["next_token_kl"] < 1e-3 and row["resid_rel_error_max"] > 0
    _consistent(res)
    tight = Tolerance(conform_kl=row["next_token_kl"] / 2)
    res2 = wb.conformance([ref, bf16], TEXTS, tolerance=tight, progress=False)
    assert res2.summary().iloc[0]["verdict"] == "degraded" and "next-token KL" in res2.summary().iloc[0]["reason"]
    _consistent(res2)


def test_another_network_with_the_same_tokenizer_is_silently_wrong(ref):
    """Two random networks are both near-uniform, so their KL is small (under same_kl): the top-1
    agreement is what shows they are not one network."""
    other = tiny_model("llama", seed=1, chat_template=CHATML)
    res = wb.conformance([ref, other], TEXTS, progress=False)
    row = res.summary().iloc[0]
    assert row["tokenization"] == "same" and row["chat_prompt"] == "same"
    assert row["next_token_kl"] < Tolerance().same_kl and row["top1_agreement"] < Tolerance().same_top1
    assert row["verdict"] == "silently wrong" and "not the reference network" in row["reason"]
    _consistent(res)


def test_a_tokenizer_that_splits_differently_is_silently_wrong_though_the_network_conforms(ref):
    from tokenizers import normalizers
    tok = copy.deepcopy(ref.tokenizer)
    tok.backend_tokenizer.normalizer = normalizers.Lowercase()  # "The" / "Paris" now split as "the" / "paris"
    lowered = wb.Model.from_hf(ref.hf, tok, name="lowercasing tokenizer")
    res = wb.conformance([ref, lowered], TEXTS, progress=False)
    row = res.summary().iloc[0]
    assert row["next_token_kl"] == 0 and row["top1_agreement"] == 1  # the numbers alone would say "conforms"
    assert row["verdict"] == "silently wrong" and "splits differently" in row["reason"]
    assert row["tokenization"].startswith("text 0, token 0")
    _consistent(res)


def test_a_chat_template_that_differs_is_found_at_its_first_differing_character(ref):
    variant = CHATML.replace("\n", " \n", 1)  # a space before the first newline: invisible when printed
    other = tiny_model("llama", chat_template=variant)
    res = wb.conformance([ref, other], TEXTS, progress=False)
    row = res.summary().iloc[0]
    chats = res.chat()
    i = first_difference(chats.prompt[0], chats.prompt[1])
    assert i is not None and f"first difference at character {i}" in row["chat_prompt"]
    assert row["verdict"] == "silently wrong" and "chat prompt differs" in row["reason"]
    _consistent(res)


class _NoPromptLogprobs(wb.backends.Backend):
    """A served model whose completions carry no prompt log-probs (echo unsupported): it answers
    every scoring request, with None where the log-probs should be."""
    name = "echo-without-logprobs"
    capabilities = frozenset({"token_logprobs", "generate"})

    def __init__(self, reference):
        self.config, self.n_params = reference.config, reference.n_params

    def score_tokens(self, model, requests, **kw):
        return [{"token_logprobs": [None] * len(cont), "greedy": [False] * len(cont)} for _, cont in requests]


class _GenerateOnly(_NoPromptLogprobs):
    name = "generate-only"
    capabilities = frozenset({"generate"})


@pytest.mark.parametrize("backend", [_NoPromptLogprobs, _GenerateOnly])
def test_a_model_without_prompt_logprobs_is_silently_wrong(ref, backend):
    fp = {k: v for k, v in ref.fingerprint.items() if k != "backend"}
    served = wb.Model(hf=None, tokenizer=ref.tokenizer, name="served", kind="causal", fingerprint=fp,
                      backend=backend(ref))
    res = wb.conformance([ref, served], TEXTS, progress=False)
    row = res.summary().iloc[0]
    assert row["verdict"] == "silently wrong" and "no prompt log-probs" in row["reason"]
    assert np.isnan(row["next_token_kl"]) and np.isnan(row["max_abs_logprob_diff"])
    _consistent(res)
    with pytest.raises(InvalidInputError, match="reference"):  # as the reference it cannot be compared at all
        wb.conformance([served, ref], TEXTS, progress=False)


def test_a_model_whose_vocabulary_lacks_the_reference_ids_is_not_run_and_is_silently_wrong(ref):
    import transformers as T

    from workbench.families import family_for
    cfg = family_for("llama").tiny_config("llama", vocab_size=50)
    small = wb.Model.from_hf(T.AutoModelForCausalLM.from_config(cfg), ref.tokenizer, name="50-token vocabulary")
    res = wb.conformance([ref, small], TEXTS, progress=False)
    row = res.summary().iloc[0]
    assert row["verdict"] == "silently wrong" and "outside 50-token vocabulary's vocabulary of 50" in row["reason"]
    assert np.isnan(row["next_token_kl"]) and np.isnan(row["max_abs_logprob_diff"])
    _consistent(res)


def test_the_verdict_ladder():
    tol = Tolerance()
    ok = {"next_token_kl": 1e-5, "top1_agreement": 1.0, "max_abs_logprob_diff": 0.01}
    assert judge(ok, tol)[0] == "conforms"
    assert judge({**ok, "max_abs_logprob_diff": 0.2}, tol)[0] == "degraded"
    assert judge({**ok, "next_token_kl": 0.6}, tol)[0] == "silently wrong"
    assert judge({**ok, "tokenization": "text 0, token 1: ..."}, tol)[0] == "silently wrong"
    # a served model: no KL, judged on what it gives, and the reason says what was missing
    served = {"next_token_kl": float("nan"), "top1_agreement": 1.0, "max_abs_logprob_diff": 0.01}
    assert judge(served, tol) == ("conforms", "next-token KL not available, top-1 agreement 1, max |log p diff| "
                                              "0.01 within the float16-level bounds")
    assert judge({k: float("nan") for k in ok}, tol)[0] == "silently wrong"
    # what llama.cpp's own renderer would send is told, and leaves the verdict alone
    v, reason = judge({**ok, "llamacpp_renderer": "first difference at character 12: ..."}, tol)
    assert v == "conforms" and "built-in chat renderer" in reason


def test_bad_input_is_refused_before_any_work(ref):
    with pytest.raises(InvalidInputError, match="two or more"):
        wb.conformance([ref], TEXTS)
    with pytest.raises(InvalidInputError, match="two or more"):
        wb.conformance(ref, TEXTS)
    with pytest.raises(InvalidInputError, match=r"models\[1\]"):
        wb.conformance([ref, "smollm2-135m-instruct"], TEXTS)
    with pytest.raises(InvalidInputError, match="list of strings"):
        wb.conformance([ref, ref], "one text")
    with pytest.raises(InvalidInputError, match="at least one"):
        wb.conformance([ref, ref], [])
    with pytest.raises(InvalidInputError, match="at least 2 tokens"):
        wb.conformance([ref, ref], ["A"])
    with pytest.raises(ContextWindowError):
        wb.conformance([ref, ref], ["the cat " * 400])
    with pytest.raises(InvalidInputError, match="Tolerance"):
        wb.conformance([ref, ref], TEXTS, tolerance={"conform_kl": 1})


def test_plot_draws_one_line_per_compared_model(ref):
    import matplotlib
    matplotlib.use("Agg")
    bf16 = tiny_model("llama", dtype=torch.bfloat16, chat_template=CHATML)
    ax = wb.conformance([ref, bf16], TEXTS, progress=False).plot()
    assert len(ax.lines) == 1 and ax.get_yscale() == "log"

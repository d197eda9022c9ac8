"""Self-checking exercises: right answers pass, wrong ones fail loudly, open ones do not stop a class."""
import numpy as np
import pytest

import workbench as wb
from workbench.course import check
from workbench.errors import InvalidInputError
from workbench.testing import tiny_model


def test_right_answer_within_tolerance_passes_and_wrong_answer_raises_with_hint():
    assert check("pi", 3.14159, expected=np.pi, tol=1e-4).ok
    with pytest.raises(AssertionError, match=r"expected 3\.14159.*Hint: sum the token"):
        check("pi", 3.2, expected=np.pi, tol=1e-4, hint="sum the token log-probabilities")


def test_arrays_strings_and_sets():
    assert check("vec", [1.0, 2.0], expected=np.array([1.0, 2.00001]), tol=1e-4)
    with pytest.raises(AssertionError, match="shape"):
        check("vec", [1.0], expected=[1.0, 2.0])
    assert check("token", " Paris", expected=" Paris")
    with pytest.raises(AssertionError, match="London"):
        check("token", " London", expected=" Paris")
    with pytest.raises(AssertionError, match="missing"):
        check("heads", {(0, 1)}, expected={(0, 1), (1, 0)})


def test_open_exercise_is_reported_not_raised():
    result = check("open", None, expected=1.0)
    assert not result.ok and not result.answered and "None" in result.message
    assert "not answered" in result._repr_html_()


def test_bad_tolerance_is_refused():
    with pytest.raises(InvalidInputError, match="tol"):
        check("x", 1.0, expected=1.0, tol=-1)


def test_a_hand_computed_loglikelihood_checks_against_the_engine():
    """The course's first exercise, on a tiny model: the sum of the continuation's token
    log-probabilities from the raw transformers logits equals the engine's number."""
    import torch
    m = tiny_model("llama")
    ctx, cont = "The doctor said", " hello"
    engine = wb.loglikelihood(m, [(ctx, cont)], cache=False)
    n_ctx = len(m.tokenizer(ctx)["input_ids"])
    ids = m.tokenizer(ctx + cont, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(m.hf(ids).logits[0].double(), -1)
    by_hand = sum(float(logp[i - 1, ids[0, i]]) for i in range(n_ctx, ids.shape[1]))
    assert check("log P(continuation)", by_hand, expected=float(engine["logprob"][0]), tol=1e-4)

"""Self-checking exercises: right answers pass, wrong ones fail loudly, open ones do not stop a class."""
import json

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.course import STRICT_ENV, Exercise, Scoreboard, check, grading_record
from workbench.course.checks import RECORD_MARKER
from workbench.errors import InvalidInputError
from workbench.testing import tiny_model


def test_right_answer_within_tolerance_passes_and_wrong_answer_fails_without_raising():
    """A wrong answer is FAIL, reported with its hint; it raises only when asked (strict=True or
    WORKBENCH_COURSE_STRICT=1: an instructor's grading mode). (This test used to expect the
    raise by default, which stopped Run All at the first wrong answer.)"""
    assert check("pi", 3.14159, expected=np.pi, tol=1e-4).ok
    wrong = check("pi", 3.2, expected=np.pi, tol=1e-4, hint="sum the token log-probabilities")
    assert wrong.status == "FAIL" and not wrong and wrong.answered
    assert "Hint: sum the token" in repr(wrong) and "not yet right" in wrong._repr_html_()
    with pytest.raises(AssertionError, match=r"expected 3\.14159.*Hint: sum the token"):
        check("pi", 3.2, expected=np.pi, tol=1e-4, hint="sum the token log-probabilities", strict=True)


def test_grading_mode_raises_from_the_environment(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(AssertionError, match="not yet right"):
        check("pi", 3.2, expected=np.pi)
    assert check("open", None, expected=np.pi).status == "OPEN"   # an open exercise never raises
    monkeypatch.setenv(STRICT_ENV, "0")
    assert check("pi", 3.2, expected=np.pi).status == "FAIL"


def test_arrays_strings_and_sets():
    assert check("vec", [1.0, 2.0], expected=np.array([1.0, 2.00001]), tol=1e-4)
    assert "shape" in check("vec", [1.0], expected=[1.0, 2.0]).message
    assert check("token", " Paris", expected=" Paris")
    assert "London" in check("token", " London", expected=" Paris").message
    assert "missing" in check("heads", {(0, 1)}, expected={(0, 1), (1, 0)}).message
    assert not check("vec", "not a number", expected=[1.0, 2.0]).ok
    assert "NaN" in check("x", float("nan"), expected=1.0).message
    assert check("tensor", torch.tensor([1.0, 2.0], requires_grad=True), expected=[1.0, 2.0]).ok


def test_open_exercise_is_reported_not_raised():
    result = check("open", None, expected=1.0)
    assert not result.ok and not result.answered and "None" in result.message
    assert "not answered" in result._repr_html_()


def test_bad_tolerance_and_flags_are_refused():
    with pytest.raises(InvalidInputError, match="tol"):
        check("x", 1.0, expected=1.0, tol=-1)
    with pytest.raises(InvalidInputError, match="strict"):
        check("x", 1.0, expected=1.0, strict="yes")


def _board(**kw):
    calls = []

    def twice(x):
        calls.append(x)
        return 2 * x

    exercises = [Exercise(1, "twice {x}", twice, tol=1e-9, hint="x + x"),
                 Exercise(2, "pi", lambda: np.pi, tol=1e-3, hint="4 atan 1"),
                 Exercise(3, "broken", lambda x: 1 / 0)]
    return Scoreboard(exercises, name="test board", **kw), calls


def test_scoreboard_keeps_one_entry_per_exercise_and_the_latest_attempt():
    """The course notebook's board read "2 of 13 exercises right" for 11 exercises after a Run All
    and two re-runs: every check was appended. Now each re-run replaces its exercise's entry."""
    board, _ = _board()
    assert board.counts() == {"PASS": 0, "FAIL": 0, "OPEN": 3}      # never run: OPEN, all listed
    assert board[2].message.startswith("not run yet")
    board.check(1, 6, x=3)
    board.check(1, 6, x=3)                                             # a re-run, same answer
    board.check(2, 3.0)                                                # wrong
    assert [board[n].status for n in (1, 2, 3)] == ["PASS", "FAIL", "OPEN"]
    assert board.headline() == "1 of 3 exercises right (1 wrong, 1 open)"
    frame = board.to_frame()
    assert frame.exercise.tolist() == [1, 2, 3] and frame.attempts.tolist() == [2, 1, 0]
    board.check(2, np.pi)                                              # right at last: the latest counts
    board.check(1, 5, x=3)                                             # and a right one turned wrong
    assert [board[n].status for n in (1, 2, 3)] == ["FAIL", "PASS", "OPEN"]
    html = board._repr_html_()
    assert [s for s in ("PASS", "FAIL", "OPEN") if f'data-status="{s}"' in html] == ["PASS", "FAIL", "OPEN"]
    assert html.count("<tr data-exercise=") == 3 and "1 of 3 exercises right" in html
    assert repr(board).splitlines()[-1] == "1 of 3 exercises right (1 wrong, 1 open)"


def test_scoreboard_reports_wrong_answers_without_revealing_or_raising_unless_asked(monkeypatch):
    board, calls = _board()
    wrong = board.check(2, 3.0)
    assert wrong.status == "FAIL" and "3.14" not in repr(wrong) and "3.14" not in wrong._repr_html_()
    assert "4 atan 1" in repr(wrong)                                   # the hint is shown
    assert board.check(1, None, x=3).status == "OPEN" and calls == []  # nothing computed for an open one
    broken = board.check(3, 1.0, x=1)                                  # the expected answer cannot be computed
    assert broken.status == "FAIL" and "ZeroDivisionError" in broken.message
    strict, _ = _board(strict=True)
    with pytest.raises(AssertionError, match="pi: not yet right"):
        strict.check(2, 3.0)
    assert strict[2].status == "FAIL"                                  # recorded before it raised
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(AssertionError):
        _board()[0].check(2, 3.0)


def test_scoreboard_refuses_what_it_cannot_check():
    board, _ = _board()
    with pytest.raises(InvalidInputError, match=r"no exercise 7 .* exercises are \[1, 2, 3\]"):
        board.check(7, 1.0)
    with pytest.raises(InvalidInputError, match=r"missing \['x'\].*board.check\(1, answer, x=x\)"):
        board.check(1, 6)
    with pytest.raises(InvalidInputError, match=r"unexpected \['y'\]"):
        board.check(1, 6, x=3, y=1)
    with pytest.raises(InvalidInputError, match="distinct numbers"):
        Scoreboard([Exercise(1, "a", lambda: 1), Exercise(1, "b", lambda: 2)])


def test_grading_record_prints_the_newest_board_of_each_course(capsys):
    old, _ = _board()
    old.check(1, 6, x=3)
    board, _ = _board()               # the set-up cell re-run: a fresh board of the same course
    board.check(2, 3.0)
    grading_record()
    (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith(RECORD_MARKER)]
    boards = {b["name"]: b for b in json.loads(line[len(RECORD_MARKER):])}
    rows = boards["test board"]["exercises"]
    assert [(r["exercise"], r["status"]) for r in rows] == [(1, "OPEN"), (2, "FAIL"), (3, "OPEN")]


def test_the_course_modules_hidden_checks_name_their_inputs():
    from workbench.course.inside_a_model import EXERCISES, scoreboard
    board = scoreboard()
    assert [e.number for e in EXERCISES] == list(range(1, 12))
    assert board.exercise(3).inputs == ("model", "context", "continuation", "layer")
    assert board.exercise(10).inputs == ("probe", "layer")
    assert board.counts()["OPEN"] == 11


def test_a_hand_computed_loglikelihood_checks_against_the_engine():
    """The course's first exercise, on a tiny model: the sum of the continuation's token
    log-probabilities from the raw transformers logits equals the engine's number, and the
    hidden check of exercise 1 passes it (and fails a wrong one)."""
    from workbench.course.inside_a_model import scoreboard
    m = tiny_model("llama")
    ctx, cont = "The doctor said", " hello"
    engine = wb.loglikelihood(m, [(ctx, cont)], cache=False)
    n_ctx = len(m.tokenizer(ctx)["input_ids"])
    ids = m.tokenizer(ctx + cont, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(m.hf(ids).logits[0].double(), -1)
    by_hand = sum(float(logp[i - 1, ids[0, i]]) for i in range(n_ctx, ids.shape[1]))
    assert check("log P(continuation)", by_hand, expected=float(engine["logprob"][0]), tol=1e-4)
    board = scoreboard()
    assert board.check(1, by_hand, model=m, context=ctx, continuation=cont).status == "PASS"
    assert board.check(1, by_hand + 0.01, model=m, context=ctx, continuation=cont).status == "FAIL"
    assert board[1].name == "1. log P(' hello' | context)"

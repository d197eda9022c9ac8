"""Self-checking course exercises: a student's answer against the workbench's own result.

Every check ends in one of three states: **PASS** (within the tolerance), **FAIL** (answered,
not within it: reported with a hint) or **OPEN** (the answer is still ``None``). A wrong answer
is reported, not raised, so that "Run All" always reaches the end of a notebook; it raises
``AssertionError`` only when asked: ``strict=True``, or the environment variable
``WORKBENCH_COURSE_STRICT=1`` (an instructor's grading mode).

A :class:`Scoreboard` holds a course's exercises (:class:`Exercise`: the number, the title, how
to compute the expected answer, the tolerance and a hint) and one entry per exercise, the latest
attempt counting, so re-running a cell replaces its entry instead of adding one. The expected
answer is computed by the exercise's function, kept in a module of its own
(:mod:`workbench.course.inside_a_model` for notebook 07), not in the student's cell; and a
wrong answer's message does not reveal it.

>>> from workbench.course import Exercise, Scoreboard, check
>>> check("mean of 1..3", 2.0000001, expected=2.0, tol=1e-6).status
'PASS'
>>> check("mean of 1..3", 2.5, expected=2.0).status            # reported, not raised
'FAIL'
>>> board = Scoreboard([Exercise(1, "twice {x}", expected=lambda x: 2 * x, tol=1e-9, hint="x + x"),
...                     Exercise(2, "x squared", expected=lambda x: x * x)], name="demo")
>>> [board.check(1, a, x=3).status for a in (None, 5, 6)]    # open, wrong, then right
['OPEN', 'FAIL', 'PASS']
>>> print(board)                                              # one entry each; the latest counts
[PASS] 1. twice 3: within the tolerance 1e-09
[OPEN] 2. x squared: not run yet: run the exercise's cell
1 of 2 exercises right (0 wrong, 1 open)
"""
from __future__ import annotations

import html
import inspect
import json
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from workbench.errors import InvalidInputError
from workbench.validate import BOOL, Optional, checked

STRICT_ENV = "WORKBENCH_COURSE_STRICT"   # "1": a wrong answer raises (grading mode)
RECORD_MARKER = "workbench-course-record: "  # the line grading_record() prints, read by the grader
STATUSES = ("PASS", "FAIL", "OPEN")
COLOURS = {"PASS": "#0a6b2d", "FAIL": "#b3261e", "OPEN": "#8a6d00"}
MARKS = {"PASS": "&#10003; correct", "FAIL": "&#10007; not yet right", "OPEN": "&#9998; not answered yet"}
OPEN_MESSAGE = "replace `None` with your answer and run the cell again"
NOT_RUN_MESSAGE = "not run yet: run the exercise's cell"


def strict_mode(strict=None) -> bool:
    """``strict`` if given, else whether ``WORKBENCH_COURSE_STRICT`` is set to 1 (true, yes, on)."""
    if strict is not None:
        return bool(strict)
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Check:
    """One checked answer: ``status`` is PASS, FAIL or OPEN; ``message`` says why."""

    name: str
    ok: bool
    answered: bool
    message: str
    hint: str = ""
    exercise: int | None = None

    @property
    def status(self) -> str:
        return "PASS" if self.ok else ("FAIL" if self.answered else "OPEN")

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        hint = f" Hint: {self.hint}" if self.status == "FAIL" and self.hint else ""
        return f"[{self.status}] {self.name}: {self.message}{hint}"

    def _repr_html_(self) -> str:
        colour = COLOURS[self.status]
        hint = (f" <i>Hint: {html.escape(self.hint)}</i>" if self.status == "FAIL" and self.hint else "")
        return (f'<div class="wb-check" data-status="{self.status}" style="border-left:4px solid {colour};'
                f'padding:4px 8px;margin:4px 0"><b>{html.escape(self.name)}</b>: '
                f'<span style="color:{colour}">{MARKS[self.status]}</span>. {html.escape(self.message)}{hint}</div>')

    def record(self) -> dict:
        return {"exercise": self.exercise, "name": self.name, "status": self.status, "message": self.message}


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor: off the graph and the device first
        value = value.detach().cpu()
    return np.asarray(value, dtype=float)


def _compare(answer, expected, tol: float, reveal: bool) -> tuple[bool, str]:
    """Whether ``answer`` matches ``expected``, and a message (with the expected value only when
    ``reveal``: a scoreboard's message must not give the answer away)."""
    if isinstance(expected, str) or isinstance(answer, str):
        ok = answer == expected
        return ok, (f"expected {expected!r}, got {answer!r}" if reveal or ok else f"{answer!r} is not the expected text")
    if isinstance(expected, (set, frozenset)):
        got = set(answer)
        missing, extra = expected - got, got - expected
        if reveal:
            return got == expected, f"missing {sorted(missing)}, unexpected {sorted(extra)}"
        return got == expected, f"{len(missing)} missing, {len(extra)} unexpected"
    e = _as_array(expected)
    try:
        a = _as_array(answer)
    except (TypeError, ValueError):
        return False, f"the answer is not a number or an array of numbers (got {type(answer).__name__})"
    if a.shape != e.shape:
        return False, f"expected shape {e.shape}, got shape {a.shape}"
    if np.isnan(a).any() and not np.isnan(e).any():
        return False, "the answer holds NaN"
    worst = float(np.max(np.abs(a - e))) if a.size else 0.0
    ok = bool(np.allclose(a, e, rtol=0, atol=tol, equal_nan=False))
    if reveal:
        shown = f"{float(e):.6g}" if e.size == 1 else f"an array of shape {e.shape}"
        return ok, f"expected {shown}, largest difference {worst:.3g} (tolerance {tol:g})"
    return ok, (f"within the tolerance {tol:g}" if ok else f"not within the tolerance {tol:g} of the expected value")


@checked(strict=Optional(BOOL), reveal=BOOL)
def check(name: str, answer, expected, tol: float = 1e-4, hint: str = "", *, strict=None, reveal: bool = True) -> Check:
    """Compare ``answer`` with ``expected`` (numbers and arrays within ``tol``; strings and sets
    exactly) and return a :class:`Check`. ``answer=None`` means not answered yet (OPEN). A wrong
    answer is FAIL, with ``hint``; it raises ``AssertionError`` only with ``strict=True`` or
    ``WORKBENCH_COURSE_STRICT=1``. ``reveal=False``: the message does not show the expected value."""
    if not isinstance(tol, (int, float)) or isinstance(tol, bool) or math.isnan(tol) or tol < 0:
        raise InvalidInputError(f"tol must be a number >= 0, got {tol!r}")
    if answer is None or answer is Ellipsis:
        return Check(name, ok=False, answered=False, message=OPEN_MESSAGE, hint=hint)
    ok, detail = _compare(answer, expected, tol, reveal)
    result = Check(name, ok=ok, answered=True, message=detail, hint=hint)
    if not ok and strict_mode(strict):
        raise AssertionError(f"{name}: not yet right: {detail}." + (f" Hint: {hint}" if hint else ""))
    return result


@dataclass(frozen=True)
class Exercise:
    """One exercise: its ``number``, its ``title`` (it may name the check's inputs in braces:
    ``"P({target!r}) at layer {layer}"``), ``expected(**inputs)`` computing the right answer from
    the inputs the notebook passes to :meth:`Scoreboard.check`, the tolerance and a hint."""

    number: int
    title: str
    expected: Callable
    tol: float = 1e-4
    hint: str = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.expected).parameters)

    def name(self, inputs: dict | None = None) -> str:
        try:
            title = self.title.format(**(inputs or {}))
        except (KeyError, IndexError, ValueError, AttributeError):
            title = self.title   # inputs not given (an exercise not run yet): the bare title
        return f"{self.number}. {title}"


class Scoreboard:
    """A course's exercises and one entry each: :meth:`check` records the latest attempt (a
    re-run replaces the entry), an exercise never checked is OPEN. Shown as a table (PASS, FAIL,
    OPEN, how many attempts) with a count line; ``to_frame()`` gives the rows. The newest board
    of each ``name`` is what :func:`grading_record` reports to the grader."""

    @checked(strict=Optional(BOOL))
    def __init__(self, exercises, name: str = "course", strict=None):
        exercises = list(exercises)
        numbers = [e.number for e in exercises]
        if not exercises or len(set(numbers)) != len(numbers):
            raise InvalidInputError(f"a scoreboard needs exercises with distinct numbers, got {numbers}")
        self.exercises = {e.number: e for e in exercises}
        self.name, self.strict = str(name), strict
        self.entries: dict[int, Check] = {}
        self.attempts: dict[int, int] = {n: 0 for n in self.exercises}
        _BOARDS[self.name] = self

    def exercise(self, number) -> Exercise:
        if number not in self.exercises:
            raise InvalidInputError(f"no exercise {number!r} in {self.name!r}: the exercises are {list(self.exercises)}")
        return self.exercises[number]

    def check(self, number: int, answer, **inputs) -> Check:
        """Check ``answer`` to exercise ``number``; ``inputs`` are what its expected answer is
        computed from (each exercise names them: ``board.exercise(n).inputs``). Returns the
        :class:`Check` (shown under the cell) and records it as the exercise's entry."""
        ex = self.exercise(number)
        missing, extra = set(ex.inputs) - set(inputs), set(inputs) - set(ex.inputs)
        if missing or extra:
            raise InvalidInputError(f"exercise {number} is checked from {list(ex.inputs)}: "
                                    + (f"missing {sorted(missing)}" if missing else "")
                                    + ("; " if missing and extra else "") + (f"unexpected {sorted(extra)}" if extra else "")
                                    + f". Call board.check({number}, answer, "
                                    + ", ".join(f"{k}={k}" for k in ex.inputs) + ")")
        name = ex.name(inputs)
        if answer is None or answer is Ellipsis:
            result = Check(name, False, False, OPEN_MESSAGE, ex.hint, number)
        else:
            self.attempts[number] += 1
            try:
                expected = ex.expected(**inputs)
            except Exception as err:  # the check cannot run (inputs changed by the notebook): say so, go on
                result = Check(name, False, True, f"the expected answer could not be computed from the inputs "
                               f"({type(err).__name__}: {err}); re-run the cells above", ex.hint, number)
            else:
                result = check(name, answer, expected, tol=ex.tol, hint=ex.hint, strict=False, reveal=False)
                result.exercise = number
        self.entries[number] = result
        if result.status == "FAIL" and strict_mode(self.strict):
            raise AssertionError(f"{name}: not yet right: {result.message}." + (f" Hint: {ex.hint}" if ex.hint else ""))
        return result

    def __getitem__(self, number: int) -> Check:
        ex = self.exercise(number)
        if number in self.entries:   # (not `entries.get(n) or ...`: a FAIL check is falsy)
            return self.entries[number]
        return Check(ex.name(), False, False, NOT_RUN_MESSAGE, ex.hint, number)

    def counts(self) -> dict:
        statuses = [self[n].status for n in self.exercises]
        return {s: statuses.count(s) for s in STATUSES}

    def to_frame(self) -> pd.DataFrame:
        """One row per exercise: exercise, name, status, message, attempts."""
        return pd.DataFrame([{**self[n].record(), "exercise": n, "attempts": self.attempts[n]} for n in self.exercises],
                            columns=["exercise", "name", "status", "message", "attempts"])

    summary = to_frame

    def headline(self) -> str:
        c = self.counts()
        return f"{c['PASS']} of {len(self.exercises)} exercises right ({c['FAIL']} wrong, {c['OPEN']} open)"

    def __repr__(self) -> str:
        return "\n".join([repr(self[n]) for n in self.exercises] + [self.headline()])

    def _repr_html_(self) -> str:
        rows = []
        for n in self.exercises:
            c = self[n]
            colour = COLOURS[c.status]
            rows.append(f'<tr data-exercise="{n}" data-status="{c.status}">'
                        f'<td style="text-align:left">{html.escape(c.name)}</td>'
                        f'<td style="color:{colour}; font-weight:bold; text-align:left">{c.status}</td>'
                        f'<td style="text-align:right">{self.attempts[n]}</td>'
                        f'<td style="text-align:left; white-space:normal">{html.escape(c.message)}</td></tr>')
        return (f'<div class="wb-scoreboard" data-name="{html.escape(self.name)}" style="max-width:100%; overflow-x:auto">'
                f'<p><b>{html.escape(self.headline())}</b></p>'
                '<table><thead><tr><th style="text-align:left">exercise</th><th style="text-align:left">status</th>'
                '<th>attempts</th><th style="text-align:left">message</th></tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div>')

    def record(self) -> dict:
        return {"name": self.name, "exercises": self.to_frame().to_dict("records")}


_BOARDS: dict[str, Scoreboard] = {}   # the newest board of each name, in this process


def grading_record() -> None:
    """Print the newest scoreboard of each course in this process as one JSON line (the grader
    appends a cell calling this to each submission and reads the line back)."""
    print(RECORD_MARKER + json.dumps([b.record() for b in _BOARDS.values()], default=str), flush=True)

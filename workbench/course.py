"""Self-checking course exercises: a student's answer against the workbench's own result.

A check passes within a tolerance, fails loudly (``AssertionError`` with what was expected and a
hint) or, while the answer is still ``None``, says that the exercise is open without stopping the
notebook, so a class can "Run All" on a fresh copy.

>>> from workbench.course import check
>>> check("mean of 1..3", 2.0000001, expected=2.0, tol=1e-6).ok
True
>>> check("open exercise", None, expected=2.0).ok
False
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np

from workbench.errors import InvalidInputError


@dataclass
class Check:
    name: str
    ok: bool
    answered: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        mark = "PASS" if self.ok else ("OPEN" if not self.answered else "FAIL")
        return f"[{mark}] {self.name}: {self.message}"

    def _repr_html_(self) -> str:
        colour = "#0a6b2d" if self.ok else "#8a6d00"
        mark = "&#10003; correct" if self.ok else "&#9998; not answered yet"
        return (f'<div style="border-left:4px solid {colour};padding:4px 8px;margin:4px 0">'
                f"<b>{html.escape(self.name)}</b>: <span style=\"color:{colour}\">{mark}</span>. "
                f"{html.escape(self.message)}</div>")


def _close(answer, expected, tol: float) -> tuple[bool, str]:
    if isinstance(expected, str) or isinstance(answer, str):
        return answer == expected, f"expected {expected!r}, got {answer!r}"
    if isinstance(expected, (set, frozenset)):
        got = set(answer)
        return got == expected, f"missing {sorted(expected - got)}, unexpected {sorted(got - expected)}"
    a, e = np.asarray(answer, dtype=float), np.asarray(expected, dtype=float)
    if a.shape != e.shape:
        return False, f"expected shape {e.shape}, got shape {a.shape}"
    worst = float(np.max(np.abs(a - e))) if a.size else 0.0
    ok = bool(np.allclose(a, e, rtol=0, atol=tol, equal_nan=False))
    shown = f"{float(e):.6g}" if e.size == 1 else f"an array of shape {e.shape}"
    return ok, f"expected {shown}, largest difference {worst:.3g} (tolerance {tol:g})"


def check(name: str, answer, expected, tol: float = 1e-4, hint: str = "") -> Check:
    """Compare ``answer`` with ``expected`` (numbers and arrays within ``tol``; strings and sets
    exactly). ``answer=None`` means not answered yet: reported, not raised. A wrong answer raises
    ``AssertionError`` with the expected value and ``hint``."""
    if not isinstance(tol, (int, float)) or math.isnan(tol) or tol < 0:
        raise InvalidInputError(f"tol must be a number >= 0, got {tol!r}")
    if answer is None or answer is Ellipsis:
        return Check(name, ok=False, answered=False,
                     message="replace `None` with your answer and run the cell again")
    ok, detail = _close(answer, expected, tol)
    if not ok:
        raise AssertionError(f"{name}: not yet right: {detail}." + (f" Hint: {hint}" if hint else ""))
    return Check(name, ok=True, answered=True, message=detail)

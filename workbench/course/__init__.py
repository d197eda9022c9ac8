"""The course: self-checking exercises, their hidden checks, and grading.

* :mod:`workbench.course.checks`: :func:`check` (one answer against one expected value),
  :class:`Exercise` and :class:`Scoreboard` (one entry per exercise, the latest attempt counts;
  PASS, FAIL, OPEN; a wrong answer is reported, raised only in grading mode,
  ``WORKBENCH_COURSE_STRICT=1``).
* :mod:`workbench.course.inside_a_model`: the hidden checks of notebook 07: each exercise's
  expected answer, computed here from the package's own results, out of the student's sight.
* :mod:`workbench.course.grade`: ``workbench grade SUBMISSIONS``: run a folder of submitted
  notebooks and write one table (student, exercise, status).
"""
from workbench.course.checks import STRICT_ENV, Check, Exercise, Scoreboard, check, grading_record

__all__ = ["STRICT_ENV", "Check", "Exercise", "Scoreboard", "check", "grading_record"]

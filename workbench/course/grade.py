"""``workbench grade SUBMISSIONS``: run every submitted course notebook in a folder and write one
table, a row per student and exercise: ``student, notebook, exercise, name, status, message``.

Each notebook runs top to bottom in a fresh kernel (nbclient), a copy in a temporary folder
(the submission is never written to). Errors are allowed: a cell that raises is reported and the
cells after it still run, and wrong answers do not raise (``WORKBENCH_COURSE_STRICT=0``), so
every exercise gets its status. A cell appended to the copy prints the notebook's scoreboard
(:func:`workbench.course.grading_record`); an exercise whose cell raised before its check is FAIL
with the error as its message. A notebook that never made a scoreboard (it stopped before its
set-up cell, or is not a course notebook) gets one row with status ERROR.

The student is the first folder under ``SUBMISSIONS`` (nbgrader's ``submitted/<student>/...``
layout) or, for a notebook directly in it, the file's name without ``.ipynb``.

    workbench grade submitted/ --out grades.csv
"""
from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

from workbench.argtypes import positive_int
from workbench.course.checks import RECORD_MARKER, STRICT_ENV
from workbench.errors import InvalidInputError
from workbench.progress import ENV as PROGRESS_ENV

COLUMNS = ["student", "notebook", "exercise", "name", "status", "message"]
RECORD_CELL = "from workbench.course import grading_record\ngrading_record()"
CHECK_CALL = re.compile(r"\.check\(\s*(\d+)\s*,")


def student_of(path: Path, root: Path) -> str:
    rel = path.relative_to(root)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


@contextmanager
def _kernel_env(**values):
    """Set environment variables for the kernels started inside the block (they inherit them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _cell_errors(nb) -> dict[int, str]:
    """Exercise number -> the error its check cell raised (cells naming ``.check(N, ...)``)."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        for number in CHECK_CALL.findall(cell.source):
            if errors:
                out[int(number)] = f"the cell raised {errors[0].get('ename')}: {errors[0].get('evalue', '')}"[:300]
    return out


def _records(nb) -> list[dict] | None:
    last = nb.cells[-1]
    for output in last.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(RECORD_MARKER):
                return json.loads(line[len(RECORD_MARKER):])
    return None


def grade_notebook(path, timeout: int = 900, kernel_name: str = "python3", executed_dir=None) -> list[dict]:
    """Run one submitted notebook; return its rows (see the module doc)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(RECORD_CELL))
    with tempfile.TemporaryDirectory(prefix="workbench-grade-") as work, \
            _kernel_env(**{STRICT_ENV: "0", PROGRESS_ENV: "0"}):
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=True,
                                resources={"metadata": {"path": work}})
        failure = None
        try:
            client.execute()
        except Exception as err:  # a dead kernel or a cell past the timeout: graded as far as it got
            failure = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"[:300]
    if executed_dir is not None:
        Path(executed_dir).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(executed_dir) / path.name)
    boards = _records(nb)
    if not boards:
        why = failure or "the notebook made no scoreboard (it stopped before its set-up cell, or is not a course notebook)"
        return [{"exercise": None, "name": None, "status": "ERROR", "message": why}]
    errors = _cell_errors(nb)
    rows = []
    for board in boards:
        for ex in board["exercises"]:
            row = {k: ex[k] for k in ("exercise", "name", "status", "message")}
            if row["status"] == "OPEN" and ex["exercise"] in errors:
                row.update(status="FAIL", message=errors[ex["exercise"]])
            rows.append(row)
    return rows


def grade(folder, timeout: int = 900, pattern: str = "*.ipynb", executed_dir=None, progress=print) -> pd.DataFrame:
    """Run every notebook under ``folder`` (matching ``pattern``, any depth) and return the table."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder: pass the folder holding the submitted notebooks")
    paths = sorted(p for p in root.rglob(pattern) if ".ipynb_checkpoints" not in p.parts)
    if not paths:
        raise InvalidInputError(f"no notebooks matching {pattern!r} under {root}")
    rows = []
    for i, path in enumerate(paths, 1):
        started = time.perf_counter()
        student = student_of(path, root)
        found = grade_notebook(path, timeout=timeout, executed_dir=executed_dir and Path(executed_dir) / student)
        rows += [{"student": student, "notebook": str(path.relative_to(root)), **r} for r in found]
        if progress:
            counts = pd.Series([r["status"] for r in found]).value_counts().to_dict()
            progress(f"[{i}/{len(paths)}] {student}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
                     + f" ({time.perf_counter() - started:.0f} s)")
    return pd.DataFrame(rows, columns=COLUMNS)


def add_grade_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", help="folder of submitted notebooks (submissions/<student>/*.ipynb "
                                            "or submissions/<student>.ipynb)")
    parser.add_argument("--out", default="grades.csv", help="the table to write (.csv or .json; default grades.csv)")
    parser.add_argument("--pattern", default="*.ipynb", help="which notebooks to run (default: every .ipynb)")
    parser.add_argument("--timeout", type=positive_int, default=900, help="seconds allowed per cell (default 900)")
    parser.add_argument("--executed", default=None, help="also save each executed notebook under this folder")


def run_grade(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".csv", ".json"):
        raise InvalidInputError(f"--out must end in .csv or .json, got {out.name!r}")
    table = grade(args.submissions, timeout=args.timeout, pattern=args.pattern, executed_dir=args.executed)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".json":
        out.write_text(table.to_json(orient="records", indent=1))
    else:
        table.to_csv(out, index=False)
    wide = table.groupby(["student", "status"]).size().unstack(fill_value=0)
    print(wide.to_string())
    print(f"wrote {out} ({len(table)} rows: student, exercise, status)")
    return 0

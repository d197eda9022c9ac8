"""Build the curated notebooks from their readable sources.

The sources (``notebooks/src/*.py``, ``audits/src/*.py``) are plain Python in Jupytext's
"percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown cell whose lines
are ``#``-commented. They diff and review like code; Jupytext reads them, and the ``.ipynb``
files next to them are generated, committed WITHOUT outputs, and checked to be in sync by
``tests/test_notebooks_sync.py``. The audit notebook is also written into the package
(``workbench/audit/flagship_audit.ipynb``, ``PACKAGED_COPIES``), which an installed
``workbench audit`` runs.

Course notebooks (sources listed in ``STUDENT_COPIES``) also get a student copy under
``notebooks/course/``, made with nbgrader's markers but without nbgrader: in a code cell, the
lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become ``# YOUR CODE HERE`` (the
exercise's ``answer = None`` above them stays, so the check reports "not answered yet"), and the
lines from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are dropped. A cell that
belongs to one copy only carries Jupytext's cell tag ``instructor`` or ``student`` in the source
(``# %% [markdown] tags=["student"]``): each copy's introduction is then true for that copy.
The tags are not written into the notebooks.

    python notebooks/build.py            # rewrite every notebook from its source
    python notebooks/build.py --check    # exit 1 if a notebook differs from its source
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = {ROOT / "notebooks" / "src": ROOT / "notebooks", ROOT / "audits" / "src": ROOT / "audits"}
# the audit notebook also ships inside the package (package data), so that `workbench audit` finds
# it from an installed wheel, where audits/ is not: the same generated file, at a second path
PACKAGED_COPIES = {"flagship_audit": ROOT / "workbench" / "audit" / "flagship_audit.ipynb"}
STUDENT_DIR = ROOT / "notebooks" / "course"
STUDENT_COPIES = ("07_course_exercises",)  # sources whose student copy is shipped
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}

SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[ \t]*\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.M | re.S)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[ \t]*\n.*?^[ \t]*### END HIDDEN TESTS[ \t]*(\n|\Z)", re.M | re.S)
STUB = "# YOUR CODE HERE"
COPIES = ("instructor", "student")  # the cell tags that keep a cell in one copy only


def parse_percent(text: str) -> list[nbformat.NotebookNode]:
    """Split percent-format source into notebook cells (via Jupytext; markdown lines lose their
    ``# ``; empty code cells are dropped). A cell's tags are kept (``# %% tags=["parameters"]``
    marks the cell papermill injects parameters after), except a copy's tag (``instructor`` or
    ``student``), which stays in its metadata (``copy``) until the copies are made; other cell
    metadata is not kept."""
    cells = []
    for cell in jupytext.reads(text, fmt="py:percent").cells:
        body = cell.source.strip("\n")
        if cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(body)
        elif cell.cell_type == "code" and body.strip():
            new = nbformat.v4.new_code_cell(body)
        else:
            continue
        copies = [t for t in cell.metadata.get("tags", []) if t in COPIES]
        if len(copies) > 1:
            raise SystemExit(f"a cell is tagged for both copies {copies}: {body[:60]!r}")
        if copies:
            new.metadata["copy"] = copies[0]
        kept = [t for t in cell.metadata.get("tags", []) if t not in COPIES]
        if kept:
            new.metadata["tags"] = kept
        cells.append(new)
    return cells


def _notebook(cells, stem: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    for i, cell in enumerate(nb.cells):  # stable ids keep the committed files diff-free
        cell.id = f"{stem[:40]}-{i:02d}".replace("_", "-")
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    return nb


def _for_copy(nb: nbformat.NotebookNode, copy: str) -> nbformat.NotebookNode:
    """The cells of ``nb`` that belong in ``copy`` (untagged cells, and those tagged for it),
    without the tag; cell ids are kept, so the two copies' shared cells have the same ids."""
    out = nbformat.from_dict(dict(nb, cells=[]))
    for cell in nb.cells:
        if cell.metadata.get("copy", copy) != copy:
            continue
        new = nbformat.from_dict(dict(cell))
        new.metadata = {k: v for k, v in cell.metadata.items() if k != "copy"}
        out.cells.append(new)
    return out


def parsed(source: Path) -> nbformat.NotebookNode:
    """Every cell of a source, both copies' included (tagged in ``metadata["copy"]``)."""
    return _notebook(parse_percent(source.read_text()), source.stem)


def build(source: Path) -> nbformat.NotebookNode:
    """The notebook of ``source`` (for a course source: the instructor copy, with the solutions)."""
    return _for_copy(parsed(source), "instructor")


def strip_solutions(source: str) -> str:
    """A code cell's student version: solutions replaced by a stub, hidden tests removed."""
    source = HIDDEN.sub("", source)
    return SOLUTION.sub(lambda m: m.group(1) + STUB, source).rstrip("\n")


def student(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student copy of a course notebook (its cells for students, ids kept, solutions stripped)."""
    copy = _for_copy(nb, "student")
    for cell in copy.cells:
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
    left = [c.id for c in copy.cells if c.cell_type == "code" and ("### BEGIN" in c.source or "### END" in c.source)]
    if left:  # a marker without its pair: better to stop than to ship a solution
        raise SystemExit(f"unpaired nbgrader markers left in cells {left}")
    return copy


def targets() -> list[tuple[Path, Path]]:
    return [(src, out_dir / f"{src.stem}.ipynb")
            for src_dir, out_dir in SOURCE_DIRS.items() for src in sorted(src_dir.glob("*.py"))]


def outputs() -> list[tuple[Path, nbformat.NotebookNode]]:
    """Every generated notebook (instructor copies and student copies) with its path."""
    out = []
    for src, path in targets():
        nb = parsed(src)
        out.append((path, _for_copy(nb, "instructor")))
        if src.stem in PACKAGED_COPIES:
            out.append((PACKAGED_COPIES[src.stem], _for_copy(nb, "instructor")))
        if src.stem in STUDENT_COPIES:
            out.append((STUDENT_DIR / f"{src.stem}_student.ipynb", student(nb)))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that notebooks are in sync")
    args = parser.parse_args(argv)
    stale = []
    for out, nb in outputs():
        text = nbformat.writes(nb) + "\n"
        if args.check:
            if not out.exists() or out.read_text() != text:
                stale.append(out)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            print(f"wrote {out.relative_to(ROOT)}")
    if stale:
        print("out of sync with their sources (run python notebooks/build.py):",
              *[str(p.relative_to(ROOT)) for p in stale], sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

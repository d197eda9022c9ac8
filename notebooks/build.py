"""Build the curated notebooks from their readable sources.

The sources (``notebooks/src/*.py``, ``audits/src/*.py``) are plain Python in the "percent"
format that Jupytext and VS Code use: ``# %%`` starts a code cell, ``# %% [markdown]`` a markdown
cell whose lines are ``#``-commented. They diff and review like code; the ``.ipynb`` files next
to them are generated, committed WITHOUT outputs, and checked to be in sync by
``tests/test_notebooks_sync.py``.

    python notebooks/build.py            # rewrite every notebook from its source
    python notebooks/build.py --check    # exit 1 if a notebook differs from its source
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = {ROOT / "notebooks" / "src": ROOT / "notebooks", ROOT / "audits" / "src": ROOT / "audits"}
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def parse_percent(text: str) -> list[nbformat.NotebookNode]:
    """Split percent-format source into notebook cells (markdown lines lose their ``# ``)."""
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in body.splitlines())
            cells.append(nbformat.v4.new_markdown_cell(body))
        elif kind == "code" and body:
            cells.append(nbformat.v4.new_code_cell(body))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_percent(source.read_text())
    for i, cell in enumerate(nb.cells):  # stable ids keep the committed files diff-free
        cell.id = f"{source.stem[:40]}-{i:02d}".replace("_", "-")
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    return nb


def targets() -> list[tuple[Path, Path]]:
    return [(src, out_dir / f"{src.stem}.ipynb")
            for src_dir, out_dir in SOURCE_DIRS.items() for src in sorted(src_dir.glob("*.py"))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that notebooks are in sync")
    args = parser.parse_args(argv)
    stale = []
    for src, out in targets():
        text = nbformat.writes(build(src)) + "\n"
        if args.check:
            if not out.exists() or out.read_text() != text:
                stale.append(out)
        else:
            out.write_text(text)
            print(f"wrote {out.relative_to(ROOT)}")
    if stale:
        print("out of sync with their sources (run python notebooks/build.py):",
              *[str(p.relative_to(ROOT)) for p in stale], sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

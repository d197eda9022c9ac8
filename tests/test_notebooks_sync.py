"""The committed notebooks are generated from their sources and carry no outputs."""
from pathlib import Path

import nbformat
import pytest

from notebooks.build import main as build_main, parse_percent, targets

ROOT = Path(__file__).resolve().parents[1]


def test_percent_format_becomes_markdown_and_code_cells():
    cells = parse_percent("# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n# %%\n\n# %%\ny = 2\n")
    assert [(c.cell_type, c.source) for c in cells] == [
        ("markdown", "# Title\n\ntext"), ("code", "x = 1"), ("code", "y = 2")]


def test_notebooks_are_in_sync_with_their_sources():
    assert targets(), "no notebook sources found"
    assert build_main(["--check"]) == 0, "run: python notebooks/build.py"


@pytest.mark.parametrize("path", sorted(ROOT.glob("notebooks/*.ipynb")) + sorted(ROOT.glob("notebooks/course/*.ipynb"))
                         + sorted(ROOT.glob("audits/*.ipynb")) + sorted(ROOT.glob("workbench/audit/*.ipynb")),
                         ids=lambda p: p.name)
def test_committed_notebooks_have_no_outputs_and_use_the_python3_kernel(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_an_output_with_byte_level_tokens_fails_its_notebook_cell(tmp_path):
    """The repository's conftest fails an nbval cell whose output shows `Ġ` (as `lens.tail(8)` did
    in notebook 02); the same notebook printing readable tokens passes."""
    import shutil
    import subprocess
    import sys
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    cells = [nbformat.v4.new_code_cell("print(['The', 'Ġcapital'])"), nbformat.v4.new_code_cell("print('␣capital')")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nb, tmp_path / "tokens.ipynb")
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--rootdir",
                          str(tmp_path), "tokens.ipynb"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed" in run.stdout, run.stdout[-2000:]
    assert "byte-level markers" in run.stdout and "Ġcapital" in run.stdout

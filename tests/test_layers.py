"""The layers are kept, not described: import-linter's contracts (pyproject.toml) hold for the
package, docs/architecture.md shows exactly those contracts, and each contract can fail. Imports
sit at the top of modules, so every module must import whichever is imported first."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_lint_imports_keeps_every_contract():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") >= 4


def test_the_architecture_doc_shows_the_contracts():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "layers.py"), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_an_import_that_points_up_breaks_the_layers(tmp_path):
    """The contract can fail: a copy of the package in which the engine imports the scoring API
    (a layer above it) is refused."""
    shutil.copytree(ROOT / "workbench", tmp_path / "workbench")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    causal = tmp_path / "workbench" / "engine" / "causal.py"
    causal.write_text(causal.read_text() + "\n\ndef _up():\n    from workbench.scoring.api import loglikelihood\n")
    out = subprocess.run([shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports"),
                          "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "workbench.engine.causal -> workbench.scoring.api" in out.stdout


def test_a_circle_between_two_modules_of_a_package_breaks_the_acyclic_contract(tmp_path):
    """The acyclic contract sees imports inside functions too: a copy of the package in which the
    batch planner imports the causal engine (which imports it at its top) is refused."""
    shutil.copytree(ROOT / "workbench", tmp_path / "workbench")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    batches = tmp_path / "workbench" / "engine" / "batches.py"
    batches.write_text(batches.read_text() + "\n\ndef _back():\n    from workbench.engine.causal import max_length\n")
    out = subprocess.run([shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports"),
                          "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "No cycles are allowed in workbench.engine" in out.stdout
    assert "The workbench's layers: no import points up KEPT" in out.stdout  # the circle is all it broke


# Imports each module given (or every module of the package) as the first workbench module of the
# process: a circle through a package's __init__ that an import at the top would close fails here
# ("partially initialized module") whichever side a user imports first.
_IMPORT_EACH_FIRST = """
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import torch, transformers, pandas  # third-party modules stay loaded between tries (speed)
import workbench
names = sys.argv[2:] or [m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.")
                         if m.name != "workbench.__main__"]
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "workbench" or m.startswith("workbench.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(len(names), "modules")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _import_each_first(root: Path, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _IMPORT_EACH_FIRST, str(root), *names], capture_output=True,
                          text=True, timeout=600, cwd=root)


def test_every_module_imports_whichever_is_imported_first():
    out = _import_each_first(ROOT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert int(out.stdout.split()[0]) > 150  # every module was tried


def test_a_name_imported_from_a_module_still_being_read_is_found(tmp_path):
    """The check can fail: scoring.api imports the vision.scoring *module* at its top because
    importing vision.scoring first runs the scoring package (its helpers live there), which reaches
    scoring.api while vision.scoring is half read; importing a name from it there fails."""
    shutil.copytree(ROOT / "workbench", tmp_path / "workbench")
    api = tmp_path / "workbench" / "scoring" / "api.py"
    text = api.read_text()
    assert "from workbench.vision import scoring as vision\n" in text
    api.write_text(text.replace("from workbench.vision import scoring as vision\n",
                                "from workbench.vision import scoring as vision\n"
                                "from workbench.vision.scoring import check_vlm  # noqa: F401\n"))
    out = _import_each_first(tmp_path, "workbench.vision.scoring", "workbench.scoring.api")
    assert out.returncode == 1
    assert "workbench.vision.scoring: ImportError" in out.stdout and "partially initialized" in out.stdout
    assert "workbench.scoring.api:" not in out.stdout  # entered from the other side it imports


def test_no_contract_ignores_an_import():
    """A circle is broken by moving what both sides need to a module below them, not by ignoring
    the import that closes it: no contract in pyproject.toml lists ignore_imports."""
    import tomllib
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    ignored = {c["id"]: c["ignore_imports"] for c in contracts if c.get("ignore_imports")}
    assert not ignored, ignored

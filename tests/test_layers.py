"""The layers are kept, not described: import-linter's contracts (pyproject.toml) hold for the
package, docs/architecture.md shows exactly those contracts, and each contract can fail."""
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
    assert "BROKEN" not in out.stdout and out.stdout.count("KEPT") >= 3


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

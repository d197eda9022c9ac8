"""What a fresh `pip install .` needs for `workbench audit`: the wheel carries every file the
package reads from its own folder (the flagship audit file, the audit notebook, the report's
templates, the data) and declares papermill; without the notebook the command runs the audit in
its own process and says so."""
from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_built_wheel_holds_what_the_audit_reads_and_declares_papermill(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "workbench", src / "workbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = email.message_from_bytes(z.read(meta)).get_all("Requires-Dist")
    for needed in ("workbench/audit/flagship.yaml", "workbench/audit/flagship_audit.ipynb",
                   "workbench/audit/templates/audit.html.j2"):
        assert needed in names, needed
    # every file of the package that is not Python source is package data, so it ships
    on_disk = {str(p.relative_to(src)) for p in (src / "workbench").rglob("*") if p.is_file() and p.suffix != ".py"}
    assert sorted(on_disk - names) == []
    assert any(r.split(">")[0].split("=")[0].strip() == "papermill" for r in requires), requires


def test_without_the_audit_notebook_the_command_runs_the_audit_here_and_says_so(tmp_path, monkeypatch, capsys,
                                                                                 shared_data):
    from workbench.audit import notebook
    from workbench.cli import main as cli
    from workbench.testing import tiny_model
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", str(shared_data))
    folders = []
    for arch in ("gpt2", "llama"):
        m = tiny_model(arch)
        m.hf.save_pretrained(tmp_path / arch)
        m.tokenizer.save_pretrained(tmp_path / arch)
        folders.append(str(tmp_path / arch))
    assert notebook.notebook_runner_missing() is None            # this checkout ships it
    monkeypatch.setattr(notebook, "AUDIT_NOTEBOOK", tmp_path / "not-installed.ipynb")
    out = tmp_path / "out"
    code = cli(["audit", "--models", *folders, "--probes", "crows_pairs", "--limit", "4", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "the audit notebook is not installed" in printed and "running the audit in this process" in printed
    assert (out / "audit_card.json").is_file() and (out / "report.html").is_file()
    assert not (out / "notebook.ipynb").exists()

"""`workbench audit` on the real embedded models: three specs, one of them SmolLM2 as deployed
through llama.cpp (a deployment section for the SmolLM2 pair), and the plan of the flagship audit
for a 5-point difference, printed in under a minute."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import EMBEDDED_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.real_model, pytest.mark.shared_data]
THREE = ["smollm2-135m-instruct", "gemma-3-270m", "smollm2-135m-instruct@llama.cpp"]


def _needs_embedded():
    for alias in ("smollm2-135m-instruct", "gemma-3-270m"):
        if importlib.util.find_spec(EMBEDDED_PACKAGES[alias]) is None:
            pytest.skip(f"embedded model {alias!r} not installed: run the README's set-up command")


def _workbench(argv, shared_data, timeout=1800):
    env = {**os.environ, "WORKBENCH_SHARED_DATA": str(shared_data),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "workbench", "audit", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def three(tmp_path_factory, shared_data):
    _needs_embedded()
    pytest.importorskip("llama_cpp", reason="the llama.cpp backend needs llama-cpp-python (run.sh test builds it)")
    out = tmp_path_factory.mktemp("three")
    audit_file = out.parent / "three.yaml"
    audit_file.write_text(yaml.safe_dump({"title": "Three specs, one of them SmolLM2 as deployed", "models": THREE,
                                          "probes": [{"crows_pairs": 30}], "tasks": [{"blimp": 1}]}))
    done = _workbench([str(audit_file), "--out", str(out)], shared_data)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out, done.stdout, audit_file


def test_three_models_give_three_pairs_and_every_file(three):
    out, printed, audit_file = three
    assert {p.name for p in out.iterdir()} >= {"report.html", "audit_card.json", "notebook.ipynb", "ml_bom.json"}
    card = json.loads((out / "audit_card.json").read_text())
    assert [m["name"] for m in card["models"]] == THREE                     # the specs as given
    pairs = {(f["model_a"], f["model_b"]) for f in card["findings"]}
    assert pairs == {(THREE[0], THREE[1]), (THREE[0], THREE[2]), (THREE[1], THREE[2])}
    assert [f["name"] for f in card["findings"]] == ["CrowS-Pairs"] * 3 + ["BLiMP"] * 3
    assert card["audit"]["file"] == audit_file.read_text()                  # recorded verbatim
    assert [s["section"] for s in card["skipped"]] == ["fidelity"] and "llama.cpp" in card["skipped"][0]["reason"]
    assert len(card["made"]["documentation"]) == 3 and len(card["made"]["lineage"]) == 3
    assert len(card["made"]["training_data"]) == 3                          # the contamination check, each model
    from workbench.provenance_audit.bom import validate
    bom = json.loads((out / "ml_bom.json").read_text())
    validate(bom)
    assert all(c["modelCard"]["quantitativeAnalysis"]["performanceMetrics"] for c in bom["components"])
    for line in ("== Models:", "== Findings:", "== Deployment:", "probe:crows_pairs | smollm2-135m-instruct@llama.cpp"):
        assert line in printed


def test_the_smollm2_pair_gets_a_deployment_section(three):
    out, _, _ = three
    card = json.loads((out / "audit_card.json").read_text())
    dep = card["deployment"]
    assert {(d["model_a"], d["model_b"]) for d in dep} == {(THREE[0], THREE[2])}     # Gemma is not one of them
    assert {d["probe"] for d in dep} == {"CrowS-Pairs", "BLiMP"}
    for d in dep:
        assert "same weight file" in d["evidence"] and d["lineage"] == "same weights"
        assert {"n", "flips", "flip_rate", "p_value"} <= set(d) and d["n"] > 0 and 0 <= d["p_value"] <= 1
        assert d["changes"] and d["margin"]["n"] == d["n"]
    assert "As deployed against as published" in (out / "report.html").read_text()


def test_the_executed_notebook_holds_the_audit_file_and_reruns_it(three, shared_data):
    import papermill as pm
    out, _, audit_file = three
    nb = nbformat.read(out / "notebook.ipynb", as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "smollm2-135m-instruct@llama.cpp" in injected.source and "audit_file" in injected.source
    before = json.loads((out / "audit_card.json").read_text())
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    started = time.perf_counter()
    pm.execute_notebook(str(out / "notebook.ipynb"), str(out.parent / "rerun.ipynb"), progress_bar=False,
                        cwd=str(ROOT))
    after = json.loads((out / "audit_card.json").read_text())
    assert [f["diff"] for f in after["findings"]] == [f["diff"] for f in before["findings"]]
    assert after["deployment"] == before["deployment"]
    # every score came from the store: no cell was scored again
    import sqlite3
    con = sqlite3.connect(out / "audit_store.db")
    assert con.execute("SELECT SUM(n_scored) FROM attempts").fetchone()[0] == \
        con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    con.close()
    assert time.perf_counter() - started < 600


def test_the_plan_for_five_points_prints_n_needed_and_time_in_under_a_minute(tmp_path, shared_data):
    _needs_embedded()
    started = time.perf_counter()
    done = _workbench(["--plan", "--detect", "5", "--out", str(tmp_path)], shared_data, timeout=600)
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "n needed" in done.stdout and "Estimated time:" in done.stdout
    for probe in ("CrowS-Pairs", "StereoSet", "WinoBias", "BLiMP"):
        assert probe in done.stdout
    assert not (tmp_path / "audit_card.json").exists()          # --plan stops before the audit
    assert wall < 60, f"--plan took {wall:.0f} s"

"""Audit cards: the JSON record, its HTML, and the headless report built from an executed notebook."""
from __future__ import annotations

import json
import re
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from workbench.audit import AuditCard, build_report
from workbench.audit.command import main
from workbench.audit.report import external_assets
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.results import Result

ROOT = Path(__file__).resolve().parents[1]


def _card(tiny) -> AuditCard:
    card = AuditCard("Bias <script>alert(1)</script> audit", question="Does it prefer stereotypes?")
    card.add_model(tiny("gpt2"))
    card.add_model(tiny("llama"))
    card.add_task("crows_pairs", "abc123", n=10, licence="CC BY-SA 4.0")
    frame = pd.DataFrame({"metric": ["pct_stereotype"], "category": ["all"], "value": [0.6],
                          "ci_low": [0.5], "ci_high": [float("nan")], "n": [10]})
    card.add_result("CrowS-Pairs", Result(frame, provenance={"seed": 0, "path": Path("/x")}),
                    note="causal LM, full-sentence log-likelihood")
    card.add_result("raw table", frame)
    card.add_limitation("CrowS-Pairs", "Many pairs differ in more than the social group.")
    return card


def test_card_round_trips_as_strict_json_with_versions_and_fingerprints(tiny, tmp_path):
    card = _card(tiny)
    path = card.save(tmp_path / "a.card.json")
    text = path.read_text()
    data = json.loads(text)  # strict JSON: NaN became null, Paths became strings
    assert "NaN" not in text
    assert data["results"][1]["table"][0]["ci_high"] is None
    # a result object is recorded by its summary (with its intervals), not its raw rows
    # a result is recorded by its summary, index kept (describe()'s count/mean/... rows here)
    assert [row["index"] for row in data["results"][0]["table"]][:2] == ["count", "unique"]
    assert data["results"][0]["provenance"] == {"seed": 0, "path": "/x"}
    assert [m["fingerprint_id"] for m in data["models"]] == [tiny("gpt2").fingerprint_id,
                                                             tiny("llama").fingerprint_id]
    assert data["models"][0]["fingerprint"] == json.loads(json.dumps(tiny("gpt2").fingerprint, default=str))
    assert data["versions"]["torch"] and data["versions"]["workbench"]
    assert AuditCard.load(path).to_dict() == data


def test_card_html_escapes_and_shows_everything(tiny):
    page = _card(tiny).to_html()
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    for needle in (tiny("gpt2").fingerprint_id, "abc123", "pct_stereotype", "differ in more than",
                   "software versions", "no fidelity check recorded"):
        assert needle in page
    assert external_assets(page) == []


def test_card_saves_where_build_report_asks(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_AUDIT_CARD", str(tmp_path / "deep" / "x.card.json"))
    assert AuditCard("t").save() == tmp_path / "deep" / "x.card.json"


def test_fidelity_check_is_recorded(tiny):
    from workbench import inspect
    model = tiny("llama")
    card = AuditCard("t")
    card.add_fidelity(model, inspect.verify(model))
    assert card.data["fidelity"][0]["ok"] is True
    assert card.data["fidelity"][0]["checks"]


def test_bad_input_is_refused_with_a_reason(tmp_path):
    with pytest.raises(InvalidInputError, match="title"):
        AuditCard("  ")
    with pytest.raises(InvalidInputError, match="DataFrame"):
        AuditCard("t").add_result("x", 42)
    with pytest.raises(InvalidInputError, match="hash"):
        AuditCard("t").add_task("blimp", "")
    with pytest.raises(InvalidInputError, match="verify"):
        AuditCard("t").add_fidelity(object(), object())
    (tmp_path / "other.json").write_text('{"schema": "something/else"}')
    with pytest.raises(InvalidInputError, match="not an audit card"):
        AuditCard.load(tmp_path / "other.json")


def _notebook(tmp_path, cells, name="mini_audit.ipynb") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path = tmp_path / "src" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


MINI_AUDIT = [
    "import matplotlib.pyplot as plt\n"
    "from workbench.testing import tiny_model\nfrom workbench.audit import AuditCard",
    "card = AuditCard('Mini audit', question='Does the report build?')\n"
    "model = tiny_model('gpt2')\ncard.add_model(model)\nprint(model.fingerprint_id)",
    "fig, ax = plt.subplots()\nax.bar(['a', 'b'], [1, 2])\nplt.show()",
    "card.add_limitation('tiny model', 'random weights')\ncard.save()",
]


@pytest.fixture
def kernel_sees_checkout(monkeypatch):
    """The notebook's kernel imports this checkout even where the package is not installed."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def test_build_report_executes_headless_and_writes_offline_html(tmp_path, kernel_sees_checkout):
    from workbench.testing import tiny_model
    nb_path = _notebook(tmp_path, MINI_AUDIT)
    report = build_report(nb_path, tmp_path / "out", timeout=300)
    page = report.html.read_text()
    assert external_assets(page) == []
    assert "Mini audit" in page and "random weights" in page
    # the report is rendered from the card (findings first, then the appendix), not from notebook
    # outputs; a card without findings says so, and the notebook's figure stays in notebook.ipynb
    assert "records no paired findings" in page and page.index("Findings") < page.index("Appendix")
    assert not re.search(r"<img", page)
    card = json.loads(report.card.read_text())
    assert card["models"][0]["fingerprint_id"] == tiny_model("gpt2").fingerprint_id
    assert len(card["report"]["notebook_sha256"]) == 64 and card["report"]["execution_seconds"] > 0
    executed = nbformat.read(report.notebook, as_version=4)
    assert executed.cells[1].outputs[0]["text"].strip() == tiny_model("gpt2").fingerprint_id
    assert any(o.get("data", {}).get("image/png") for o in executed.cells[2].outputs)
    assert not (nb_path.parent / "audit_card.json").exists()  # the card went where it was asked


def test_build_report_says_which_cell_failed(tmp_path, kernel_sees_checkout):
    nb_path = _notebook(tmp_path, ["x = 1", "raise ValueError('broken data file')"])
    with pytest.raises(WorkbenchError, match="broken data file") as err:
        build_report(nb_path, tmp_path / "out", timeout=120)
    assert "partly executed" in str(err.value) and (tmp_path / "out" / "notebook.ipynb").is_file()


def test_build_report_requires_a_card(tmp_path, kernel_sees_checkout):
    nb_path = _notebook(tmp_path, ["x = 1"])
    with pytest.raises(WorkbenchError, match="saved no audit card"):
        build_report(nb_path, tmp_path / "out", timeout=120)
    with pytest.raises(InvalidInputError, match="not found"):
        build_report(tmp_path / "missing.ipynb", tmp_path / "out")


def test_main_runs_a_notebook_and_prints_where_the_report_is(tmp_path, capsys, kernel_sees_checkout):
    nb_path = _notebook(tmp_path, MINI_AUDIT)
    assert main([str(nb_path), "--out", str(tmp_path / "report"), "--timeout", "300"]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "report" / "report.html") in printed and "fingerprint" in printed


def test_a_probe_results_data_hash_is_recorded_as_a_task_once():
    frame = pd.DataFrame({"metric": ["ss"], "category": ["all"], "value": [55.0]})
    prov = {"probe": "stereoset", "data": {"sha256": "f00d", "licence": "CC BY-SA 4.0", "limit": 50, "n_scored": 50},
            "options": {"aggregate": "sum"}}
    card = AuditCard("t")
    card.add_result("stereoset / model a", Result(frame, provenance=prov))
    card.add_result("stereoset / model b", Result(frame, provenance=prov))
    assert card.data["tasks"] == [{"name": "stereoset", "hash": "f00d", "licence": "CC BY-SA 4.0", "limit": 50,
                                   "n_scored": 50, "options": {"aggregate": "sum"}}]
    runs = {"runs": [{"model": "a", "task": "blimp", "task_hash": "b1"}, {"model": "b", "task": "blimp", "task_hash": "b1"}]}
    card.add_result("BLiMP", Result(frame, provenance=runs))
    assert card.data["tasks"][1] == {"name": "blimp", "hash": "b1"}


def test_audit_limits_must_be_positive(tmp_path, capsys):
    # checked by the argument parser (exit 2, one line naming the argument), before any notebook runs
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "x.ipynb"), "--probe-limit", "0"])
    assert exit_.value.code == 2
    assert "--probe-limit: must be 1 or more, got 0" in capsys.readouterr().err

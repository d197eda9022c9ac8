"""The flagship audit as a reader meets it: `workbench audit` (the default audit file, run in the
audit notebook) on the embedded models, its terminal progress, then report.html opened in
Chromium on a desktop and on a phone. The page opens on its findings (every model on every
probe, then the pairs), no absolute path of this machine may appear in the page or the card, and
no progress-bar text may be frozen into the page."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_FLAGS, _needs_browser

ROOT = Path(__file__).resolve().parents[1]
# the two-model rows, then SmolLM2 as a chat model vs raw text (its own pairs: generic A/B columns)
FINDINGS = ["CrowS-Pairs", "StereoSet", "WinoBias", "BLiMP", "CrowS-Pairs: chat vs raw", "BBQ: chat vs raw"]
PROGRESS_BAR = re.compile(r"\d+/\d+ \[|it/s\]|s/it\]|\d+%\|")

pytestmark = [pytest.mark.slow, pytest.mark.real_model, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def flagship(tmp_path_factory):
    from conftest import EMBEDDED_PACKAGES
    from workbench.audit.command import main
    for alias in ("smollm2-135m-instruct", "gemma-3-270m"):
        if importlib.util.find_spec(EMBEDDED_PACKAGES[alias]) is None:
            pytest.skip(f"embedded model {alias!r} not installed: run the README's set-up command")
    out = tmp_path_factory.mktemp("flagship")
    printed = io.StringIO()
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(printed):
            # the notebook's own sample sizes: the scores are shared with nbval's run of it (score cache)
            assert main(["--out", str(out)]) == 0
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return out, printed.getvalue()


def test_terminal_shows_each_step_and_where_the_report_is(flagship):
    out, printed = flagship
    steps = re.findall(r"^== (.+?)(?:: .*)? \((?:\d+ s; )?\d+ s in all\)$", printed, re.M)
    assert {"Audit", "Models", "Lineage", "Findings", "Deployment", "Report"} <= set(steps)   # one line each
    assert steps.index("Models") < steps.index("Findings") < steps.index("Report")
    assert re.search(r"probe:crows_pairs \| smollm2-135m-instruct: \d+/\d+ items", printed)  # how far, as it goes
    assert re.search(r"probe:bbq_generative \| smollm2-135m-instruct: \d+/\d+ items", printed)
    assert str(out / "report.html") in printed and (out / "notebook.ipynb").is_file() and (out / "ml_bom.json").is_file()
    assert "Traceback" not in printed and "WARNING" not in printed


def test_the_report_shows_how_both_models_were_made(flagship):
    """Documentation, lineage and a contamination test on the audited items, for both models."""
    out, _ = flagship
    card = json.loads((out / "audit_card.json").read_text())
    made, models = card["made"], [m["name"] for m in card["models"]]
    assert len(models) == 2 and sorted(d["model"] for d in made["documentation"]) == sorted(models)
    assert len(made["lineage"]) == 1 and made["lineage"][0]["verdict"]
    checks = {t["name"]: t for t in made["training_data"]}
    assert sorted(checks) == sorted(f"CrowS-Pairs exchangeability / {m}" for m in models)
    for t in checks.values():
        (row,) = t["table"]
        assert row["test"] == "exchangeability" and 0.05 <= row["p_value"] <= 1 and row["n"] >= 2
    html = (out / "report.html").read_text()
    assert "I. How the models were made" in html and "Training data and contamination" in html


def test_report_opens_with_the_headline_and_leaks_nothing(flagship, shared_data, tmp_path):
    _needs_browser()
    from playwright.sync_api import sync_playwright
    out, _ = flagship
    html = (out / "report.html").read_text()
    card_text = (out / "audit_card.json").read_text()
    card = json.loads(card_text)
    machine = {str(ROOT), str(ROOT.resolve()), str(Path.home()), str(shared_data), str(shared_data.resolve()),
               str(out), sys.prefix, tempfile.gettempdir() + "/"}
    for text, what in ((html, "report.html"), (card_text, "audit_card.json")):
        leaked = sorted(p for p in machine if p and p in text)
        assert not leaked, f"{what} holds absolute paths of this machine: {leaked}"
    assert not PROGRESS_BAR.search(html), PROGRESS_BAR.search(html).group(0)
    assert [f["name"] for f in card["findings"]] == FINDINGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((out / "report.html").as_uri())
            headings = page.locator("h2").all_inner_texts()
            assert headings[0] == "Findings" and headings[-1] == "Appendix"
            overview = page.locator("table").first                # every model on every probe, first
            assert overview.locator("th").all_inner_texts()[0] == "model"
            assert overview.locator("tbody tr").count() == 2 and overview.bounding_box()["y"] < 900
            pairs = page.locator("table.wb-stack").first
            header = pairs.locator("th").all_inner_texts()
            assert header[:3] == ["probe or task", "metric", "ideal"] and "difference A - B" in header
            assert "adjusted p" in header and "n" in header and "A vs B" in header
            rows = pairs.locator("tbody tr").all_inner_texts()
            assert [r.split("\t")[0] for r in rows] == FINDINGS
            assert pairs.bounding_box()["y"] < 2 * 900                # the pairs start on the second screen at most
            body = page.inner_text("body")
            assert not PROGRESS_BAR.search(body) and "Traceback" not in body
            assert page.locator("figure svg").count() >= 4        # differences + one per probe
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto((out / "report.html").as_uri())
            assert phone.evaluate("document.documentElement.scrollWidth") == 390
            first = phone.locator("table.wb-stack").first.locator("tbody tr").first
            for label in ("probe or task", "difference A - B", "adjusted p"):
                box = first.locator(f'td[data-label="{label}"]').bounding_box()
                assert box["y"] + box["height"] <= 2 * 844 and box["x"] + box["width"] <= 390.5, (label, box)
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=False)
            keep = os.environ.get("WORKBENCH_TEST_ARTIFACTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / "flagship_report.png")
        finally:
            browser.close()

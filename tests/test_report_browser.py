"""The flagship audit as a reader meets it: `workbench audit` run headless on the embedded models,
its terminal progress, then report.html opened in Chromium. The headline table must be the
first table, no absolute path of this machine may appear in the page or the card, and no
progress-bar text may be frozen into the page."""
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
# the two-model rows, then SmolLM2 as a chat model vs raw text (its own pair: generic A/B columns)
FINDINGS = ["CrowS-Pairs", "StereoSet", "WinoBias", "BLiMP", "CrowS-Pairs: chat vs raw"]
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
    steps = re.findall(r"^\[(\d+)/(\d+)\] (.+?)  \(\d+ s\)$", printed, re.M)
    assert len(steps) >= 8 and steps[-1][0] == steps[-1][1]          # every section, in order
    assert {"Bias probes", "Findings"} <= {s[2] for s in steps}
    assert re.search(r"crows_pairs on smollm2-135m-instruct: \d+ items", printed)   # how far, as it goes
    assert re.search(r"bbq_generative on smollm2-135m-instruct: \d+ answers", printed)
    assert str(out / "report.html") in printed
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
            first = page.locator("table").first
            header = first.locator("th").all_inner_texts()
            assert header[:3] == ["probe or task", "metric", "ideal"] and "difference A - B" in header
            assert "adjusted p" in header and "n" in header and "A vs B" in header
            rows = first.locator("tbody tr").all_inner_texts()
            assert [r.split("\t")[0] for r in rows] == FINDINGS
            # the first screen: the title, the question, the headline table and the readings
            assert first.bounding_box()["y"] < 900
            headings = page.locator("h2").all_inner_texts()
            assert headings[:2] == ["Findings", "Appendix"]
            body = page.inner_text("body")
            assert not PROGRESS_BAR.search(body) and "Traceback" not in body
            assert page.locator("figure svg").count() >= 4        # differences + one per probe
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=False)
            keep = os.environ.get("WORKBENCH_TEST_ARTIFACTS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / "flagship_report.png")
        finally:
            browser.close()

"""The audit report as a reader meets it on a phone (390 x 844) and on a desktop (1280 x 900), in
Chromium: no element wider than the screen (tables scroll in their own box, the findings stack
one block per row), the first finding's probe, difference and p-value within the first two
screens, a desktop that opens on its findings; for a real small audit and for ten models."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_FLAGS, _needs_browser
from workbench.audit.findings import finding_from_frames
from workbench.audit.report import card_html, external_assets

pytestmark = pytest.mark.browser
PHONE, DESKTOP = (390, 844), (1280, 900)


def _card_of_ten() -> dict:
    """A card of ten models with long names on four probes: 45 pairs x 4 = 180 headline rows (built
    by benchmarks/report_layout.py, which measures the same page)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from report_layout import card_of_ten
    finally:
        sys.path.pop(0)
    return card_of_ten(finding_from_frames)


def _check_page(page, tmp_path, name):
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") == width
    wider = page.evaluate("""() => [...document.querySelectorAll('main *')]
        .filter(e => !e.closest('.wb-scroll') && e.getBoundingClientRect().right > window.innerWidth + 0.5)
        .map(e => e.tagName)""")
    assert wider == [], f"elements wider than the viewport: {wider[:5]}"
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot))
    keep = os.environ.get("WORKBENCH_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)


def _first_finding_visible(page, screens: int = 2) -> dict:
    """Where the first headline row's probe, difference and adjusted p are drawn."""
    out = {}
    first = page.locator("table.wb-stack").first.locator("tbody tr").first
    for label in ("probe or task", "difference A - B", "adjusted p"):
        cell = first.locator(f'td[data-label="{label}"]')
        assert cell.is_visible(), label
        box = cell.bounding_box()
        height = page.viewport_size["height"]
        assert box["y"] + box["height"] <= screens * height, (label, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"] + 0.5, (label, box)
        out[label] = cell.inner_text()
    return out


@pytest.fixture(scope="module")
def small_report(tmp_path_factory, shared_data):
    """A real audit of two tiny models (folders), rendered as the command writes it."""
    import workbench as wb
    from workbench.testing import tiny_model
    root = tmp_path_factory.mktemp("phone")
    specs = []
    for arch in ("gpt2", "llama"):
        m = tiny_model(arch)
        m.hf.save_pretrained(root / arch)
        m.tokenizer.save_pretrained(root / arch)
        specs.append(str(root / arch))
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    audit = wb.audit(models=specs, probes=["crows_pairs", "winobias"], tasks=["blimp"], limit=8, out=root / "out",
                     progress=False)
    return root / "out" / "report.html", audit


@pytest.mark.parametrize("which", ["small audit", "ten models"])
def test_the_report_reads_on_a_phone_and_opens_on_its_findings_on_a_desktop(which, small_report, tmp_path):
    _needs_browser()
    from playwright.sync_api import sync_playwright
    if which == "small audit":
        path, audit = small_report
        first = audit.findings().iloc[0]
    else:
        path = tmp_path / "ten.html"
        card = _card_of_ten()
        path.write_text(card_html(card, page=True))
        first = card["findings"][0]
    assert external_assets(path.read_text()) == []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            phone = browser.new_page(viewport={"width": PHONE[0], "height": PHONE[1]})
            phone.goto(path.as_uri())
            _check_page(phone, tmp_path, f"report_phone_{which.replace(' ', '_')}")
            seen = _first_finding_visible(phone)
            name = first["probe"] if which == "small audit" else first["name"]
            assert seen["probe or task"].strip().endswith(name)
            assert "[" in seen["difference A - B"] and seen["adjusted p"].split(":")[-1].strip()
            # every table is in a scroll box, none wider than the screen itself
            assert phone.evaluate("[...document.querySelectorAll('table')].every(t => t.closest('.wb-scroll'))")

            desk = browser.new_page(viewport={"width": DESKTOP[0], "height": DESKTOP[1]})
            desk.goto(path.as_uri())
            _check_page(desk, tmp_path, f"report_desktop_{which.replace(' ', '_')}")
            headings = desk.locator("h2").all_inner_texts()
            assert headings[0] == "Findings" and headings[-1] == "Appendix"
            assert desk.locator("h2").first.bounding_box()["y"] < DESKTOP[1] / 2
            table = desk.locator("table.wb-stack").first
            header = table.locator("th").all_inner_texts()
            assert header[:3] == ["probe or task", "metric", "ideal"] and "adjusted p" in header
            assert table.locator("thead").is_visible()         # a table, not stacked blocks, on a desktop
            assert _first_finding_visible(desk, screens=2)["probe or task"]
        finally:
            browser.close()

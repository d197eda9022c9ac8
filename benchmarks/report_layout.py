"""Measure the audit report's layout in Chromium on a phone (390 x 844) and a desktop (1280 x 900):
the page's scroll width against the viewport's, its height, the findings table's width and how
many of its columns show without scrolling, the widest element, and how far down the first
finding's probe name, difference and p-value are drawn. For the two reports of
tests/test_report_phone.py: a real audit of two tiny models (small, offline) and a synthetic card of
ten models (180 headline rows). Prints one table; the numbers are the page's, not a test.

    python benchmarks/report_layout.py                       # this checkout's report
    python benchmarks/report_layout.py --before /work/wt-base # also the report of an older checkout

``--before TREE`` renders the same two cards with the ``card_html`` of the checkout at ``TREE``
(``workbench/audit_html.py`` before the audit package existed, ``workbench/audit/report.py``
after), in a subprocess that imports that tree; a card the older code cannot render is reported
as such. Needs playwright and a Chromium (``WORKBENCH_CHROMIUM``, default /usr/bin/chromium).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

VIEWPORTS = {"phone 390x844": (390, 844), "desktop 1280x900": (1280, 900)}
CHROMIUM = os.environ.get("WORKBENCH_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def card_of_ten(finding_from_frames) -> dict:
    """Ten models with long names on four probes: 45 pairs x 4 = 180 headline rows (the card of
    tests/test_report_phone.py, built with the given checkout's ``finding_from_frames``)."""
    models = [f"organisation-{i}/a-rather-long-model-name-{i}-8B-Instruct-Q4_K_M.gguf@llama.cpp" for i in range(10)]
    probes = [("CrowS-Pairs", "pct_stereotype", 50), ("StereoSet", "ss", 50), ("WinoBias", "pct_pro_preferred", 50),
              ("BLiMP", "acc", None)]
    findings, overview = [], []
    for k, (name, metric, ideal) in enumerate(probes):
        for i, a in enumerate(models):
            overview.append({"model": a, "probe": name, "metric": metric, "value": 55.0 + i, "ci_low": 50.0 + i,
                             "ci_high": 60.0 + i, "n": 1508, "ideal": ideal})
            for b in models[i + 1:]:
                def side(v):
                    return [{"metric": metric, "category": "all", "value": v, "ci_low": v - 3, "ci_high": v + 3, "n": 1508}]
                cmp = [{"metric": metric, "category": "all", "diff": 1.5, "ci_low": -1.0, "ci_high": 4.0,
                        "p_value": 0.2 + 0.001 * k, "p_adjusted": 0.2, "n": 1508, "test": "mcnemar_exact"}]
                findings.append(finding_from_frames(name, metric, side(56.0), side(54.5), cmp, a, b, ideal=ideal,
                                                    sd_diff=0.4, unit="points"))
    return {"schema": "workbench.audit_card/1", "title": "Ten deployed 8B models, as people run them",
            "question": "Do they differ in stereotype preference?", "created": "2026-01-01", "models": [],
            "fidelity": [], "tasks": [], "results": [], "limitations": [], "versions": {"python": "3.11"},
            "report": {}, "findings": findings, "overview": overview}


def small_audit_card(folder: Path) -> dict:
    """The card of a real audit of two tiny random models (GPT-2 and Llama shapes), as
    ``workbench audit`` writes it (the small report of tests/test_report_phone.py)."""
    import workbench as wb
    from workbench.testing import tiny_model
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    specs = []
    for arch in ("gpt2", "llama"):
        m = tiny_model(arch)
        m.hf.save_pretrained(folder / arch)
        m.tokenizer.save_pretrained(folder / arch)
        specs.append(str(folder / arch))
    wb.audit(models=specs, probes=["crows_pairs", "winobias"], tasks=["blimp"], limit=8, out=folder / "out",
             progress=False)
    return json.loads((folder / "out" / "audit_card.json").read_text())


# Rendered in a subprocess that imports the older checkout (its card_html and finding_from_frames).
RENDER_BEFORE = """
import json, sys
try:
    from workbench.audit.report import card_html
    from workbench.audit.findings import finding_from_frames
except ImportError:
    from workbench.audit_html import card_html
    from workbench.audit_findings import finding_from_frames
sys.path.insert(0, sys.argv[1])
from report_layout import card_of_ten
small, out = sys.argv[2], sys.argv[3]
pages = {"ten models": card_of_ten(finding_from_frames)}
pages["small audit"] = json.load(open(small))
for name, card in pages.items():
    try:
        html = card_html(card, page=True)
    except Exception as e:  # the older code may not read the newer card
        html = None
        print(f"{name}: the older code cannot render this card: {type(e).__name__}: {e}", file=sys.stderr)
    if html is not None:
        open(f"{out}/{name.replace(' ', '_')}.html", "w").write(html)
"""

MEASURE = """() => {
  const W = window.innerWidth, H = window.innerHeight, doc = document.documentElement;
  const tables = [...document.querySelectorAll('table')];
  const texts = t => [...t.querySelectorAll('th')].map(th => (th.textContent || '').trim());
  const table = document.querySelector('table.wb-stack') || tables.find(t => texts(t).some(x => /^difference/i.test(x))) || tables[0];
  // the part of an element the reader sees without scrolling the page sideways: clipped by the
  // viewport and by every ancestor that scrolls or hides its overflow
  const seen = el => {
    let r = el.getBoundingClientRect(), left = Math.max(r.left, 0), right = Math.min(r.right, W);
    for (let a = el.parentElement; a; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') {
        const b = a.getBoundingClientRect(); left = Math.max(left, b.left); right = Math.min(right, b.right);
      }
    }
    return r.width > 0 && r.height > 0 && left <= r.left + 0.5 && right >= r.right - 0.5;
  };
  const out = {scroll_width: doc.scrollWidth, viewport_width: W, page_height: doc.scrollHeight};
  let widest = null;
  for (const e of document.body.querySelectorAll('*')) {
    const w = e.getBoundingClientRect().width;
    if (!widest || w > widest.w) widest = {w, name: e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : ''),
                                            scrolls_in_box: !!e.closest('.wb-scroll') && !e.classList.contains('wb-scroll')};
  }
  out.widest = widest;
  if (!table) return out;
  const row = table.querySelector('tbody tr');
  const cells = [...row.children];
  const header = texts(table).slice(0, cells.length);
  const stacked = table.querySelector('thead') && getComputedStyle(table.querySelector('thead')).display === 'none';
  out.table = {width: table.getBoundingClientRect().width, columns: cells.length, stacked: !!stacked,
               columns_seen: cells.filter(seen).length};
  const label = (c, i) => c.getAttribute('data-label') || header[i] || '';
  const find = re => cells.find((c, i) => re.test(label(c, i)));
  // y on the page, and whether the cell is drawn within the screen's width (no sideways scrolling)
  const y = c => c ? {y: Math.round(c.getBoundingClientRect().top + window.scrollY), seen: seen(c)} : null;
  out.first = {probe: y(find(/probe/i)), difference: y(find(/^difference/i)),
               p: y(find(/adjusted p|p adjusted/i) || find(/^p$/i))};
  return out;
}"""


def measure(pages: dict[str, Path]) -> list[dict]:
    from playwright.sync_api import sync_playwright
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            for (version, report), path in pages.items():
                for view, (w, h) in VIEWPORTS.items():
                    page = browser.new_page(viewport={"width": w, "height": h})
                    page.goto(path.as_uri())
                    rows.append(dict(version=version, report=report, view=view, height=h, **page.evaluate(MEASURE)))
                    page.close()
        finally:
            browser.close()
    return rows


def _fmt(r: dict) -> list[str]:
    t, f, wd = r.get("table"), r.get("first", {}), r["widest"]
    def screens(at):
        if at is None:
            return "-"
        return f"{at['y']} ({at['y'] / r['height']:.1f})" + ("" if at["seen"] else " off-screen right")
    return [r["version"], r["report"], r["view"], f"{r['scroll_width']} / {r['viewport_width']}", str(r["page_height"]),
            "-" if not t else f"{t['width']:.0f}", "-" if not t else f"{t['columns_seen']} of {t['columns']}"
            + (" (stacked)" if t["stacked"] else ""),
            f"{wd['name']} {wd['w']:.0f}" + (" (in a scroll box)" if wd["scrolls_in_box"] else ""),
            screens(f.get("probe")), screens(f.get("difference")), screens(f.get("p"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="an older checkout whose card_html renders the same cards")
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's workbench, not an installed one
    from workbench.audit.findings import finding_from_frames
    from workbench.audit.report import card_html
    work = Path(tempfile.mkdtemp(prefix="report_layout_"))
    small = small_audit_card(work)
    (work / "small_card.json").write_text(json.dumps(small))
    pages = {}
    for name, card in (("small audit", small), ("ten models", card_of_ten(finding_from_frames))):
        pages[("after", name)] = work / f"after_{name.replace(' ', '_')}.html"
        pages[("after", name)].write_text(card_html(card, page=True))
    if args.before:
        before = work / "before"
        before.mkdir()
        env = dict(os.environ, PYTHONPATH=str(Path(args.before).resolve()))
        subprocess.run([sys.executable, "-c", RENDER_BEFORE, str(Path(__file__).parent), str(work / "small_card.json"),
                        str(before)], env=env, check=True, cwd=before)
        for name in ("small audit", "ten models"):
            if (before / f"{name.replace(' ', '_')}.html").exists():
                pages[("before", name)] = before / f"{name.replace(' ', '_')}.html"
    rows = measure(dict(sorted(pages.items(), key=lambda kv: (kv[0][1], kv[0][0] != "before"))))
    head = ["code", "report", "viewport", "scroll width / viewport", "page height", "findings table width",
            "columns seen", "widest element (px)", "first probe y px (screens)", "difference y", "p-value y"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(_fmt(r)) + " |")
    print(f"\npages in {work}")


if __name__ == "__main__":
    main()

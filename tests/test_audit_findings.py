"""Findings of an audit (headline rows, readings, rounding), portable paths in cards, the report's
layout, and the terminal progress of a headless run."""
from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import workbench as wb
from workbench.audit import AuditCard
from workbench.audit.findings import finding, finding_from_frames, fmt_interval, fmt_p, headline, holm, reading
from workbench.audit.report import card_html, readable
from workbench.audit.progress import ProgressExecutor, sections
from workbench.errors import InvalidInputError
from workbench.portable import portable_path, portable_text, scrub

ROOT = Path(__file__).resolve().parents[1]


def _entry(diff, lo, hi, p, n, value_a=62.0, value_b=55.0):
    return finding_from_frames(
        "CrowS-Pairs", "pct_stereotype",
        summary_a=[{"metric": "pct_stereotype", "category": "all", "value": value_a, "ci_low": value_a - 10,
                    "ci_high": value_a + 10, "n": n}],
        summary_b=[{"metric": "pct_stereotype", "category": "all", "value": value_b, "ci_low": value_b - 10,
                    "ci_high": value_b + 10, "n": n}],
        comparison=[{"metric": "pct_stereotype", "category": "all", "diff": diff, "ci_low": lo, "ci_high": hi,
                     "p_value": p, "p_adjusted": p, "n": n, "test": "mcnemar_exact"}],
        label_a="A", label_b="B", ideal=50, sd_diff=0.5 * 100, unit="points")


def test_numbers_are_rounded_to_what_their_interval_supports():
    assert fmt_interval(62.123, 49.4, 73.9) == "62 [49, 74]"
    assert fmt_interval(0.8312, 0.801, 0.862) == "0.831 [0.801, 0.862]"
    assert fmt_interval(5.0, -12.0, 22.0, signed=True) == "+5 [-12, +22]"
    assert fmt_interval(1.0, float("nan"), float("nan")) == "1.00 (no interval)"
    assert fmt_p(0.0004) == "< 0.001" and fmt_p(0.0312) == "0.031" and fmt_p(0.67) == "0.67"


def test_readings_do_not_overclaim():
    quiet = reading(_entry(7.0, -6.0, 20.0, 0.31, 60), p_adjusted=0.31)
    assert quiet.startswith("No evidence that A and B differ on these items")
    assert "would likely go undetected" in quiet          # says what the test could not see
    assert "A's interval lies above the ideal 50" in quiet and "B's interval includes the ideal 50" in quiet
    loud = reading(_entry(-15.0, -25.0, -5.0, 0.004, 200), p_adjusted=0.01)
    assert loud.startswith("B scores higher on pct_stereotype") and "adjusted p = 0.010" in loud
    tiny = reading(_entry(100.0, -100.0, 100.0, 1.0, 1), p_adjusted=1.0)
    assert tiny.startswith("Too few items (n = 1) for any paired test to detect a difference")
    # a significant raw p that the family adjustment removes is not reported as a difference
    assert reading(_entry(9.0, 1.0, 17.0, 0.03, 80), p_adjusted=0.09).startswith("No evidence")


def test_headline_adjusts_across_rows_with_holm():
    entries = [_entry(9.0, 1.0, 17.0, 0.01, 80), _entry(3.0, -5.0, 11.0, 0.04, 80), _entry(0, -8, 8, None, 80)]
    table = headline(entries)
    assert list(table.columns[:3]) == ["probe or task", "metric", "ideal"]
    assert holm([0.01, 0.04, None]) == [pytest.approx(0.02), pytest.approx(0.04), None]
    assert list(table["adjusted p"]) == ["0.020", "0.040", "–"]


def test_headline_names_the_pair_per_row_when_rows_compare_different_pairs():
    same = headline([dict(_entry(9.0, 1.0, 17.0, 0.01, 80), model_a="m", model_b="g"),
                     dict(_entry(3.0, -5.0, 11.0, 0.04, 80), model_a="m", model_b="g")])
    assert list(same.columns[3:5]) == ["m", "g"]          # one pair throughout: columns named after it
    chat = dict(_entry(-4.0, -9.0, 1.0, 0.2, 40), name="CrowS-Pairs: chat vs raw", model_a="m (chat)", model_b="m")
    mixed = headline([dict(_entry(9.0, 1.0, 17.0, 0.01, 80), model_a="m", model_b="g"), chat])
    assert list(mixed.columns[:6]) == ["probe or task", "metric", "ideal", "A vs B", "A", "B"]
    assert list(mixed["A vs B"]) == ["m vs g", "m (chat) vs m"] and not mixed.isna().any().any()
    assert "m (chat) and m" in mixed.reading.iloc[1]
    from workbench.audit.figures import differences_svg
    assert "m (chat) - m" in differences_svg([dict(_entry(9.0, 1.0, 17.0, 0.01, 80), model_a="m", model_b="g"), chat])


def test_finding_from_probe_results_matches_compare_and_summaries(tiny):
    a = wb.run_probe("occupations_pronouns", tiny("gpt2"), limit=30, n_boot=200)
    b = wb.run_probe("occupations_pronouns", tiny("llama"), limit=30, n_boot=200)
    metric = a.metrics[0].name
    cmp = wb.compare(a, b)
    e = finding("pronouns", a, b, metric, comparison=cmp)
    row = cmp[(cmp.metric == metric) & (cmp.category == "all")].iloc[0]
    assert e["diff"]["value"] == pytest.approx(row["diff"]) and e["diff"]["p_value"] == pytest.approx(row.p_value)
    s = a.summary()
    assert e["a"]["value"] == pytest.approx(s[(s.metric == metric) & (s.category == "all")].value.iloc[0])
    assert e["n"] == row.n and len(e["categories"]) == len(cmp[(cmp.metric == metric) & (cmp.category != "all")])
    with pytest.raises(InvalidInputError, match="no metric 'nope'"):
        finding("pronouns", a, b, "nope")


def test_paths_are_recorded_relative_to_named_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    assert portable_path(tmp_path / "data" / "crows_pairs") == "<data>/crows_pairs"
    assert portable_path(tmp_path / "cache" / "models" / "x.safetensors") == "<cache>/models/x.safetensors"
    assert portable_path(ROOT / "audits" / "flagship_audit.ipynb").endswith("audits/flagship_audit.ipynb")
    assert str(ROOT) not in portable_path(ROOT / "audits")
    text = portable_text(f"read {tmp_path / 'data' / 'bbq'} at http://127.0.0.1:8000/v1 (3/4 done)")
    assert text == "read <data>/bbq at http://127.0.0.1:8000/v1 (3/4 done)"
    assert scrub({"a": [str(Path.home() / "x" / "y")], "n": 3}) == {"a": ["~/x/y"], "n": 3}


def test_card_holds_no_absolute_path_of_this_machine(tiny, tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", str(shared_data))
    res = wb.run_probe("crows_pairs", tiny("gpt2"), data=shared_data / "crows_pairs", limit=12, n_boot=200)
    assert res.provenance["data"]["source"] == "<data>/crows_pairs"
    assert not any(k.startswith("_") for k in res.provenance["options"])   # hidden keys stay out of the record
    card = AuditCard("t")
    card.add_model(tiny("gpt2"))
    card.add_result("crows", res)
    text = card.save(tmp_path / "card.json").read_text() + card.to_html(page=True)
    for machine_path in {str(shared_data.resolve()), str(ROOT), str(tmp_path), str(Path.home())}:
        assert machine_path not in text


def test_report_leads_with_the_findings_and_marks_small_rows():
    card = {"schema": "s", "title": "T", "created": "now", "question": "Q?", "models": [], "fidelity": [],
            "tasks": [{"name": "crows_pairs", "hash": "abc", "options": {"aggregate": "sum", "seed": 0}}],
            "results": [{"name": "summary", "note": "", "table": [
                {"index": 0, "metric": "pct", "category": "all", "value": 60.0, "ci_low": 45.0, "ci_high": 74.0, "n": 50},
                {"index": 1, "metric": "pct", "category": "religion", "value": 100.0, "ci_low": 2.5, "ci_high": 100.0,
                 "n": 1}]}],
            "findings": [_entry(7.0, -6.0, 20.0, 0.31, 60)], "limitations": [], "versions": {"x": "1"}, "report": {}}
    page = card_html(card, page=True)
    first_table = re.search(r"<table.*?</table>", page, re.S).group(0)
    assert "difference A - B" in first_table and "CrowS-Pairs" in first_table
    assert page.index("Findings") < page.index("Appendix") < page.index("Recorded tables")
    assert "<svg" in page                                   # the paired-difference plot, inline
    assert "aggregate = sum; seed = 0" in page              # options as key/value pairs
    assert "<th>index</th>" not in page
    t = readable(card["results"][0]["table"])
    assert t["columns"] == ["metric", "category", "estimate [95% CI]", "n"]
    assert [r["small"] for r in t["rows"]] == [False, True]       # n = 1 < workbench.stats.MIN_N
    assert t["rows"][0]["cells"][2] == "60 [45, 74]"


def test_sections_and_progress_lines(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title\ntext"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_markdown_cell("## Step two"), nbformat.v4.new_code_cell("print('scored 3 items')"),
                nbformat.v4.new_code_cell("import sys; print('to stderr', file=sys.stderr)")]
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    assert sections(nb) == {1: "Title", 3: "Step two"}
    out = io.StringIO()
    ProgressExecutor(stream=out, timeout=120, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/2] Title") and lines[1].startswith("[2/2] Step two")
    assert lines[2] == "    scored 3 items" and len(lines) == 3       # stdout only, as it arrives


def test_the_cards_p_adjusted_is_holm_across_the_headline_rows(tmp_path):
    """audit_card.json's diff.p_adjusted is the Holm value across every headline row (as
    .findings() and the report say), not the row's raw p; a row's categories keep their BH values."""
    from statsmodels.stats.multitest import multipletests
    from workbench.audit.report import _finding_table
    from workbench.audit.result import findings_frame
    raw = [0.01, 0.03, 0.04, 0.2]
    card = AuditCard("t")
    for i, p in enumerate(raw):
        entry = finding_from_frames(
            f"probe {i}", "pct_stereotype",
            summary_a=[{"metric": "pct_stereotype", "category": c, "value": 60.0, "ci_low": 50.0, "ci_high": 70.0,
                        "n": 80} for c in ("all", "x")],
            summary_b=[{"metric": "pct_stereotype", "category": c, "value": 55.0, "ci_low": 45.0, "ci_high": 65.0,
                        "n": 80} for c in ("all", "x")],
            comparison=[{"metric": "pct_stereotype", "category": "all", "diff": 5.0, "ci_low": 1.0, "ci_high": 9.0,
                         "p_value": p, "p_adjusted": p, "n": 80, "test": "mcnemar_exact"},
                        {"metric": "pct_stereotype", "category": "x", "diff": 5.0, "ci_low": 1.0, "ci_high": 9.0,
                         "p_value": p / 2, "p_adjusted": 0.123, "n": 40, "test": "mcnemar_exact"}],
            label_a="A", label_b="B", ideal=50)
        card.add_finding(entry["name"], entry=entry)
    expected = multipletests(raw, method="holm")[1]
    assert raw[1] < 0.05 < expected[1]                       # the row the adjustment must not let through
    saved = json.loads(card.save(tmp_path / "audit_card.json").read_text())["findings"]
    got = [e["diff"]["p_adjusted"] for e in saved]
    assert got == pytest.approx(list(expected))
    assert [e["diff"]["p_adjusted"] for e in card.data["findings"]] == pytest.approx(list(expected))
    assert list(findings_frame(saved).p_adjusted) == pytest.approx(got)       # what .findings() says
    assert all("holm across the 4 headline rows" == e["diff"]["p_adjustment"] for e in saved)
    cats = [c["diff"] for e in saved for c in e["categories"]]
    assert all(c["p_adjusted"] == 0.123 and "benjamini-hochberg" in c["p_adjustment"] for c in cats)
    # the report: the headline table and the row "all" of the category table both show Holm's 0.090
    assert list(card.findings()["adjusted p"])[1] == "0.090"
    table = _finding_table(saved[1])
    assert "p adjusted" in table["columns"]
    assert table["rows"][0]["cells"][table["columns"].index("p adjusted")] == "0.090"
    assert "Holm across the 4 headline rows" in card.to_html(page=True)


def test_a_card_reads_like_its_json(tiny, tmp_path):
    """audit.card["findings"] works: the card's top-level fields by key, as audit_card.json has them."""
    card = AuditCard("t")
    card.add_model(tiny("gpt2"))
    card.add_finding("CrowS-Pairs", entry=_entry(9.0, 1.0, 17.0, 0.01, 80))
    saved = json.loads(card.save(tmp_path / "card.json").read_text())
    assert card["findings"] == saved["findings"] and card["models"][0]["name"] == saved["models"][0]["name"]
    assert "findings" in card and "nope" not in card and card.get("plan", "none") == "none"
    assert set(card.keys()) == set(saved)
    with pytest.raises(KeyError, match="no field 'nope'"):
        card["nope"]

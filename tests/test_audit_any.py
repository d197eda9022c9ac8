"""`wb.audit` and `workbench audit` on tiny models saved as folders (specs load_model takes): the
findings of N models with Holm across the table, the deployment section for one model at two
precisions, the published files (the ML-BOM valid CycloneDX 1.6 with the measured results), and
an audit killed with SIGKILL mid-run that resumes without scoring anything twice."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.audit.findings import holm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from workbench.testing import tiny_model
    root = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for arch in ("gpt2", "llama"):
        m = tiny_model(arch)
        m.hf.save_pretrained(root / arch)
        m.tokenizer.save_pretrained(root / arch)
        out[arch] = str(root / arch)
    return out


@pytest.fixture(scope="module")
def three(folders, shared_data, tmp_path_factory):
    """Three models: two architectures, and the llama at bfloat16 (one model, two precisions)."""
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    out = tmp_path_factory.mktemp("audit-three")
    audit = wb.audit({"models": [folders["gpt2"], folders["llama"],
                                 {"spec": folders["llama"], "name": "llama-bf16", "options": {"dtype": "bfloat16"}}],
                      "probes": [{"crows_pairs": {"limit": 24}}], "tasks": [{"blimp": {"limit": 3}}],
                      "title": "Three tiny models"}, out=out, progress=False)
    return audit, out


def test_every_pair_is_in_one_headline_table_with_holm_across_all_rows(three, folders):
    audit, _ = three
    f = audit.findings()
    assert {"metric", "model_a", "model_b", "difference", "ci_low", "ci_high", "p_adjusted", "n"} <= set(f.columns)
    pairs = {(a, b) for a, b in zip(f.model_a, f.model_b)}
    assert pairs == {(folders["gpt2"], folders["llama"]), (folders["gpt2"], "llama-bf16"), (folders["llama"], "llama-bf16")}
    assert list(f.probe) == ["CrowS-Pairs"] * 3 + ["BLiMP"] * 3
    assert list(f.n[:3]) == [24] * 3 and len(set(f.n[3:])) == 1 and 3 * 66 <= f.n.iloc[3] <= 3 * 67
    np.testing.assert_allclose(f.p_adjusted.to_numpy(float), np.array(holm(f.p_value), float))
    assert (f.ci_low <= f.difference).all() and (f.difference <= f.ci_high).all()
    card = json.loads((three[1] / "audit_card.json").read_text())
    for e in card["findings"]:          # today's entries, unchanged
        assert {"metric", "model_a", "model_b", "a", "b", "diff"} <= set(e)
        assert {"value", "ci_low", "ci_high", "p_adjusted", "n"} <= set(e["diff"])
    # the card's p_adjusted is .findings()'s: Holm across every row of the table
    np.testing.assert_allclose([e["diff"]["p_adjusted"] for e in card["findings"]], f.p_adjusted.to_numpy(float))
    overview = audit.overview()
    assert len(overview) == 3 * 2 and set(overview.model) == {folders["gpt2"], folders["llama"], "llama-bf16"}


def test_one_model_at_two_precisions_gets_a_deployment_section(three, folders):
    audit, out = three
    card = json.loads((out / "audit_card.json").read_text())
    dep = card["deployment"]
    assert {d["probe"] for d in dep} == {"CrowS-Pairs", "BLiMP"}
    for d in dep:
        assert {"model_a", "model_b", "probe", "n", "flips", "flip_rate", "p_value"} <= set(d)
        assert d["model_b"] == "llama-bf16" and "same weight file" in d["evidence"]
        assert d["flips"] == round(d["flip_rate"] * d["n"]) and 0 <= d["ci_low"] <= d["flip_rate"] <= d["ci_high"]
    frame = audit.deployment()
    assert len(frame) == 2 and (frame.model_a == folders["llama"]).all()
    # the flips are the items the two readings decide differently, recounted from the items themselves
    blimp = next(d for d in dep if d["probe"] == "BLiMP")
    a = audit.items(folders["llama"], "blimp").set_index("id").correct
    b = audit.items("llama-bf16", "blimp").set_index("id").correct.reindex(a.index)
    assert blimp["flips"] == int((a != b).sum()) and blimp["n"] == len(a)


def test_the_published_files(three):
    from workbench.audit.report import external_assets
    from workbench.provenance_audit.bom import validate
    audit, out = three
    assert {p.name for p in out.iterdir()} >= {"audit_card.json", "report.html", "ml_bom.json", "audit_store.db"}
    bom = json.loads((out / "ml_bom.json").read_text())
    validate(bom)                                           # the CycloneDX 1.6 JSON schema
    assert len(bom["components"]) == 3
    llama = next(c for c in bom["components"] if {"name": "workbench:audit_label", "value": "llama-bf16"}
                 in c["properties"])
    metrics = llama["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    crows = next(m for m in metrics if m["type"] == "crows_pairs/pct_stereotype")
    overview = audit.overview().set_index(["model", "probe"]).loc[("llama-bf16", "CrowS-Pairs")]
    assert float(crows["value"]) == pytest.approx(overview.value, rel=1e-5)
    assert float(crows["confidenceInterval"]["lowerBound"]) == pytest.approx(overview.ci_low, rel=1e-5)
    assert "(n = 24)" in crows["slice"]
    page = (out / "report.html").read_text()
    assert external_assets(page) == [] and "As deployed against as published" in page
    card = json.loads((out / "audit_card.json").read_text())
    assert "llama-bf16" in card["audit"]["resolved"] and card["power"] and card["plan"] is None
    assert [s["section"] for s in card["skipped"]] == []


def test_a_bad_spec_is_a_skip_not_a_lost_audit(folders, shared_data, tmp_path):
    """A probe one model cannot run (StereoSet needs 'unrelated' scoring: fine; SEAT needs an
    encoder): the cell is recorded as skipped with its reason and the rest of the audit stands."""
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    audit = wb.audit({"models": [folders["gpt2"], folders["llama"]], "probes": [{"crows_pairs": 6}, "seat"],
                      "contamination": False}, out=tmp_path, progress=False)
    skipped = audit.card.data["skipped"]
    assert {(s["section"], s["model"]) for s in skipped} == {("SEAT", folders["gpt2"]), ("SEAT", folders["llama"])}
    assert list(audit.findings().probe) == ["CrowS-Pairs"]


def test_a_declared_deployment_pair_gets_its_section_and_says_it_was_declared(folders, shared_data, tmp_path):
    """Detection misses what the files do not show (e.g. a GGUF at Q8_0 and at Q4_K_M of one model):
    a pair declared in the audit file gets the flips, recounted here from the items, and the card
    says it was declared, not detected (two unrelated tiny models: detection finds nothing)."""
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    audit_file = {"models": [folders["gpt2"], folders["llama"]], "probes": [{"crows_pairs": 12}], "contamination": False}
    plain = wb.audit(audit_file, out=tmp_path, progress=False)
    assert plain.card["deployment"] == []                          # not one model by the files
    declared = wb.audit({**audit_file, "deployment": [[folders["llama"], folders["gpt2"]]]}, out=tmp_path,
                        progress=False)
    dep, = declared.card["deployment"]
    assert (dep["model_a"], dep["model_b"]) == (folders["llama"], folders["gpt2"]) and dep["declared"] is True
    assert dep["evidence"].startswith("declared in the audit file") and "not shown by the files" in dep["evidence"]
    a = declared.items(folders["llama"], "crows_pairs").set_index("item_id").stereotyped
    b = declared.items(folders["gpt2"], "crows_pairs").set_index("item_id").stereotyped.reindex(a.index)
    assert dep["flips"] == int((a != b).sum()) and dep["n"] == len(a) == 12
    assert "declared in the audit file" in (tmp_path / "report.html").read_text()


def test_each_model_against_a_reference(folders, shared_data, tmp_path):
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    # two specs of one folder are one model: the door refuses them as duplicates
    with pytest.raises(wb.errors.InvalidInputError, match="duplicate model"):
        wb.audit(models=[folders["gpt2"], folders["llama"], f"{folders['llama']}@hf"], probes=["crows_pairs"],
                 limit=6, out=tmp_path, progress=False)
    audit = wb.audit({"models": [folders["gpt2"], folders["llama"],
                                 {"spec": folders["llama"], "name": "llama-bf16", "options": {"dtype": "bfloat16"}}],
                      "probes": [{"crows_pairs": 6}], "reference": folders["gpt2"], "contamination": False},
                     out=tmp_path / "ref", progress=False)
    f = audit.findings()
    assert set(zip(f.model_a, f.model_b)) == {(folders["llama"], folders["gpt2"]), ("llama-bf16", folders["gpt2"])}


# ---- killed with SIGKILL, started again ---------------------------------------------------------
def _command(folders, out, cache):
    env = {**os.environ, "WORKBENCH_CACHE": str(cache), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "workbench", "audit", "--models", folders["gpt2"], folders["llama"],
            "--probes", "crows_pairs", "--tasks", "blimp", "--limit", "40", "--out", str(out)]
    return argv, env


def _stored(store: Path) -> tuple[int, int]:
    """(items in the store, items the attempts say they scored), pilot excluded (there is none)."""
    if not store.exists():
        return 0, 0
    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        items = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        scored = con.execute("SELECT COALESCE(SUM(n_scored), 0) FROM attempts").fetchone()[0]
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        con.close()
    return items, scored


def _numbers(card: dict) -> list:
    return [(e["name"], e["model_a"], e["model_b"], e["diff"]["value"], e["diff"]["ci_low"], e["diff"]["ci_high"],
             e["diff"]["p_value"], e["n"], e["a"]["value"], e["b"]["value"]) for e in card["findings"]] + \
        [(r["model"], r["probe"], r["value"], r["ci_low"], r["ci_high"], r["n"]) for r in card["overview"]] + \
        [(t["name"], json.dumps(t["table"], sort_keys=True)) for t in card["made"]["training_data"]]


@pytest.mark.slow
def test_killed_mid_run_it_resumes_scoring_only_what_is_missing(folders, shared_data, tmp_path):
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    argv, env = _command(folders, killed, tmp_path / "cache-killed")
    env["WORKBENCH_SHARED_DATA"] = str(shared_data)
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    store = killed / "audit_store.db"
    total = 40 + 40 * 67 - 0          # CrowS-Pairs 40, BLiMP 40 per paradigm (a few paradigms hold fewer usable pairs)
    deadline = time.time() + 600
    at_kill = (0, 0)
    while time.time() < deadline and proc.poll() is None:
        at_kill = _stored(store)
        if at_kill[0] > 500:          # the first model's BLiMP cell well under way
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    os.killpg(proc.pid, signal.SIGKILL)   # the command and its notebook's kernel, at once
    proc.wait()
    proc.stdout.close()
    at_kill = _stored(store)
    assert 0 < at_kill[0] < 2 * total * 0.9, at_kill

    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "(resumed from the store)" in resumed.stdout
    items, scored = _stored(store)
    # every stored item was scored by exactly one committed chunk: nothing scored twice
    assert scored == items and items > at_kill[0]

    argv_clean, env_clean = _command(folders, clean, tmp_path / "cache-clean")
    env_clean["WORKBENCH_SHARED_DATA"] = str(shared_data)
    done = subprocess.run(argv_clean, env=env_clean, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert _stored(clean / "audit_store.db") == (items, scored)
    card_resumed = json.loads((killed / "audit_card.json").read_text())
    card_clean = json.loads((clean / "audit_card.json").read_text())
    assert _numbers(card_resumed) == _numbers(card_clean)
    con = sqlite3.connect(store)
    statuses = [r[0] for r in con.execute("SELECT status FROM attempts")]
    con.close()
    assert "interrupted" in statuses or "running" in statuses or len(statuses) > 2 * 3   # the killed attempt is on record


def test_a_card_re_runs_its_audit_with_the_same_numbers_scoring_nothing(folders, shared_data, tmp_path):
    """--from-card runs the audit the card records: with the real paths (the card shows them
    portable: <tmp>/...), the same numbers, and from the same store nothing is scored again."""
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    out = tmp_path / "first"
    first = wb.audit(models=[folders["gpt2"], folders["llama"]], probes=["crows_pairs"], tasks=["blimp"], limit=3,
                     out=out, progress=False)
    card = json.loads((out / "audit_card.json").read_text())
    assert card["audit"]["file"] is None                        # built from arguments: no file, not flagship.yaml
    assert "<tmp>/" in card["audit"]["resolved"] and folders["gpt2"] not in card["audit"]["resolved"]
    assert folders["gpt2"] in card["audit"]["rerun"]            # the machine's paths, for the re-run
    page = (out / "report.html").read_text()
    assert "No audit file was given" in page and "audit.rerun" in page
    before = _stored(out / "audit_store.db")
    assert before[0] > 0
    env = {**os.environ, "WORKBENCH_SHARED_DATA": str(shared_data), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    again = subprocess.run([sys.executable, "-m", "workbench", "audit", "--from-card", str(out / "audit_card.json"),
                            "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert _stored(out / "audit_store.db") == before            # nothing scored twice
    rerun = json.loads((out / "audit_card.json").read_text())
    assert _numbers(rerun) == _numbers(first.card.to_dict())
    assert rerun["audit"]["file"] is None and rerun["audit"]["rerun"] == card["audit"]["rerun"]


@pytest.mark.slow
def test_the_ray_executor_scores_the_same_cells_into_the_store(folders, shared_data, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'open-model-workbench[ray]'")
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")   # a throw-away local cluster
    audit_file = {"models": [folders["gpt2"], folders["llama"]], "probes": [{"crows_pairs": 10}],
                  "tasks": [{"blimp": 1}], "contamination": False}
    on_ray = wb.audit({**audit_file, "executor": "ray"}, out=tmp_path / "ray", progress=False)
    local = wb.audit(audit_file, out=tmp_path / "local", progress=False)
    assert _numbers(on_ray.card.data) == _numbers(local.card.data)
    con = sqlite3.connect(tmp_path / "ray" / "audit_store.db")
    executors = {r[0] for r in con.execute("SELECT executor FROM attempts")}
    con.close()
    assert executors == {"ray"}       # every cell scored on the cluster; the local pass only read them


@pytest.mark.slow
def test_the_plan_from_a_seeded_pilot(folders, shared_data, tmp_path):
    from workbench.audit import power as pw
    os.environ.setdefault("WORKBENCH_SHARED_DATA", str(shared_data))
    audit_file = {"models": [folders["gpt2"], folders["llama"]], "pilot": 12,
                  "probes": ["crows_pairs", {"winobias": {"metric": "mean_diff"}}], "tasks": ["blimp"]}
    plan = wb.audit(audit_file, detect=30, plan=True, out=tmp_path, progress=False)
    assert plan.card is None and not (tmp_path / "audit_card.json").exists()     # the plan only
    p = plan.plan.set_index("probe")
    assert list(p.index) == ["CrowS-Pairs", "WinoBias", "BLiMP"] and p.loc["CrowS-Pairs", "n_available"] == 1508
    crows = p.loc["CrowS-Pairs"]
    assumed = max(crows.discordance, 0.30)
    assert crows.n_needed == pw.mcnemar_n(assumed, 0.30)                      # exact McNemar, at the larger of the two
    assert crows.n_planned == min(crows.n_needed, 1508) and crows.power_planned >= 0.8
    assert p.loc["WinoBias", "method"].startswith("sign-flip")               # a continuous metric: t-test power
    assert p.loc["BLiMP", "limit"] == -(-p.loc["BLiMP", "n_planned"] // 67)  # items per paradigm for a task
    seconds = [c for c in p.columns if c.startswith("seconds:")]
    assert len(seconds) == 2 and (p[seconds].notna().all().all())
    assert plan.plan.attrs["total_seconds"] > 0
    # a difference below what the data supports: the plan says so
    tiny = wb.audit(audit_file, detect=0.5, plan=True, out=tmp_path, progress=False).plan.set_index("probe")
    assert "cannot be shown with 80% power" in tiny.loc["CrowS-Pairs", "note"]
    assert tiny.loc["CrowS-Pairs", "n_planned"] == 1508
    # the pilot is in the store: planning again scores nothing
    con = sqlite3.connect(tmp_path / "audit_store.db")
    assert con.execute("SELECT SUM(n_scored) FROM attempts").fetchone()[0] == \
        con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    con.close()
    # and the audit then runs the planned sizes
    done = wb.audit(audit_file, detect=30, out=tmp_path, progress=False)
    n = done.findings().set_index("probe").n
    assert n["CrowS-Pairs"] == p.loc["CrowS-Pairs", "n_planned"]
    assert done.card.data["plan"]["detect"] == 30 and all("power_at_detect" in r for r in done.card.data["power"]
                                                           if r["metric"] != "mean_diff")


def test_the_deployment_pair_carries_its_measured_agreement(three, folders):
    """The agreement row of the bfloat16 copy is exactly what wb.conformance says of the same two
    models on the same sentences (the card rests on it, not on a declaration), and bfloat16 is
    not passed off as float32: its next-token KL is above zero, and 'conforms' only within the
    tolerance."""
    from workbench.audit.agreement import neutral_sentences
    from workbench.inspect.conformance_verdict import Tolerance
    audit, out = three
    card = json.loads((out / "audit_card.json").read_text())
    (entry,) = card["agreement"]
    assert entry["model_b"] == "llama-bf16" and entry["model_a"].endswith("/llama")   # (the card may scrub paths)
    ref = wb.load_model(folders["llama"], name=folders["llama"])
    bf16 = wb.load_model(folders["llama"], name="llama-bf16", dtype="bfloat16")
    direct = wb.conformance([ref, bf16], neutral_sentences(), progress=False).summary().iloc[-1]
    assert entry["verdict"] == direct.verdict and entry["n_texts"] == len(neutral_sentences())
    for col in ("next_token_kl", "top1_agreement", "max_abs_logprob_diff"):
        assert entry[col] == pytest.approx(float(direct[col]), rel=1e-9, abs=1e-12)
    assert entry["next_token_kl"] > 0 and entry["layers"], entry
    if entry["verdict"] == "conforms":
        assert entry["next_token_kl"] <= Tolerance().conform_kl, entry
    frame = audit.agreement()
    assert list(frame.verdict) == [entry["verdict"]]
    html = (out / "report.html").read_text()
    assert "Measured agreement on neutral sentences" in html and entry["verdict"] in html

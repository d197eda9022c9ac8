"""Training-data checks as cells of the benchmark grid: stored with their provenance, reloaded
equal from a fresh store object, never recomputed once finished, and listed beside other cells
(a tiny testbed fine-tuned in seconds, so the stored numbers carry real signal)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

import workbench as wb
import dataclasses

from workbench.bench.cells import check_unit_of, run_unit_cell
from workbench.training_data import checks
from workbench.errors import InvalidInputError
from workbench.training_data.testbed import build_testbed, synthetic_mc, synthetic_texts
from workbench.training_data.ts_guessing import render


@pytest.fixture(scope="module")
def testbed():
    from workbench.testing import tiny_model
    texts = synthetic_texts(40, "a", seed=0)
    benchmark = [t for t in synthetic_texts(30, "a", seed=5) if t not in texts][:8]
    return build_testbed(tiny_model("gpt2"), texts, synthetic_texts(20, "b", seed=1), benchmark, epochs=6, lr=1e-2,
                         n_shards=2, seed=0)


def _checks(tb):
    return [{"kind": "membership", "members": tb.members, "nonmembers": tb.nonmembers, "methods": ["loss", "min_k"],
             "n_boot": 200, "cache": False},
            {"kind": "dataset_inference", "suspect": tb.members, "validation": tb.nonmembers, "cache": False},
            {"kind": "contamination", "benchmark": tb.benchmark, "tests": ["exchangeability", "verbatim"],
             "n_shards": tb.n_shards, "n_permutations": 19, "cache": False}]


def _count_calls(monkeypatch):
    """How often each check really runs (the cells call each check's spec's score)."""
    calls = {k: 0 for k in checks.KINDS}

    def counting(kind, real):
        def score(model, items, ctx):
            calls[kind] += 1
            return real(model, items, ctx)
        return score
    for kind in checks.KINDS:
        spec = checks.CHECKS[kind]
        monkeypatch.setitem(checks.CHECKS, kind, dataclasses.replace(spec, score=counting(kind, spec.score)))
    return calls


def run_training_cell(model, label, check, store):
    return run_unit_cell(model, label, check_unit_of(check), store)


def test_checks_are_stored_reloaded_equal_and_not_recomputed(testbed, tmp_path, monkeypatch):
    tb = testbed
    calls = _count_calls(monkeypatch)
    path = tmp_path / "r.db"
    res = wb.run({"tuned": tb.tuned, "base": tb.base}, [], store=path, training=_checks(tb), progress=False)
    assert calls == {"membership": 2, "dataset_inference": 2, "contamination": 2}
    direct = wb.membership(tb.tuned, tb.members, tb.nonmembers, methods=["loss", "min_k"], n_boot=200, cache=False)

    # a fresh store object on the same file: every result back, equal to the one just computed
    fresh = wb.bench.BenchResults.from_store(wb.open_store(path))
    assert calls == {"membership": 2, "dataset_inference": 2, "contamination": 2}
    for model in ("tuned", "base"):
        for task in ("membership", "dataset_inference", "contamination"):
            a, b = res.result(model, task), fresh.result(model, task)
            pd.testing.assert_frame_equal(a.summary(), b.summary())
            assert type(a) is type(b)
    mia = fresh.result("tuned", "membership")
    pd.testing.assert_frame_equal(mia.items, direct.items)               # the per-text scores, bit for bit
    pd.testing.assert_frame_equal(mia.summary(), direct.summary())
    pd.testing.assert_frame_equal(mia.findings(), direct.findings())
    con = fresh.result("tuned", "contamination")
    pd.testing.assert_frame_equal(con.items["verbatim"], res.result("tuned", "contamination").items["verbatim"])
    di = fresh.result("base", "dataset_inference")
    assert di.p_value == res.result("base", "dataset_inference").p_value
    pd.testing.assert_series_equal(di.weights, res.result("base", "dataset_inference").weights)

    # provenance: model state, data hash, options and versions, in the result and the store
    prov = mia.provenance
    assert prov["model"]["state_id"] == tb.tuned.state_id and prov["options"]["methods"] == ["loss", "min_k"]
    assert prov["store"]["data_hash"] and prov["store"]["versions"]["workbench"] == wb.__version__
    runs = wb.open_store(path).runs()
    assert len(runs) == 6 and set(runs.status) == {"complete"}
    assert set(runs.task_kind) == {"membership", "dataset_inference", "contamination"}
    spec = json.loads(wb.open_store(path).run_info(mia.provenance["store"]["run_key"])["task_spec_json"])
    assert spec["arguments"]["methods"] == ["loss", "min_k"] and "sha256" in spec["arguments"]["members"]

    # a rerun reloads every cell: no check runs again, no new attempt
    n_attempts = len(res.store.attempts())
    again = wb.run({"tuned": tb.tuned, "base": tb.base}, [], store=path, training=_checks(tb), progress=False)
    assert calls == {"membership": 2, "dataset_inference": 2, "contamination": 2}
    assert len(again.store.attempts()) == n_attempts
    pd.testing.assert_frame_equal(again.table(), res.table())

    # compared in the grid table: the fine-tuned model's loss attack is the one that separates
    t = fresh.table().set_index(["model", "task", "metric"])
    assert t.loc[("tuned", "membership", "loss/auroc"), "value"] > t.loc[("base", "membership", "loss/auroc"), "value"]
    assert t.loc[("tuned", "contamination", "exchangeability/p_value"), "value"] < 0.1
    assert ("base", "dataset_inference", "dataset_inference/p_value") in t.index
    assert set(fresh.items("tuned", "contamination").test) == {"verbatim"}
    with pytest.raises(InvalidInputError, match="no paired"):
        fresh.compare("tuned", "base", "membership")


def test_changed_data_or_options_is_a_new_cell(testbed, tmp_path, monkeypatch):
    tb = testbed
    calls = _count_calls(monkeypatch)
    check = {"kind": "membership", "members": tb.members, "nonmembers": tb.nonmembers, "methods": ["loss"],
             "n_boot": 200, "cache": False}
    store = wb.open_store(tmp_path / "r.db")
    for c in (check, dict(check, methods=["zlib"]), dict(check, nonmembers=tb.nonmembers[:-1]), check):
        run_training_cell(tb.base, "base", c, store)
    assert calls["membership"] == 3 and len(store.runs()) == 3


def test_files_are_identified_by_content_and_mc_items_work(tmp_path, tiny):
    m = tiny("gpt2")
    items = synthetic_mc(6, seed=3)
    f = tmp_path / "bench.jsonl"
    f.write_text("\n".join(json.dumps({"text": render(it)}) for it in items))
    store = wb.open_store(tmp_path / "r.db")
    check = {"kind": "contamination", "benchmark": pd.read_json(f, lines=True), "tests": ["exchangeability"],
             "n_shards": 3, "n_permutations": 19, "cache": False}
    a = run_training_cell(m, "m", check, store)
    by_file = {"kind": "membership", "name": None, "members": str(f)}
    key_file = checks.training_run_key(m, by_file, 0, "")
    f.write_text(f.read_text() + "\n")
    assert checks.training_run_key(m, by_file, 0, "") != key_file      # same path, new content: new key
    assert checks.canonical([".", str(f)]) == [".", str(f)]     # texts that name files stay texts
    corpus = checks._ident({"kind": "contamination", "name": None, "corpus": [str(f)]})["arguments"]["corpus"]
    assert corpus[0]["sha256"]                                           # a corpus of files: read by content
    mc = run_training_cell(m, "m", {"kind": "contamination", "name": "mc", "benchmark": items,
                                                   "tests": ["ts_guessing"], "cache": False}, store)
    assert mc["task"] == "contamination:mc" and len(mc["result"].items["ts_guessing"]) == 6
    assert a["result"].summary().test.tolist() == ["exchangeability"]


def test_bad_checks_fail_before_any_model_is_loaded(tmp_path):
    with pytest.raises(InvalidInputError, match="'kind' one of"):
        wb.run(["never-loaded"], [], store=tmp_path / "r.db", training=[{"kind": "nonesuch"}])
    with pytest.raises(InvalidInputError, match="unknown argument"):
        wb.run(["never-loaded"], [], store=tmp_path / "r.db", training=[{"kind": "membership", "member": ["a"]}])
    two = [{"kind": "membership", "members": ["a"], "nonmembers": ["b"]}] * 2
    with pytest.raises(InvalidInputError, match="unique"):
        wb.run(["never-loaded"], [], store=tmp_path / "r.db", training=two)
    with pytest.raises(InvalidInputError, match="backend='local'"):
        wb.run(["never-loaded"], [], store=tmp_path / "r.db", training=two[:1], backend="ray")
    with pytest.raises(InvalidInputError, match="by content"):
        checks.training_run_key(wb.testing.tiny_model("gpt2"), {"kind": "contamination", "name": None,
                                                                        "corpus": (t for t in ["a"])}, 0, "")

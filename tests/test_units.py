"""One unit of work: tasks, probes and training-data checks run through one cell type, taken in any
mix by wb.run(units=[...]); a new task kind and a new training check are each one registration
(through the public API only); a store written by the previous release (schema 1) opens, is
migrated in place, and resumes."""
from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench as wb
from workbench.errors import InvalidInputError, WorkbenchError
from workbench.results import Result
from workbench.stats import mean_metric

FIXTURE = Path(__file__).parent / "data" / "store_v1.db"
MEMBERSHIP = {"members": ["the cat sat on the mat", "a dog ran in the park"],
              "nonmembers": ["blue skies over the sea", "green grass on the hill"], "methods": ["loss"],
              "n_boot": 200, "cache": False}


# ---- a store of the previous release -------------------------------------------------------------
def _fixture_model():
    """The model the fixture was written with (tests/data/README.md): a tiny GPT-2 whose
    fingerprint is fixed, so its run keys do not depend on library versions."""
    from workbench.testing import tiny_model
    fixed = {"weights_sha256": "fixture-v1", "architecture": "gpt2", "dtype": "float32", "source": "fixture"}
    return dataclasses.replace(tiny_model("gpt2"), name="fixture", fingerprint=dict(fixed))


def _grid(store, limit=2):
    return wb.run({"fixture": _fixture_model()}, ["capitals"], store=store, limit=limit,
                  probes=["occupations_pronouns"], training=[{"kind": "membership", **MEMBERSHIP}], progress=False,
                  score_kwargs={"cache": False})


def test_a_schema_1_store_is_migrated_in_place_and_resumes(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    with sqlite3.connect(path) as con:  # what the previous release wrote
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
        old_rows = con.execute("SELECT run_key, item_id, record FROM items ORDER BY run_key, item_id").fetchall()
        old_attempts = con.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    store = wb.open_store(path)
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("2",)
        assert "executor" in {r[1] for r in con.execute("PRAGMA table_info(attempts)")}
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "chunks" in tables and "probe_chunks" not in tables
        assert con.execute("SELECT run_key, item_id, record FROM items ORDER BY run_key, item_id").fetchall() == old_rows
    assert set(store.attempts().executor) == {"local"}

    # the same grid again: every cell is found complete, nothing is scored or restarted
    again = _grid(store)
    assert len(store.attempts()) == old_attempts and store.count_items() == len(old_rows)
    table = again.table().set_index(["task", "metric"])
    capitals = again.items("fixture", "capitals")
    assert len(capitals) == 2 and table.loc[("capitals", "acc"), "value"] == capitals.correct.mean()
    probe = again.result("fixture", "probe:occupations_pronouns")
    assert len(probe.items) == 2 and table.loc[("probe:occupations_pronouns", "pct_a_preferred"), "n"] == 2
    assert type(again.result("fixture", "membership")).__name__ == "MembershipResult"
    assert table.loc[("membership", "loss/auroc"), "value"] == 0.75  # what the previous release stored

    # a larger limit: the task cell resumes with its one new item; the old two are not scored again
    bigger = wb.run({"fixture": _fixture_model()}, units=["capitals"], store=store, limit=3, progress=False,
                    score_kwargs={"cache": False})
    last = store.attempts().iloc[-1]
    assert (last.n_already_done, last.n_scored, last.executor) == (2, 1, "local")
    assert bigger.items("fixture", "capitals").id.tolist()[:2] == capitals.id.tolist()
    # and a store read cold rebuilds every cell (the task cell now with its three items)
    cold = wb.bench.BenchResults.from_store(wb.open_store(path))
    assert set(cold.tasks) == {"capitals", "probe:occupations_pronouns", "membership"}
    assert len(cold.items("fixture", "capitals")) == 3


# ---- any mix of units -----------------------------------------------------------------------
def test_units_take_tasks_probes_and_checks_in_one_list(tmp_path, tiny):
    m = tiny("gpt2")
    units = ["capitals", "probe:occupations_pronouns", {"check": "membership", "name": "seen", **MEMBERSHIP}]
    res = wb.run([m], units=units, store=tmp_path / "r.db", limit=3, progress=False)
    assert res.tasks == ["capitals", "probe:occupations_pronouns", "membership:seen"]
    old = wb.run([m], ["capitals"], store=tmp_path / "r.db", limit=3, probes=["occupations_pronouns"],
                 training=[{"kind": "membership", "name": "seen", **MEMBERSHIP}], progress=False)
    assert old.table().equals(res.table())   # the older keywords name the same cells: found, not recomputed
    assert len(res.store.runs()) == 3


def test_a_unit_string_is_read_as_a_task_or_a_probe_and_says_so_when_unknown(tmp_path):
    from workbench.bench.cells import resolve_unit
    assert resolve_unit("blimp:adjunct_island").spec.unit == "task"
    assert resolve_unit("seat=../x").spec.unit == "probe"
    assert resolve_unit("occupations_pronouns").name == "probe:occupations_pronouns"
    with pytest.raises(InvalidInputError, match="needs its data set"):
        resolve_unit("bbq")
    with pytest.raises(WorkbenchError, match="not a task .* nor a probe"):
        resolve_unit("no_such_unit")
    with pytest.raises(InvalidInputError, match="nothing to run"):
        wb.run(["never-loaded"], store=tmp_path / "r.db")
    with pytest.raises(InvalidInputError, match="'kind' one of"):
        wb.run(["never-loaded"], units=[{"check": "nonesuch"}], store=tmp_path / "r.db")


# ---- the recipe: a new task kind, through public registration only --------------------------
def _score_cloze(model, task, items, seed=0, **kw):
    """A cloze item is right when the answer is likelier than the distractor after the stem."""
    ll = wb.loglikelihood(model, [(it["stem"], f" {w}") for it in items for w in (it["answer"], it["distractor"])],
                          **kw)
    lp = ll.logprob.to_numpy().reshape(-1, 2)
    return [{"id": it["id"], "index": it["index"], "group": it["group"], "lp_answer": float(a), "lp_distractor": float(d),
             "correct": int(a > d)} for it, (a, d) in zip(items, lp)]


CLOZE = wb.tasks.TaskKind("cloze", templates=("stem", "answer", "distractor"), texts=("stem", "answer", "distractor"),
                          score=_score_cloze, metrics=lambda: [mean_metric("acc", "correct", kind="binary")],
                          primary=("acc", True))


@pytest.fixture
def cloze_kind():
    kind = wb.register_task_kind(CLOZE)
    yield kind
    wb.tasks.unregister_task_kind("cloze")


def test_a_registered_task_kind_runs_like_a_built_in_one(cloze_kind, tmp_path, tiny):
    rows = [{"s": "The sky is", "a": "blue", "d": "loud"}, {"s": "Water is", "a": "wet", "d": "angry"},
            {"s": "Fire is", "a": "hot", "d": "cold"}, {"s": "Ice is", "a": "cold", "d": "hot"}]
    spec = {"name": "toy_cloze", "kind": "cloze", "data": rows, "stem": "{s}", "answer": "{a}", "distractor": "{d}"}
    task = wb.load_task(spec)
    assert task.all_items[0]["stem"] == "The sky is" and task.hash != wb.load_task({**spec, "answer": "{d}"}).hash
    m = tiny("gpt2")
    res = wb.run([m], units=[spec], store=tmp_path / "r.db", progress=False)
    items = res.items("tiny-gpt2", "toy_cloze")
    direct = wb.loglikelihood(m, [("The sky is", " blue"), ("The sky is", " loud")])
    assert items.lp_answer.iloc[0] == pytest.approx(direct.logprob.iloc[0], abs=1e-5)
    assert items.correct.tolist() == (items.lp_answer > items.lp_distractor).astype(int).tolist()
    assert res.leaderboard().columns.tolist() == ["model", "toy_cloze:acc", "mean_rank"]
    assert wb.run_probe(wb.register_probe(wb.tasks.task_as_probe(spec), replace=True).name, m).summary().n.iloc[0] == 4
    with pytest.raises(InvalidInputError, match="needs .*distractor"):
        wb.load_task({k: v for k, v in spec.items() if k != "distractor"})
    with pytest.raises(InvalidInputError, match="already exists"):
        wb.register_task_kind(CLOZE)


# ---- the recipe: a new training-data check, through public registration only ----------------
@dataclasses.dataclass
class LengthGapResult(Result):
    """Mean per-token loss of members minus non-members (a toy check: the recipe, not a method)."""

    n_texts: int = 0

    def summary(self) -> pd.DataFrame:
        f = self.frame
        gap = f[f.member].loss.mean() - f[~f.member].loss.mean()
        return pd.DataFrame([{"metric": "loss_gap", "value": gap, "ci_low": np.nan, "ci_high": np.nan,
                              "n": self.n_texts}])


def loss_gap(model, members, nonmembers, seed: int = 0, cache: bool = True, progress=None) -> LengthGapResult:
    texts = list(members) + list(nonmembers)
    ppl = wb.perplexity(model, texts, cache=cache)
    frame = pd.DataFrame({"text": texts, "member": [True] * len(members) + [False] * len(nonmembers),
                          "loss": -ppl.logprob / ppl.n_tokens})
    return LengthGapResult(frame=frame, provenance={"check": "loss_gap", "seed": seed}, n_texts=len(texts))


@pytest.fixture
def loss_gap_check():
    from workbench.training_data.checks import unregister_check
    # the recipe's public names (docs/architecture.md): wb.check_unit, wb.register_check
    assert wb.check_unit is wb.training_data.check_unit
    spec = wb.register_check(wb.check_unit("loss_gap", loss_gap, result_type=LengthGapResult))
    yield spec
    unregister_check("loss_gap")


def test_a_registered_check_is_stored_and_rebuilt_like_a_built_in_one(loss_gap_check, tmp_path, tiny):
    m = tiny("gpt2")
    check = {"check": "loss_gap", "members": MEMBERSHIP["members"], "nonmembers": MEMBERSHIP["nonmembers"]}
    res = wb.run([m], units=[check], store=tmp_path / "r.db", progress=False)
    direct = loss_gap(m, MEMBERSHIP["members"], MEMBERSHIP["nonmembers"])
    row = res.table().query("metric == 'loss_gap'").iloc[0]
    assert row.task == "loss_gap" and row.value == pytest.approx(direct.summary().value.iloc[0])
    cold = wb.bench.BenchResults.from_store(wb.open_store(tmp_path / "r.db")).result("tiny-gpt2", "loss_gap")
    assert isinstance(cold, LengthGapResult) and cold.n_texts == 4
    pd.testing.assert_frame_equal(cold.frame, direct.frame, check_dtype=False)
    n_attempts = len(res.store.attempts())
    wb.run([m], units=[check], store=tmp_path / "r.db", progress=False)
    assert len(res.store.attempts()) == n_attempts   # finished: rebuilt, not recomputed
    with pytest.raises(InvalidInputError, match="unknown argument"):
        wb.run([m], units=[{**check, "member": ["x"]}], store=tmp_path / "r.db")

"""The SQLite results store: idempotent writes, the run log, and two processes at once."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]


def _new_run(store, key="k1", n_task=10):
    store.ensure_run(key, model_name="m", model_fingerprint="fp", fingerprint_json="{}", task_name="t",
                     task_hash="h", task_kind="minimal_pairs", task_spec_json="{}", seed=0, tag="",
                     versions_json="{}", n_items_task=n_task)


def _records(ids):
    return [{"id": str(i), "index": i, "group": None, "correct": i % 2} for i in ids]


def test_wal_mode_and_idempotent_chunks(tmp_path):
    store = wb.open_store(tmp_path / "r.db")
    assert store._con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    _new_run(store)
    a1 = store.start_attempt("k1", executor="local", item_limit=None, n_requested=10, n_already_done=0, versions={})
    assert store.add_items("k1", a1, _records(range(6))) == 6
    assert store.add_items("k1", a1, _records(range(4, 8))) == 2  # 4 and 5 are already there: ignored
    log = store.attempts("k1").iloc[0]
    assert (log.n_scored, log.n_inserted) == (10, 8)
    assert store.count_items("k1") == 8 and store.done_ids("k1") == {str(i) for i in range(8)}
    store.finish_attempt(a1, "finished")
    assert store.runs().iloc[0].status == "partial"
    a2 = store.start_attempt("k1", executor="local", item_limit=None, n_requested=10, n_already_done=8, versions={})
    store.add_items("k1", a2, _records(range(8, 10)))
    store.finish_attempt(a2, "finished")
    run = store.runs().iloc[0]
    assert (run.status, run.n_items, run.n_attempts) == ("complete", 10, 2)
    assert store.items("k1").correct.tolist() == [i % 2 for i in range(10)]
    assert store.integrity_check() == "ok"


def test_a_transaction_that_fails_half_way_leaves_nothing(tmp_path):
    store = wb.open_store(tmp_path / "r.db")
    _new_run(store)
    a = store.start_attempt("k1", executor="local", item_limit=None, n_requested=3, n_already_done=0, versions={})

    class Boom(Exception):
        pass
    try:
        with store._write() as con:  # the same transaction add_items uses
            con.execute("INSERT INTO items VALUES ('k1','0',0,NULL,'{}',?,0)", (a,))
            raise Boom
    except Boom:
        pass
    assert store.count_items() == 0
    assert store.add_items("k1", a, _records(range(3))) == 3  # the store is usable afterwards


def test_dead_attempts_are_marked_interrupted(tmp_path):
    store = wb.open_store(tmp_path / "r.db")
    _new_run(store)
    a = store.start_attempt("k1", executor="local", item_limit=None, n_requested=1, n_already_done=0, versions={})
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store._con.execute("UPDATE attempts SET pid=? WHERE attempt_id=?", (int(proc.stdout), a))  # a pid that is gone
    store.start_attempt("k1", executor="local", item_limit=None, n_requested=1, n_already_done=0, versions={})
    assert store.attempts("k1").status.tolist() == ["interrupted", "running"]


WRITER = textwrap.dedent("""
    import sys
    import workbench as wb
    path, key, start, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = wb.open_store(path)
    store.ensure_run(key, model_name=key, model_fingerprint=key, fingerprint_json="{}", task_name="t",
                     task_hash="h", task_kind="minimal_pairs", task_spec_json="{}", seed=0, tag="",
                     versions_json="{}", n_items_task=n)
    a = store.start_attempt(key, executor="local", item_limit=None, n_requested=n, n_already_done=0, versions={})
    for lo in range(start, start + n, 5):  # many small transactions interleave with the other writer
        store.add_items(key, a, [{"id": str(i), "index": i, "group": None, "v": i} for i in range(lo, lo + 5)])
    store.finish_attempt(a, "finished")
""")


def test_two_processes_write_the_same_store_at_once(tmp_path):
    path = tmp_path / "shared.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # two different runs, plus an overlapping third writer on run A's items
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), key, str(start), "400"], env=env,
                              stderr=subprocess.PIPE, text=True)
             for key, start in (("A", 0), ("B", 0), ("A", 200))]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    counts = dict(con.execute("SELECT run_key, COUNT(*) FROM items GROUP BY run_key").fetchall())
    assert counts == {"A": 600, "B": 400}  # A: ids 0..599 once each, whoever wrote them first
    assert con.execute("SELECT COUNT(*) FROM (SELECT run_key, item_id FROM items GROUP BY 1, 2 HAVING COUNT(*) > 1)"
                       ).fetchone()[0] == 0
    inserted = dict(con.execute("SELECT run_key, SUM(n_inserted) FROM attempts GROUP BY run_key").fetchall())
    assert inserted == counts  # the run log agrees with the rows: no write was lost or doubled
    values = [json.loads(r)["v"] for r, in con.execute("SELECT record FROM items WHERE run_key='A' ORDER BY item_index")]
    assert values == list(range(600))


def test_a_cached_store_from_another_schema_is_left_alone_not_refused(isolated_cache):
    """A notebook's store lives in the cache, which outlives a workbench version: CI once failed
    because notebook 08 found a file written in another schema at its fixed path. The cached
    store is named by its schema, so the other version's file is neither opened nor touched."""
    import pytest

    from workbench.bench.store import SCHEMA_VERSION, cached_store, open_store
    from workbench.errors import InvalidInputError
    path = cached_store("08_how_was_it_made")
    assert path.parent.is_dir() and f"schema{SCHEMA_VERSION}" in path.name
    other = path.with_name(f"08_how_was_it_made.schema{SCHEMA_VERSION + 1}.db")
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(InvalidInputError, match="schema"):
        open_store(other)                       # opening the other version's file directly is refused
    before = other.read_bytes()
    with open_store(path) as store:             # the notebook's own file opens, in this schema
        assert store.meta("schema_version") == str(SCHEMA_VERSION)
    assert other.read_bytes() == before
    for bad in ["", "../x", ".hidden", 3]:
        with pytest.raises(InvalidInputError, match="plain file name"):
            cached_store(bad)


def test_start_attempt_backend_is_the_former_name_of_executor(tmp_path):
    import pytest
    store = wb.open_store(tmp_path / "r.db")
    _new_run(store)
    with pytest.warns(DeprecationWarning, match="executor"):
        store.start_attempt("k1", backend="ray", item_limit=None, n_requested=1, n_already_done=0, versions={})
    assert store.attempts("k1").executor.tolist() == ["ray"]
    with pytest.raises(wb.errors.InvalidInputError, match="disagree"):
        store.start_attempt("k1", executor="local", backend="ray", item_limit=None, n_requested=1,
                            n_already_done=0, versions={})

"""Kill a real run with SIGKILL half-way, start it again: the grid finishes without re-scoring
finished items and without a corrupt or duplicated row. And two runs writing one store at once."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]
LIMIT, CHUNK = 3, 8  # 67 paradigms x 3 = 201 BLiMP pairs, committed 8 at a time

RUN = textwrap.dedent("""
    import sys
    import workbench as wb
    from workbench.testing import tiny_model
    arch, store = sys.argv[1], sys.argv[2]
    wb.run({"tiny-" + arch: tiny_model(arch)}, ["blimp"], store=store, limit=%d, chunk_size=%d,
           progress=False, score_kwargs={"cache": False})
""" % (LIMIT, CHUNK))


def _start(arch, store, env):
    return subprocess.Popen([sys.executable, "-c", RUN, arch, str(store)], env=env, stderr=subprocess.PIPE, text=True)


def _count(store):
    try:
        con = sqlite3.connect(store, timeout=30)
        return con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.fixture
def env(shared_data, tmp_path):
    return {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_CACHE": str(tmp_path / "cache"),
            "WORKBENCH_SHARED_DATA": str(shared_data)}


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(env, tmp_path, monkeypatch):
    store = tmp_path / "results.db"
    total = 67 * LIMIT
    proc = _start("gpt2", store, env)
    deadline = time.time() + 300
    while _count(store) < 3 * CHUNK:  # let a few chunks land, then kill without warning
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "the run stored nothing in 5 minutes"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    after_kill = _count(store)
    assert 3 * CHUNK <= after_kill < total and after_kill % CHUNK == 0  # whole chunks only

    monkeypatch.setenv("WORKBENCH_CACHE", env["WORKBENCH_CACHE"])
    monkeypatch.setenv("WORKBENCH_SHARED_DATA", env["WORKBENCH_SHARED_DATA"])
    from workbench.testing import tiny_model
    res = wb.run({"tiny-gpt2": tiny_model("gpt2")}, ["blimp"], store=store, limit=LIMIT, chunk_size=CHUNK,
                 progress=False, score_kwargs={"cache": False})

    s = res.store
    assert s.integrity_check() == "ok"
    assert s.count_items() == total
    con = sqlite3.connect(store)
    assert con.execute("SELECT COUNT(*) FROM (SELECT 1 FROM items GROUP BY run_key, item_id HAVING COUNT(*) > 1)"
                       ).fetchone()[0] == 0
    log = s.attempts()
    assert log.status.tolist() == ["interrupted", "finished"]  # the killed attempt is recognised as dead
    killed, resumed = log.iloc[0], log.iloc[1]
    assert killed.n_inserted == after_kill  # counters were committed with the rows
    assert resumed.n_already_done == after_kill
    assert resumed.n_scored == resumed.n_inserted == total - after_kill  # finished items were not re-scored
    assert res.runs().status.item() == "partial"  # limit < 300 per paradigm
    assert len(res.items("tiny-gpt2", "blimp")) == total


@pytest.mark.slow
def test_two_runs_write_one_store_at_once(env, tmp_path):
    store = tmp_path / "shared.db"
    procs = [_start(arch, store, env) for arch in ("gpt2", "llama")]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errors]
    s = wb.open_store(store)
    assert s.integrity_check() == "ok"
    runs = s.runs()
    assert sorted(runs.model_name) == ["tiny-gpt2", "tiny-llama"]
    assert runs.n_items.tolist() == [67 * LIMIT] * 2
    log = s.attempts()
    assert (log.status == "finished").all() and (log.n_inserted == 67 * LIMIT).all()
    overlap = min(log.finished_at) > max(log.started_at)
    assert overlap, "the two runs did not overlap in time; the test proves nothing"

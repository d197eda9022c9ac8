"""Kill a real run with SIGKILL half-way, start it again: the grid finishes without re-scoring
finished items and without a corrupt or duplicated row. And two runs writing one store at once."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]
LIMIT, CHUNK = 2, 6  # 67 paradigms x 2 = 134 BLiMP pairs, committed 6 at a time
# the concurrent-writers test needs runs that outlast the spread of two processes' start-up:
# 670 pairs each (a quiet machine scores 134 pairs on a tiny model faster than Python starts)
CONCURRENT_LIMIT = 10


def _start(model_dir, store, env, limit=LIMIT):
    """The real command line, on a tiny model saved as a transformers folder."""
    cmd = [sys.executable, "-m", "workbench", "run", "--models", str(model_dir), "--tasks", "blimp", "--limit",
           str(limit), "--store", str(store), "--chunk-size", str(CHUNK), "--no-progress", "--no-score-cache"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _count(store):
    try:
        con = sqlite3.connect(store, timeout=30)
        return con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from workbench.testing import tiny_model
    out = {}
    for arch in ("gpt2", "llama"):  # saved as normal transformers folders, loaded by path
        m, folder = tiny_model(arch), tmp_path_factory.mktemp("models") / f"tiny-{arch}"
        m.hf.save_pretrained(folder)
        m.tokenizer.save_pretrained(folder)
        out[arch] = str(folder)
    return out


@pytest.fixture
def env(shared_data, tmp_path):
    return {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_CACHE": str(tmp_path / "cache"),
            "WORKBENCH_SHARED_DATA": str(shared_data)}


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(saved, env, tmp_path, monkeypatch):
    store = tmp_path / "results.db"
    total = 67 * LIMIT
    proc = _start(saved["gpt2"], store, env)
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
    # start it again: the same grid, this time in-process through the public API
    res = wb.run([saved["gpt2"]], ["blimp"], store=store, limit=LIMIT, chunk_size=CHUNK,
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
    assert len(res.items(saved["gpt2"], "blimp")) == total


@pytest.mark.slow
def test_two_runs_write_one_store_at_once(saved, env, tmp_path):
    store = tmp_path / "shared.db"
    procs = [_start(saved[arch], store, env, CONCURRENT_LIMIT) for arch in ("gpt2", "llama")]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for e in errors]
    s = wb.open_store(store)
    assert s.integrity_check() == "ok"
    runs = s.runs()
    assert sorted(runs.model_name) == [saved["gpt2"], saved["llama"]]
    assert runs.n_items.tolist() == [67 * CONCURRENT_LIMIT] * 2
    log = s.attempts()
    assert (log.status == "finished").all() and (log.n_inserted == 67 * CONCURRENT_LIMIT).all()
    overlap = min(log.finished_at) > max(log.started_at)
    assert overlap, f"the two runs did not overlap in time; the test proves nothing:\n{log[['started_at', 'finished_at']]}"

"""Leases on cells: two processes running one grid on one store compute each cell once; a cell
whose owner is killed (SIGKILL) mid-cell is taken over and resumed item by item; a probe cell
killed mid-way resumes scoring only its missing items and gives the uninterrupted result.

The worker processes run the real grid (``wb.run``) on tiny models; they only count (and, to
die or stall at a known point, kill or pause themselves in) the real scoring function."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]

WORKER = r'''
import dataclasses, json, os, signal, sys, time
from pathlib import Path
import workbench as wb
from workbench.bench import runner
from workbench.tasks import unit as task_units
from workbench.testing import tiny_model

cfg = json.loads(sys.argv[1])
models = {name: tiny_model(name) for name in cfg["models"]}
scored, calls = {}, [0]

def on_call(n_items):  # what the test asked this process to do at its N-th scoring call
    calls[0] += 1
    if calls[0] == cfg.get("kill_at"):
        os.kill(os.getpid(), signal.SIGKILL)
    if calls[0] == cfg.get("stall_at"):
        time.sleep(600)  # a chunk that takes forever: the test kills the process here

real_score_items = task_units.score_items
def score_items(model, task, items, **kw):  # the real scorer; counted per cell
    on_call(len(items))
    key = task_units.task_run_key(model, task, kw.get("seed", 0), cfg.get("tag", ""))
    scored[key] = scored.get(key, 0) + len(items)
    return real_score_items(model, task, items, **kw)
task_units.score_items = score_items

if cfg.get("probe"):
    from workbench.probes import templated
    spec = templated.SPECS[cfg["probe"]]
    def score(model, items, options, skips, real=spec.score):
        on_call(len(items))
        return real(model, items, options, skips)
    templated.SPECS[cfg["probe"]] = dataclasses.replace(spec, score=score)

if cfg.get("barrier"):  # start the grid at the same moment as the other worker
    Path(cfg["barrier"], str(os.getpid())).touch()
    while len(os.listdir(cfg["barrier"])) < 2:
        time.sleep(0.01)
store = wb.open_store(cfg["store"])
store.lease_poll_s = 0.1
res = wb.run(models, cfg["tasks"], store=store, limit=cfg["limit"], chunk_size=cfg["chunk"], progress=False,
             probes=[cfg["probe"]] if cfg.get("probe") else None, score_kwargs={"cache": False})
print(json.dumps({"pid": os.getpid(), "scored": scored, "table": res.table().to_dict(orient="records")}))
'''


def _worker(cfg: dict, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(cfg)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def env(tmp_path, shared_data):
    return {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_CACHE": str(tmp_path / "cache"),
            "WORKBENCH_SHARED_DATA": str(shared_data), "TOKENIZERS_PARALLELISM": "false"}


def _rows(store) -> tuple[int, int]:
    """(rows, rows whose (run_key, item_id) appears more than once)."""
    if not Path(store).exists():
        return 0, 0
    con = sqlite3.connect(store, timeout=30)
    try:
        n = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:  # the worker has not created its tables yet
        con.close()
        return 0, 0
    dup = con.execute("SELECT COALESCE(SUM(c), 0) FROM (SELECT COUNT(*) c FROM items GROUP BY run_key, item_id "
                      "HAVING c > 1)").fetchone()[0]
    con.close()
    return n, dup


def _records(store) -> dict:
    con = sqlite3.connect(store)
    out = {(k, i): r for k, i, r in con.execute("SELECT run_key, item_id, record FROM items")}
    con.close()
    return out


# ---- the lease itself ---------------------------------------------------------------------------
def test_lease_is_exclusive_renewed_and_taken_over_only_from_the_dead(tmp_path):
    store = wb.open_store(tmp_path / "l.db")
    store.heartbeat_s = 0.05
    lease = store.take_lease("k1")
    first = store.lease_holder("k1")
    assert first["pid"] == os.getpid() and store.take_lease("k1") is None  # held: nobody else gets it
    time.sleep(0.3)
    assert store.lease_holder("k1")["expires_at"] > first["expires_at"]  # the heartbeat renews it
    lease.release()
    assert store.lease_holder("k1") is None and store.leases().empty

    now = time.time()
    with store._write() as con:  # leases written by processes elsewhere
        con.execute("INSERT INTO runs (run_key, model_name, model_fingerprint, task_name, task_hash, task_kind, "
                    "status) VALUES ('k2', 'm', 'f', 't', 'h', 'perplexity', 'running')")
        con.execute("INSERT INTO attempts (run_key, pid, host, status) VALUES ('k2', 1, 'other-host', 'running')")
        con.execute("INSERT INTO leases VALUES ('k2', 'other-host:1:aa', 'other-host', 1, 1, ?, ?, ?)",
                    (now - 300, now - 200, now - 80))  # not renewed for 200 s: expired
        con.execute("INSERT INTO leases VALUES ('k3', 'other-host:2:bb', 'other-host', 2, NULL, ?, ?, ?)",
                    (now, now, now + 100))  # live on another host
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
        con.execute("INSERT INTO leases VALUES ('k4', ?, ?, ?, NULL, ?, ?, ?)",
                    (f"x:{dead}:cc", socket.gethostname(), int(dead), now, now, now + 100))  # this host, PID gone
    assert store.lease_holder("k2") is None and store.lease_holder("k4") is None
    assert store.lease_holder("k3")["host"] == "other-host" and store.take_lease("k3") is None
    taken = store.take_lease("k2")
    assert store.attempts("k2").status.tolist() == ["interrupted"]  # the dead owner's attempt
    taken.release()
    store.take_lease("k4").release()

    lost = store.take_lease("k5")  # a frozen owner whose lease was taken over when it looked dead
    with store._write() as con:
        con.execute("UPDATE leases SET owner='someone-else' WHERE run_key='k5'")
    store.ensure_run("k5", model_name="m", model_fingerprint="f", task_name="t", task_hash="h",
                     task_kind="perplexity", n_items_task=1)
    attempt = store.start_attempt("k5", executor="local", item_limit=None, n_requested=1, n_already_done=0,
                                  versions={})
    assert store.add_items("k5", attempt, [{"id": "a"}], lease=lost) == 1  # its chunk is still kept (once)
    with pytest.raises(wb.bench.lease.LeaseLostError, match="taken over"):
        lost.check()
    lost.release()
    assert store.lease_holder("k5")["owner"] == "someone-else"  # releasing never frees another's lease


# ---- two processes, one grid ----------------------------------------------------------------------
GRID = dict(models=["gpt2", "llama"], tasks=["capitals", "arithmetic", "prose"], limit=None, chunk=4)


@pytest.mark.slow
def test_two_processes_running_one_grid_compute_each_cell_once(tmp_path, env, monkeypatch):
    store, barrier = tmp_path / "shared.db", tmp_path / "barrier"
    barrier.mkdir()
    procs = [_worker({**GRID, "store": str(store), "barrier": str(barrier)}, env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outs]
    reports = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    s = wb.open_store(store)
    runs = s.runs().set_index("run_key")
    assert len(runs) == 6 and s.leases().empty
    expected = int(runs.n_items.sum())
    found, duplicated = _rows(store)
    assert (expected, found, duplicated) == ((24 + 24 + 10) * 2, expected, 0)
    # every cell was scored by exactly one of the two processes, each item once
    by_process = [r["scored"] for r in reports]
    for key, n in runs.n_items.items():
        assert sorted(p.get(key, 0) for p in by_process) == [0, n], key
    assert all(by_process), "one process did all the work: the cells were not shared"
    log = s.attempts()
    assert (log.status == "finished").all()
    assert log.groupby("run_key").n_scored.sum().to_dict() == runs.n_items.to_dict()
    assert (log[log.n_scored > 0].groupby("run_key").size() == 1).all()
    # both processes return the whole grid, identical to a single-process run
    tables = [pd.DataFrame(r["table"]) for r in reports]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=True)
    from workbench.testing import tiny_model
    monkeypatch.setenv("WORKBENCH_CACHE", env["WORKBENCH_CACHE"])
    single = wb.run({m: tiny_model(m) for m in GRID["models"]}, GRID["tasks"], store=tmp_path / "single.db",
                    limit=GRID["limit"], chunk_size=GRID["chunk"], progress=False, score_kwargs={"cache": False})
    pd.testing.assert_frame_equal(single.table(), tables[0], check_exact=True, check_dtype=False)
    assert _records(tmp_path / "single.db") == _records(store)


# ---- an owner killed mid-cell -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_owner_is_taken_over_by_the_waiting_process(tmp_path, env, monkeypatch):
    from workbench.bench import runner
    from workbench.testing import tiny_model
    cfg = dict(models=["gpt2"], tasks=["arithmetic"], limit=None, chunk=4, store=str(tmp_path / "k.db"), stall_at=3)
    holder = _worker(cfg, env)  # commits 2 chunks, then stalls in its 3rd, holding the lease
    deadline = time.time() + 120
    while _rows(cfg["store"])[0] < 2 * cfg["chunk"]:
        assert holder.poll() is None, holder.stderr.read()[-3000:]
        assert time.time() < deadline, "the worker stored nothing in 2 minutes"
        time.sleep(0.05)
    store = wb.open_store(cfg["store"])
    store.lease_poll_s = 0.05
    assert store.lease_holder(store.runs().run_key.item())["pid"] == holder.pid

    waiting = threading.Event()
    real_wait = runner._wait_for_pending

    def watched_wait(pending, *args):  # the real waiting loop; we only see that it started
        if len(pending) == 1:
            waiting.set()
        return real_wait(pending, *args)
    monkeypatch.setattr(runner, "_wait_for_pending", watched_wait)
    monkeypatch.setenv("WORKBENCH_CACHE", env["WORKBENCH_CACHE"])
    model, result = tiny_model("gpt2"), {}
    thread = threading.Thread(target=lambda: result.update(res=wb.run(
        {"gpt2": model}, ["arithmetic"], store=store, chunk_size=4, progress=False,
        score_kwargs={"cache": False})))
    thread.start()
    assert waiting.wait(120), "the second run did not wait for the leased cell"
    time.sleep(0.5)
    assert thread.is_alive() and holder.poll() is None  # still waiting on the live owner
    holder.send_signal(signal.SIGKILL)  # kill -9 mid-cell: no clean-up, the lease is left behind
    holder.wait()
    thread.join(120)
    assert not thread.is_alive() and "res" in result

    found, duplicated = _rows(cfg["store"])
    assert (24, found, duplicated) == (24, 24, 0)
    log = store.attempts()
    assert log.status.tolist() == ["interrupted", "finished"]
    assert log.n_inserted.tolist() == [8, 16] and log.n_already_done.tolist()[1] == 8
    assert log.n_scored.iloc[1] == 16  # only the missing items were scored
    assert store.leases().empty and store.integrity_check() == "ok"
    single = wb.run({"gpt2": model}, ["arithmetic"], store=tmp_path / "single.db", chunk_size=4,
                    progress=False, score_kwargs={"cache": False})
    assert _records(tmp_path / "single.db") == _records(cfg["store"])
    assert single.table().equals(result["res"].table())


# ---- a probe cell killed mid-way ------------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_probe_cell_resumes_item_by_item(tmp_path, env, monkeypatch):
    import dataclasses

    from workbench.probes import templated
    from workbench.testing import tiny_model
    probe, chunk = "occupations_pronouns", 8
    cfg = dict(models=["gpt2"], tasks=[], limit=None, chunk=chunk, store=str(tmp_path / "p.db"), probe=probe,
               kill_at=4)
    killed = _worker(cfg, env)  # kill -9 inside its 4th chunk: 3 chunks committed
    _, err = killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL, err[-3000:]
    assert _rows(cfg["store"]) == (3 * chunk, 0)

    monkeypatch.setenv("WORKBENCH_CACHE", env["WORKBENCH_CACHE"])
    model = tiny_model("gpt2")
    direct = wb.run_probe(probe, model)  # one call to the probe, not chunked
    total = len(direct.items)
    spec, seen = templated.SPECS[probe], []

    def counted(model, items, options, skips):  # the probe's own scorer; we count what it is given
        seen.append(len(items))
        return spec.score(model, items, options, skips)
    monkeypatch.setitem(templated.SPECS, probe, dataclasses.replace(spec, score=counted))
    # every run scores without the score cache, as the killed worker did (probes honour score_kwargs), so
    # each chunk is computed from the same batch in all three: equal to the bit
    resumed = wb.run({"gpt2": model}, [], store=cfg["store"], chunk_size=chunk, probes=[probe], progress=False,
                     score_kwargs={"cache": False})
    assert sum(seen) == total - 3 * chunk and max(seen) == chunk  # only the missing items, in chunks
    found, duplicated = _rows(cfg["store"])
    assert (total, found, duplicated) == (100, 100, 0)
    log = resumed.store.attempts()
    assert log.status.tolist() == ["interrupted", "finished"]
    assert log.n_already_done.iloc[1] == 3 * chunk and log.n_scored.iloc[1] == total - 3 * chunk

    seen.clear()
    whole = wb.run({"gpt2": model}, [], store=tmp_path / "whole.db", chunk_size=chunk, probes=[probe],
                   progress=False, score_kwargs={"cache": False})
    assert sum(seen) == total
    key = f"probe:{probe}"
    a, b = resumed.cells[0]["result"], whole.cells[0]["result"]
    assert a.summary().equals(b.summary()) and resumed.table().equals(whole.table())
    assert a.items.equals(b.items)
    assert np.allclose(resumed.items("gpt2", key)["diff"], direct.items["diff"])
    assert np.allclose(a.summary().value, direct.summary().value, equal_nan=True)


def test_probe_rows_skipped_by_the_scorer_are_kept_across_a_resume(tmp_path, isolated_cache, monkeypatch):
    """CrowS-Pairs on a masked LM skips (at scoring) pairs that share no token: a resumed cell
    keeps the skips of the chunks scored before the interruption, in order."""
    import dataclasses

    from workbench.probes import crows_pairs
    from workbench.testing import tiny_model
    shared = [("The doctor said that she would arrive soon.", "The nurse said that she would arrive soon."),
              ("A cat sat on the mat.", "A dog sat on the mat."),
              ("My friend is a teacher in a large city.", "My friend is an engineer in a large city.")]
    apart = [("Rich.", "Poor?"), ("Poor.", "Rich?")]  # no token in common: skipped by the scorer
    rows = [shared[0], apart[0], shared[1], shared[2], apart[1], shared[0][::-1], shared[1][::-1]]
    data = tmp_path / "crows_pairs.csv"
    pd.DataFrame([{"sent_more": a, "sent_less": b, "stereo_antistereo": "stereo", "bias_type": "gender"}
                  for a, b in rows]).to_csv(data)
    model, probe = tiny_model("bert"), {"name": "crows_pairs", "data": str(data)}
    direct = wb.run_probe("crows_pairs", model, data=data)
    assert list(direct.skipped.row) == ["1", "4"] and (direct.skipped.stage == "score").all()

    spec, calls = crows_pairs.SPEC, []

    def interrupted(model, items, options, skips):  # the real scorer, stopped (Ctrl-C) in its 3rd chunk
        calls.append(len(items))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return spec.score(model, items, options, skips)
    monkeypatch.setattr(crows_pairs, "SPEC", dataclasses.replace(spec, score=interrupted))
    store = tmp_path / "c.db"
    with pytest.raises(KeyboardInterrupt):
        wb.run({"bert": model}, [], store=store, probes=[probe], chunk_size=2, progress=False)
    assert _rows(store) == (3, 0)  # chunks 1 and 2: 4 pairs, one skipped
    calls.clear()
    resumed = wb.run({"bert": model}, [], store=store, probes=[probe], chunk_size=2, progress=False)
    assert calls == [2, 1] and _rows(store) == (5, 0)  # the last 3 pairs only
    assert wb.open_store(store).attempts().status.tolist() == ["interrupted", "finished"]
    res = resumed.cells[0]["result"]
    pd.testing.assert_frame_equal(res.skipped, direct.skipped)
    assert res.items.item_id.tolist() == direct.items.item_id.tolist()
    assert np.allclose(res.items.score_more, direct.items.score_more)
    s, d = res.summary(), direct.summary()
    assert s[["metric", "category", "n"]].equals(d[["metric", "category", "n"]])
    assert np.allclose(s.value, d.value, equal_nan=True)
    assert s.query("metric == 'n_skipped'").value.item() == 2

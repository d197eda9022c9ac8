"""The persistent result cache: safe under two writing processes, and a re-run computes nothing."""
import multiprocessing as mp
import os
import sqlite3

import numpy as np
import pytest

import workbench as wb
from workbench.scoring.cache import ScoreCache

WORDS = "the doctor said that she would arrive soon because patient was waiting nurse told him".split()
REQS = [(" ".join(WORDS[:1 + i % 7]), f" {WORDS[i % 15]} {WORDS[i // 15]}") for i in range(60)]  # all distinct


def _write_and_score(cache_dir, worker, barrier, queue):
    """One process: many small transactions on the shared file, then real scoring through it."""
    import os
    os.environ["WORKBENCH_CACHE"] = cache_dir
    from workbench.testing import tiny_model
    model = tiny_model("gpt2")
    store = ScoreCache()
    barrier.wait()  # both processes hammer the file at the same moment
    for i in range(150):
        store.put_many({f"w{worker}-{i}": {"worker": worker, "i": i}, f"shared-{i}": {"i": i}})
    mine = REQS[worker::2] + REQS[:20]  # the first 20 requests are scored by both processes
    df = wb.loglikelihood(model, mine)
    queue.put((worker, [list(r) for r in mine], df.logprob.tolist()))


def test_two_processes_write_the_same_cache_at_once(tmp_path):
    cache_dir = str(tmp_path / "cache")
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_write_and_score, args=(cache_dir, w, barrier, queue)) for w in (0, 1)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    conn = sqlite3.connect(tmp_path / "cache" / "scores.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    store = ScoreCache(path=tmp_path / "cache" / "scores.sqlite")
    keys = [f"w{w}-{i}" for w in (0, 1) for i in range(150)] + [f"shared-{i}" for i in range(150)]
    found = store.get_many(keys)
    assert len(found) == len(keys)
    assert found["w1-149"] == {"worker": 1, "i": 149} and found["shared-7"] == {"i": 7}

    # every score either process computed is read back from the file, equal to a fresh computation
    from workbench.testing import tiny_model
    model = tiny_model("gpt2")
    fresh = wb.loglikelihood(model, REQS, cache=False).set_index(["context", "continuation"]).logprob
    import os
    os.environ["WORKBENCH_CACHE"] = cache_dir
    try:
        cached = wb.loglikelihood(model, REQS).set_index(["context", "continuation"]).logprob
    finally:
        del os.environ["WORKBENCH_CACHE"]
    np.testing.assert_allclose(cached.values, fresh.values, atol=1e-6)
    for _, reqs, logprobs in results:
        np.testing.assert_allclose(logprobs, fresh.loc[[tuple(r) for r in reqs]].values, atol=1e-6)


def count_forward_calls(model):
    calls = []
    handle = model.hf.register_forward_pre_hook(lambda *a: calls.append(1))
    base = model.hf.base_model.register_forward_pre_hook(lambda *a: calls.append(1))
    return calls, lambda: (handle.remove(), base.remove())


@pytest.mark.parametrize("kind", ["loglikelihood", "perplexity"])
def test_second_identical_call_computes_nothing(tiny, isolated_cache, kind):
    m = tiny("llama")
    call = (lambda reqs: wb.loglikelihood(m, reqs)) if kind == "loglikelihood" else \
        (lambda reqs: wb.perplexity(m, [c + x for c, x in reqs]))
    reqs = REQS[:12]
    calls, remove = count_forward_calls(m)
    try:
        first = call(reqs)
        n_first = len(calls)
        second = call(reqs)
        n_second = len(calls) - n_first
        call(reqs[:11] + [("A wholly new", " request")])  # one miss: computed alone
        n_third = len(calls) - n_first
    finally:
        remove()
    assert n_first > 0 and n_second == 0 and n_third == 1
    assert first.equals(second)


def test_cache_off_computes_every_time(tiny, isolated_cache):
    m = tiny("gpt2")
    calls, remove = count_forward_calls(m)
    try:
        wb.loglikelihood(m, REQS[:3], cache=False)
        n = len(calls)
        wb.loglikelihood(m, REQS[:3], cache=False)
    finally:
        remove()
    assert n > 0 and len(calls) == 2 * n
    assert not (isolated_cache / "scores.sqlite").exists()


def _open_new_cache_at_once(path, barrier, queue):
    from workbench.scoring.cache import ScoreCache
    barrier.wait()  # every process opens (and switches to WAL) the same new file at the same moment
    try:
        ScoreCache(path=path).put_many({f"k{os.getpid()}": 1})
        queue.put("ok")
    except Exception as err:  # reported, so the parent's assertion shows it
        queue.put(repr(err))


def test_many_processes_opening_a_new_cache_file_at_once(tmp_path):
    """Switching a new file to WAL mode races: SQLite answers 'database is locked' at once,
    without waiting on the busy timeout (8 processes hit it in most rounds before the fix).
    The cache retries instead of failing."""
    ctx = mp.get_context("fork")
    for round_ in range(8):
        path = tmp_path / f"scores-{round_}.sqlite"
        barrier, queue = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open_new_cache_at_once, args=(path, barrier, queue)) for _ in range(8)]
        for p in procs:
            p.start()
        outcomes = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert outcomes == ["ok"] * 8, f"round {round_}: {outcomes}"
        assert len(ScoreCache(path=path).get_many([f"k{p.pid}" for p in procs])) == 8

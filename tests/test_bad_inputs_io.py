"""Bad files, stores and caches: a table of bad inputs (error class + the useful part of the
message), the score cache's fallback (read-only, cannot be created, not SQLite, disk full: the
scores come back, one warning, numbers equal to a cached run), a kill -9 during a cache write,
skipped rows (null, empty, equal pairs), and stale GGUF temporary folders.

Read-only folders: we often run as root, and root ignores ``chmod``; the fixture tries ``chmod``
and then ``chattr +i`` (immutable folder, refused even to root) and checks that writing really
fails, else skips. Disk full: a small tmpfs where mounting works, and always SQLite's
``PRAGMA max_page_count`` (SQLITE_FULL, "database or disk is full", the error a full disk gives).
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.errors import CacheError, CacheWarning, DataError, InvalidInputError, StoreError, WorkbenchError
from workbench.scoring import cache as score_cache

ROOT = Path(__file__).resolve().parents[1]
WORDS = "the doctor said that she would arrive soon because patient was waiting nurse told him".split()
REQS = [(" ".join(WORDS[:1 + i % 7]), f" {WORDS[i % 15]} {WORDS[i // 15 % 15]}") for i in range(150)]  # distinct
CROWS_HEADER = ",sent_more,sent_less,stereo_antistereo,bias_type\n"


# ---- helpers ---------------------------------------------------------------------------------
def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to, not even root (chmod, then chattr +i), else skip."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        immutable = True
    if _writable(folder):
        folder.chmod(0o755)
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


@pytest.fixture
def fresh_warnings():
    """The cache warns once per process and cause: forget earlier warnings for this test."""
    score_cache._warned.clear()
    yield
    score_cache._warned.clear()
    score_cache.close_connections()


def _cache_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CacheWarning)]


def _table_rows(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def _blimp_jsonl(path: Path, n: int = 5) -> Path:
    path.write_text("\n".join(json.dumps({"sentence_good": f"The cat sat {i}.", "sentence_bad": f"The cat sit {i}.",
                                          "UID": "x", "pairID": str(i)}) for i in range(n)) + "\n")
    return path


# ---- the table of bad inputs -----------------------------------------------------------------
def _store_is_dir(tmp):
    wb.open_store(tmp)


def _store_not_sqlite(tmp):
    (tmp / "notes.db").write_text("these are my notes, not a database\n" * 20)
    wb.open_store(tmp / "notes.db")


def _store_under_file(tmp):
    (tmp / "afile").write_text("x")
    wb.open_store(tmp / "afile" / "results.db")


def _crows_latin1(tmp):
    path = _table_rows(tmp / "crows.csv", CROWS_HEADER + "0,Café people are lazy.,Tea people are lazy.,stereo,race-color\n",
                       "latin-1")
    wb.run_probe("crows_pairs", _tiny(), data=path)


def _crows_given_blimp(tmp):
    wb.run_probe("crows_pairs", _tiny(), data=_blimp_jsonl(tmp / "blimp.jsonl"))


def _crows_ragged_csv(tmp):  # pandas' ParserError before
    path = _table_rows(tmp / "crows.csv", "a,b\n1,2\n3,4,5,6\n")
    wb.run_probe("crows_pairs", _tiny(), data=path)


def _bbq_given_blimp(tmp):
    wb.run_probe("bbq", _tiny(), data=_blimp_jsonl(tmp / "blimp.jsonl"))


def _stereoset_given_list_of_other_rows(tmp):
    (tmp / "ss.json").write_text(json.dumps([{"sentence_good": "a", "sentence_bad": "b"}]))
    wb.run_probe("stereoset", _tiny(), data=tmp / "ss.json")


def _seat_wrong_keys(tmp):
    (tmp / "weat1.jsonl").write_text(json.dumps({"X": {"examples": ["a", "b"]}}))
    wb.run_probe("seat", _tiny(), data=tmp / "weat1.jsonl")


def _winogender_wrong_columns(tmp):
    (tmp / "all_sentences.tsv").write_text("id\ttext\n1\tThe nurse said.\n")
    (tmp / "occupations-stats.tsv").write_text("occupation\tbls_pct_female\tbergsma_pct_female\nnurse\t90\t80\n")
    wb.run_probe("winogender", _tiny(), data=tmp)


def _probe_unknown_encoding(tmp):
    path = _table_rows(tmp / "crows.csv", CROWS_HEADER + "0,He is a nurse.,She is a nurse.,stereo,gender\n")
    wb.run_probe("crows_pairs", _tiny(), data=path, encoding="klingon")


def _task_latin1(tmp):
    path = _table_rows(tmp / "pairs.jsonl", json.dumps({"good": "Café is open.", "bad": "Café are open."},
                                                       ensure_ascii=False) + "\n", "latin-1")
    wb.load_task(path).all_items


def _task_wrong_schema(tmp):
    wb.load_task({"name": "t", "kind": "minimal_pairs", "good": "{good}", "bad": "{bad}",
                  "data": str(_blimp_jsonl(tmp / "blimp.jsonl"))}).all_items


def _template(field):
    def call(tmp):
        wb.load_task({"name": "t", "kind": "perplexity", "text": field, "data": [{"text": "hello"}]}).all_items
    return call


def _cache_under_file_gguf(tmp):
    from workbench.models.gguf_cache import dequantised_folder
    (tmp / "afile").write_text("x")
    os.environ["WORKBENCH_CACHE"] = str(tmp / "afile" / "cache")
    try:
        dequantised_folder([tmp / "model.gguf"], "0" * 64)
    finally:
        del os.environ["WORKBENCH_CACHE"]


def _tiny():
    from workbench.testing import tiny_model
    return tiny_model("gpt2")


TABLE = [
    # (case, call, error class, fragments of the message)
    ("store is a folder", _store_is_dir, StoreError, ["is a folder", "results.db"]),
    ("store is not SQLite", _store_not_sqlite, StoreError, ["notes.db", "not a SQLite file", "To fix"]),
    ("store under a regular file", _store_under_file, StoreError, ["not a folder", "afile"]),
    ("latin-1 CSV for a probe", _crows_latin1, DataError, ["crows.csv", "not valid utf-8", "line 2", "encoding='latin-1'"]),
    ("BLiMP jsonl given to crows_pairs", _crows_given_blimp, DataError,
     ["probe 'crows_pairs'", "missing column(s) ['bias_type', 'sent_less', 'sent_more', 'stereo_antistereo']",
      "unexpected column(s) ['UID', 'pairID', 'sentence_bad', 'sentence_good']"]),
    ("ragged CSV (pandas ParserError before)", _crows_ragged_csv, DataError, ["crows.csv", "probe 'crows_pairs'"]),
    ("BLiMP jsonl given to bbq", _bbq_given_blimp, DataError, ["probe 'bbq'", "missing column(s)", "'sentence_good'"]),
    ("other rows given to stereoset", _stereoset_given_list_of_other_rows, DataError,
     ["probe 'stereoset'", "missing column(s) ['bias_type', 'data']"]),
    ("SEAT file with other keys", _seat_wrong_keys, DataError, ["probe 'seat'", "missing column(s) ['attr1'", "['X']"]),
    ("winogender TSV with other columns", _winogender_wrong_columns, DataError,
     ["probe 'winogender'", "missing column(s) ['sentence', 'sentid']", "unexpected column(s) ['id', 'text']"]),
    ("unknown encoding name", _probe_unknown_encoding, InvalidInputError, ["unknown encoding 'klingon'", "latin-1"]),
    ("latin-1 jsonl for a task", _task_latin1, DataError, ["pairs.jsonl", "not valid utf-8", "encoding="]),
    ("task data of another schema", _task_wrong_schema, DataError,
     ["task 't' (minimal_pairs) needs field(s) ['good', 'bad']", "unexpected column(s) ['UID', 'pairID'"]),
    ("template reaches an attribute", _template("{text.__class__.__mro__}"), DataError, ["not allowed", "__mro__"]),
    ("template indexes a field", _template("{text[0]}"), DataError, ["{text[0]}", "not allowed"]),
    ("template converts a field", _template("{text!r}"), DataError, ["{text!r}", "not allowed"]),
    ("template with a positional field", _template("say {}"), DataError, ["not allowed", "plain field names"]),
    ("template with an unbalanced brace", _template("say {text"), DataError, ["not a valid format string"]),
    ("GGUF cache folder under a file", _cache_under_file_gguf, CacheError, ["not a folder", "WORKBENCH_CACHE="]),
]


@pytest.mark.parametrize("case, call, error, fragments", TABLE, ids=[row[0] for row in TABLE])
def test_bad_input_gives_a_clear_error(case, call, error, fragments, tmp_path, isolated_cache):
    with pytest.raises(error) as info:
        call(tmp_path)
    assert isinstance(info.value, WorkbenchError)
    for fragment in fragments:
        assert fragment in str(info.value), f"{case}: {fragment!r} not in {str(info.value)!r}"


def test_store_in_a_read_only_folder(read_only_dir):
    with pytest.raises(StoreError, match="read-only") as info:
        wb.open_store(read_only_dir / "results.db")
    assert str(read_only_dir / "results.db") in str(info.value)


def test_store_full_disk_during_a_chunk_keeps_the_committed_rows(tmp_path):
    """SQLITE_FULL mid-chunk: a StoreError naming "disk is full" (not "cannot rollback"), the
    chunk stored all-or-nothing, the store usable afterwards."""
    store = wb.open_store(tmp_path / "r.db")
    store.ensure_run("k", model_name="m", model_fingerprint="fp", task_name="t", task_hash="h", task_kind="x",
                     n_items_task=10_000)
    attempt = store.start_attempt("k", executor="local", item_limit=None, n_requested=1, n_already_done=0, versions={})
    assert store.add_items("k", attempt, [{"id": str(i), "v": i} for i in range(10)]) == 10
    pages = store._con.execute("PRAGMA page_count").fetchone()[0]
    store._con.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="disk is full") as info:
        store.add_items("k", attempt, [{"id": f"big{i}", "text": "x" * 200} for i in range(2000)])
    assert "rollback" not in str(info.value)
    assert not store._con.in_transaction
    assert store.count_items("k") == 10 and store.integrity_check() == "ok"


@pytest.fixture(params=[0, 16], ids=["no byte free", "16 KiB free"])
def full_disk(tmp_path, request):
    """A 64 KiB tmpfs filled but for ``request.param`` KiB, else skip (mounting needs root). With a
    few KiB left, SQLite fails with a plain "disk I/O error" after writing part of the store."""
    folder = tmp_path / "full"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with open(folder / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 1024)
            except OSError:
                pass
        with open(folder / "filler", "r+b") as f:
            f.truncate((folder / "filler").stat().st_size - request.param * 1024)
        yield folder
    finally:  # lazily if a file there is still open (a store that failed to close its connection)
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_store_that_cannot_be_created_on_a_full_disk_leaves_nothing(full_disk):
    """A StoreError that says the disk is full, and no results.db (it was left with 0 bytes, or
    4 KiB and its -wal and -shm files), nor a folder made for it, left behind."""
    before = sorted(p.name for p in full_disk.iterdir())
    for path in (full_disk / "results.db", full_disk / "new" / "folder" / "results.db"):
        with pytest.raises(StoreError, match="disk is full"):
            wb.open_store(path)
        assert sorted(p.name for p in full_disk.iterdir()) == before


def test_a_store_whose_creation_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    """The same where no tmpfs can be mounted: SQLite makes the (empty) file, then its first
    write fails as on a full disk. An existing store is never removed by a failed open."""
    import workbench.bench.store as store_module
    real = store_module.connect_wal

    def full(path, *args, **kwargs):
        Path(path).touch()  # what sqlite3.connect leaves when nothing more can be written
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store_module, "connect_wal", full)
    with pytest.raises(StoreError, match="disk is full"):
        wb.open_store(tmp_path / "made" / "for" / "it" / "results.db")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(store_module, "connect_wal", real)
    wb.open_store(tmp_path / "kept.db").close()
    monkeypatch.setattr(store_module, "connect_wal", full)
    with pytest.raises(StoreError, match="disk is full"):
        wb.open_store(tmp_path / "kept.db")
    assert (tmp_path / "kept.db").stat().st_size > 0
    monkeypatch.setattr(store_module, "connect_wal", real)
    assert wb.open_store(tmp_path / "kept.db").count_items() == 0


def test_cache_dir_does_not_raise_when_it_cannot_create_the_folder(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "afile" / "cache"))
    from workbench.paths import cache_dir
    assert cache_dir() == tmp_path / "afile" / "cache"


def test_probe_data_in_latin1_reads_with_encoding(tmp_path, tiny):
    path = _table_rows(tmp_path / "crows.csv", CROWS_HEADER + "0,Café people are lazy.,Tea people are lazy.,stereo,"
                       "race-color\n1,He is a nurse.,She is a nurse.,stereo,gender\n", "latin-1")
    res = wb.run_probe("crows_pairs", tiny("gpt2"), data=path, encoding="latin-1", n_boot=20, cache=False)
    assert res.items.sent_more.tolist()[0] == "Café people are lazy."
    assert res.provenance["options"]["encoding"] == "latin-1"


# ---- rows that cannot be scored fairly are counted skips, never text -------------------------
def test_task_null_empty_and_equal_rows_are_skipped_with_reasons(tmp_path, tiny, isolated_cache):
    rows = [{"good": "The cat sat.", "bad": "The cat sit."}, {"good": None, "bad": "The dog ran."},
            {"good": "  ", "bad": "The dog ran."}, {"good": "The dog ran.", "bad": "The dog ran."},
            {"bad": "The cat sit."}, {"good": "A cat sat.", "bad": "A cat sit."}]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = wb.load_task(path)
    with pytest.warns(UserWarning, match="4 of 6 rows skipped"):
        items = task.select()
    assert [it["index"] for it in items] == [0, 5]
    assert all("None" not in it["good"] + it["bad"] for it in items)
    assert items == task.all_items
    reasons = {s["row"]: s["reason"] for s in task.skipped}
    assert reasons == {1: "null value in field(s) ['good']", 2: "empty good text",
                       3: "good and bad sentences are identical: nothing to compare",
                       4: "missing field(s) ['good']"}
    res = wb.run([tiny("gpt2")], [task], store=tmp_path / "r.db", progress=False)
    assert int(res.table().query("metric == 'acc'").n.iloc[0]) == 2  # the skipped rows are not counted


def test_probe_null_and_equal_pairs_are_skips_not_scores(tmp_path, tiny):
    path = _table_rows(tmp_path / "crows.csv", CROWS_HEADER + "0,He is a nurse.,She is a nurse.,stereo,gender\n"
                       "1,He is a cook.,He is a cook.,stereo,gender\n2,,She is a cook.,stereo,gender\n")
    res = wb.run_probe("crows_pairs", tiny("gpt2"), data=path, n_boot=20, cache=False)
    assert res.items.item_id.tolist() == ["0"]
    assert sorted(res.skipped.reason) == ["identical sentences: nothing to compare",
                                          "missing or empty sentence (sent_more/sent_less)"]


# ---- the score cache falls back, scores are never lost ----------------------------------------
def _break_cache(kind: str, tmp_path: Path, request) -> Path:
    """Point WORKBENCH_CACHE at a cache broken in the way ``kind`` says; returns the folder."""
    folder = tmp_path / "cache"
    if kind == "cannot create":
        (tmp_path / "afile").write_text("x")
        folder = tmp_path / "afile" / "cache"
    elif kind == "not SQLite":
        folder.mkdir()
        (folder / "scores.sqlite").write_text("not a database\n" * 100)
    elif kind == "read-only":
        folder = request.getfixturevalue("read_only_dir")
    elif kind == "disk full (max_page_count)":
        folder.mkdir()
        path = folder / "scores.sqlite"
        score_cache.ScoreCache(path=path).put_many({"seed": 1})
        conn = score_cache._connect(path)  # the connection scoring will use: it may not grow
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    elif kind == "disk full (tmpfs)":
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(folder)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        request.addfinalizer(lambda: (score_cache.close_connections(),
                                      subprocess.run(["umount", str(folder)], check=True)))
        score_cache.ScoreCache(path=folder / "scores.sqlite").put_many({"seed": 1})
        with open(folder / "filler", "wb", buffering=0) as f:  # fill the rest of the disk
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
    os.environ["WORKBENCH_CACHE"] = str(folder)
    return folder


CACHE_FAULTS = [("cannot create", "not a folder"), ("not SQLite", "not a SQLite file"), ("read-only", "read-only"),
                ("disk full (max_page_count)", "disk is full"), ("disk full (tmpfs)", "disk is full")]


@pytest.mark.parametrize("kind, cause", CACHE_FAULTS, ids=[k for k, _ in CACHE_FAULTS])
def test_a_broken_cache_never_loses_scores(kind, cause, tiny, tmp_path, monkeypatch, request, fresh_warnings):
    m = tiny("gpt2")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "good"))  # monkeypatch restores it afterwards
    cached_run = wb.loglikelihood(m, REQS)  # the reference: through a working cache
    _break_cache(kind, tmp_path, request)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = wb.loglikelihood(m, REQS)
        again = wb.loglikelihood(m, REQS[:40])
        ppl = wb.perplexity(m, ["The doctor said that she would arrive soon."])
    messages = _cache_warnings(record)
    assert len(messages) == 1, messages  # one warning per process and cause
    assert cause in messages[0] and "WORKBENCH_CACHE=" in messages[0] and "rollback" not in messages[0]
    assert len(first) == len(REQS) == 150 and first.logprob.notna().all()
    np.testing.assert_array_equal(first.logprob.to_numpy(), cached_run.logprob.to_numpy())  # same batches
    # a smaller call batches differently: equal up to float32 noise, as in test_scoring_cache
    np.testing.assert_allclose(again.logprob.to_numpy(), cached_run.logprob.to_numpy()[:40], atol=1e-6)
    assert len(ppl) == 1


def test_after_a_full_disk_the_cache_connection_is_usable(tmp_path, fresh_warnings):
    path = tmp_path / "scores.sqlite"
    store = score_cache.ScoreCache(path=path)
    store.put_many({"a": 1})
    conn = score_cache._connect(path)
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.warns(CacheWarning, match="disk is full"):
        store.put_many({f"k{i}": "x" * 500 for i in range(500)})
    assert not conn.in_transaction  # the failed transaction was rolled back, nothing left open
    conn.execute("PRAGMA max_page_count = 1000000")
    store.put_many({"b": 2})
    assert store.get_many(["a", "b", "k1"]) == {"a": 1, "b": 2}


_WRITER = """
import sys
from workbench.scoring.cache import ScoreCache
store = ScoreCache(path=sys.argv[1])
for batch in range(100000):
    store.put_many({f"b{batch}-{i}": {"batch": batch, "i": i} for i in range(200)})
    print(batch, flush=True)
"""


def test_kill_9_during_cache_writes_keeps_every_committed_entry(tmp_path):
    path = tmp_path / "scores.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    reported = -1
    deadline = time.time() + 120
    while reported < 30 and time.time() < deadline:
        reported = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # in the middle of later batches
    proc.wait()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n_rows, n_keys = con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM scores").fetchone()
    con.close()
    expected = (reported + 1) * 200  # every batch reported as committed
    assert n_rows == n_keys and n_rows % 200 == 0 and n_rows >= expected  # whole batches, no duplicates
    keys = [f"b{b}-{i}" for b in range(reported + 1) for i in range(200)]
    found = score_cache.ScoreCache(path=path).get_many(keys)
    assert len(found) == expected and found["b30-199"] == {"batch": 30, "i": 199}
    print(f"kill -9 during cache writes: expected >= {expected}, found {n_rows}, duplicated {n_rows - n_keys}")


# ---- stale temporary folders of GGUF conversions -----------------------------------------------
_HOLDER = """
import fcntl, sys, time
f = open(sys.argv[1], "w")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def test_stale_gguf_temporary_folders_are_removed_live_ones_kept(tmp_path):
    from workbench.models.gguf_cache import LOCK, STALE_AFTER_S, remove_stale_tmp
    models = tmp_path / "models"
    dead, live, young, old = (models / f".tmp-{n}" for n in ("dead", "live", "young", "old"))
    for folder in (dead, live, young, old):
        (folder / "folder").mkdir(parents=True)
        (folder / "folder" / "model.safetensors").write_bytes(b"\0" * 1000)
    (dead / LOCK).write_text('{"pid": 999999}')  # its owner died: nobody holds the lock
    (live / LOCK).write_text("")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(live / LOCK)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        past = time.time() - STALE_AFTER_S - 60
        for folder in (live, old):
            os.utime(folder, (past, past))  # age alone never removes a live conversion
        removed = remove_stale_tmp(models)
        assert sorted(removed) == sorted([dead, old])
        assert live.is_dir() and young.is_dir() and not dead.exists() and not old.exists()
    finally:
        holder.kill()
        holder.wait()
    assert remove_stale_tmp(models) == [live]  # its owner is gone now
    assert young.is_dir()


_SLOW_CONVERSION = """
import sys, time
import workbench as wb
from workbench.models import gguf_cache
real = gguf_cache._dequantise
def slow(*args):  # (gguf, out, progress task)
    meta = real(*args)
    print("converting", flush=True)
    time.sleep(600)  # killed here, with a complete-looking folder not yet renamed into place
    return meta
gguf_cache._dequantise = slow
wb.load_model(sys.argv[1])
"""


def test_kill_9_during_a_gguf_conversion_leaves_nothing_behind(tmp_path, isolated_cache):
    from test_loading_gguf import write_tiny_gguf

    from workbench.models.gguf_cache import remove_stale_tmp
    path = tmp_path / "tiny-qwen2.gguf"
    write_tiny_gguf(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_CACHE": str(isolated_cache)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CONVERSION, str(path)], stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline().strip() == "converting"
        tmp = list((isolated_cache / "models").glob(".tmp-*"))
        assert len(tmp) == 1
        assert remove_stale_tmp(isolated_cache / "models") == [] and tmp[0].is_dir()  # in progress: kept
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    model = wb.load_model(path)  # the next conversion removes the dead one's folder
    assert model.kind == "causal"
    left = sorted(p.name for p in (isolated_cache / "models").iterdir())
    assert len(left) == 1 and not left[0].startswith(".tmp-")

"""The results store: a local SQLite database (stdlib ``sqlite3``) that makes runs resumable.

Tables
------
- ``runs``: one row per run identity (model state x task hash x seed x tag): model name,
  fingerprint (full JSON and short id), task name/hash/spec, package versions, seed, status.
- ``attempts``: the run log, one row each time a cell is (re)started: pid, host, executor
  (``local`` or ``ray``), limit, how many items were already done, how many this attempt scored
  and inserted, timings, status.
- ``items``: one row per scored item, primary key ``(run_key, item_id)``; ``record`` is the JSON
  of the scores used (BLiMP: logprob_good, logprob_bad, correct).
- ``leases``: which process is computing a cell now (owner host:pid:random, heartbeat, expiry);
  see :mod:`workbench.bench.lease`. A row exists only while a cell is being computed.
- ``chunks``: one row per committed chunk of a cell: the keys of the items it covered (input
  items, some of which a probe's scorer may skip) and the rows it skipped, so a resumed cell
  scores only the items no chunk (and no stored row) covers.

Schema 2 (this version) renamed ``attempts.backend`` to ``executor`` ("backend" is a model's
engine) and ``probe_chunks`` to ``chunks`` (every unit commits chunks); a store of schema 1 is
migrated in place when opened (:func:`_migrate`), its runs resuming as they were.

Why it survives being killed: the database is in WAL mode; items are written with ``INSERT OR
IGNORE`` in chunks, each chunk in one ``BEGIN IMMEDIATE`` transaction together with the
attempt's counters, so a chunk is either fully stored (and counted) or not at all. A rerun scores
only the item ids that are missing. Two processes can write at once: writers queue on SQLite's
lock (``busy_timeout``) instead of failing; the lease on a cell keeps them from computing the
same cell twice. A new store is built beside its path and linked into place whole, so a store
that cannot be created (a full disk) leaves no file behind.

>>> import workbench as wb, tempfile, os
>>> store = wb.open_store(os.path.join(tempfile.mkdtemp(), "results.db"))
>>> store.runs().empty
True
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import warnings
from pathlib import Path

import pandas as pd

from workbench.bench import lease as _lease
from workbench.bench.lease import LEASE_SCHEMA, pid_alive
from workbench.errors import InvalidInputError, StoreError
from workbench.paths import cache_dir, describe_os_error
from workbench.sqlite_wal import connect_wal, rollback_if_open

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY, model_name TEXT NOT NULL, model_fingerprint TEXT NOT NULL,
    fingerprint_json TEXT, task_name TEXT NOT NULL, task_hash TEXT NOT NULL, task_kind TEXT NOT NULL,
    task_spec_json TEXT, seed INTEGER, tag TEXT, versions_json TEXT, n_items_task INTEGER,
    status TEXT NOT NULL, created_at REAL, updated_at REAL);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id INTEGER PRIMARY KEY AUTOINCREMENT, run_key TEXT NOT NULL REFERENCES runs(run_key),
    pid INTEGER, host TEXT, executor TEXT, item_limit INTEGER, n_requested INTEGER,
    n_already_done INTEGER, n_scored INTEGER NOT NULL DEFAULT 0, n_inserted INTEGER NOT NULL DEFAULT 0,
    started_at REAL, finished_at REAL, wall_s REAL, status TEXT NOT NULL, error TEXT, versions_json TEXT);
CREATE TABLE IF NOT EXISTS items (
    run_key TEXT NOT NULL REFERENCES runs(run_key), item_id TEXT NOT NULL, item_index INTEGER,
    grp TEXT, record TEXT NOT NULL, attempt_id INTEGER, created_at REAL,
    PRIMARY KEY (run_key, item_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts(run_key);
CREATE TABLE IF NOT EXISTS chunks (
    run_key TEXT NOT NULL, first_index INTEGER NOT NULL, item_keys TEXT NOT NULL, skipped TEXT NOT NULL,
    attempt_id INTEGER, score_s REAL, created_at REAL, PRIMARY KEY (run_key, first_index)) WITHOUT ROWID;
""" + LEASE_SCHEMA


class Store:
    """A results database; open with :func:`open_store`. Safe to share between processes.

    ``lease_ttl_s``, ``heartbeat_s`` and ``lease_poll_s`` time the leases on cells (see
    :mod:`workbench.bench.lease`); set them on the instance to change them.
    """

    lease_ttl_s, heartbeat_s, lease_poll_s = _lease.TTL_S, _lease.HEARTBEAT_S, _lease.POLL_S

    def __init__(self, path: str | os.PathLike, timeout_s: float = 120.0):
        self.path = Path(path).expanduser().resolve()
        if self.path.is_dir():
            raise StoreError(f"the results store {str(self.path)!r} is a folder, not a file: pass a file path "
                             f"such as {str(self.path / 'results.db')!r}")
        self._con = None
        try:
            if not self.path.exists():
                _create(self.path, timeout_s)
            self._open(timeout_s)
        except BaseException as err:
            if self._con is not None:
                self._con.close()
            if isinstance(err, StoreError) or not isinstance(err, (sqlite3.Error, OSError)):
                raise
            raise _store_error(self.path, err, "open") from err

    def _open(self, timeout_s: float) -> None:
        # autocommit mode: every write below opens its own explicit transaction
        self._con = connect_wal(self.path, timeout_s=timeout_s, check_same_thread=False)
        _check_wal(self._con, self.path)
        self._con.execute("PRAGMA foreign_keys = ON")
        with self._write():
            _migrate(self._con)
            _write_schema(self._con)
        found = int(self._con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        if found != SCHEMA_VERSION:
            raise InvalidInputError(f"{self.path} has store schema {found}, this workbench writes {SCHEMA_VERSION}: "
                                    "use a new store file")

    def _write(self):
        return _Transaction(self._con)

    def close(self):
        self._con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Store({str(self.path)!r})"

    def meta(self, key: str) -> str | None:
        """A value of the store's ``meta`` table (None when unset)."""
        row = self._con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def claim(self, key: str, value: str, replace: bool = False) -> str:
        """Record ``value`` under ``key`` unless the store holds one already (``replace``: in any
        case), in one transaction; returns the value the store holds: an audit marks its store with
        its identity this way."""
        with self._write():
            self._con.execute(f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO meta VALUES (?, ?)", (key, value))
        return self.meta(key)

    # ---- runs and attempts -------------------------------------------------------------------
    def ensure_run(self, run_key: str, **fields) -> None:
        """Create the run row if new (fields: model_name, model_fingerprint, fingerprint_json,
        task_name, task_hash, task_kind, task_spec_json, seed, tag, versions_json, n_items_task)."""
        now = time.time()
        cols = ["run_key", *fields, "status", "created_at", "updated_at"]
        vals = [run_key, *fields.values(), "running", now, now]
        with self._write():
            self._con.execute(f"INSERT OR IGNORE INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              vals)

    def start_attempt(self, run_key: str, *, executor: str | None = None, item_limit, n_requested: int,
                      n_already_done: int, versions: dict, backend: str | None = None) -> int:
        """Log a (re)start of a run; attempts left 'running' by a dead process become 'interrupted'.
        ``executor``: where it runs (``local``, ``ray``); ``backend=`` is its former name."""
        executor = _executor_name(executor, backend)
        host = socket.gethostname()
        with self._write():
            stale = self._con.execute("SELECT attempt_id, pid FROM attempts WHERE run_key=? AND status='running' "
                                      "AND host=?", (run_key, host)).fetchall()
            for attempt_id, pid in stale:
                if not pid_alive(pid):
                    self._con.execute("UPDATE attempts SET status='interrupted' WHERE attempt_id=?", (attempt_id,))
            cur = self._con.execute(
                "INSERT INTO attempts (run_key, pid, host, executor, item_limit, n_requested, n_already_done, "
                "started_at, status, versions_json) VALUES (?,?,?,?,?,?,?,?, 'running', ?)",
                (run_key, os.getpid(), host, executor, item_limit, n_requested, n_already_done, time.time(),
                 json.dumps(versions)))
            return int(cur.lastrowid)

    def add_items(self, run_key: str, attempt_id: int, records: list[dict], keys: list[tuple] | None = None,
                  lease=None, chunk: dict | None = None, replace: bool = False) -> int:
        """Store one chunk of scored items in ONE transaction with the attempt's counters; returns
        how many rows were new. Each record's ``id``, ``index`` and ``group`` identify it, unless
        ``keys`` gives those as one ``(id, index, group)`` tuple per record. The same transaction
        renews ``lease`` and records ``chunk`` (``first_index``, ``item_keys``, ``skipped``,
        ``score_s``). ``replace``: the run's earlier rows go first (a cell computed whole, whose
        earlier, half-written attempt left rows)."""
        now = time.time()
        keys = keys or [(r["id"], r.get("index"), r.get("group")) for r in records]
        rows = [(run_key, str(k[0]), k[1], None if k[2] is None else str(k[2]),
                 json.dumps(r, default=_json_default), attempt_id, now) for r, k in zip(records, keys)]
        with self._write():
            if replace:
                self._con.execute("DELETE FROM items WHERE run_key=?", (run_key,))
            before = self._con.total_changes
            self._con.executemany("INSERT OR IGNORE INTO items VALUES (?,?,?,?,?,?,?)", rows)
            inserted = self._con.total_changes - before
            self._con.execute("UPDATE attempts SET n_scored = n_scored + ?, n_inserted = n_inserted + ? "
                              "WHERE attempt_id=?", (len(rows), inserted, attempt_id))
            self._con.execute("UPDATE runs SET updated_at=? WHERE run_key=?", (now, run_key))
            if chunk is not None:
                c = chunk
                self._con.execute("INSERT OR IGNORE INTO chunks VALUES (?,?,?,?,?,?,?)",
                                  (run_key, int(c["first_index"]), json.dumps(c["item_keys"]),
                                   json.dumps(c["skipped"], default=_json_default), attempt_id, c.get("score_s"), now))
            if lease is not None:
                lease.renew(self._con)
        return inserted

    def finish_attempt(self, attempt_id: int, status: str, error: str | None = None) -> None:
        now = time.time()
        with self._write():
            self._con.execute("UPDATE attempts SET status=?, error=?, finished_at=?, wall_s=? - started_at "
                              "WHERE attempt_id=?", (status, error, now, now, attempt_id))
            run_key, = self._con.execute("SELECT run_key FROM attempts WHERE attempt_id=?", (attempt_id,)).fetchone()
            n_task, = self._con.execute("SELECT n_items_task FROM runs WHERE run_key=?", (run_key,)).fetchone()
            n_done = self.count_items(run_key)
            run_status = "complete" if n_done >= (n_task or 0) else ("partial" if status == "finished" else status)
            self._con.execute("UPDATE runs SET status=?, updated_at=? WHERE run_key=?", (run_status, now, run_key))

    # ---- leases on cells (see workbench.bench.lease) -------------------------------------------
    def take_lease(self, run_key: str):
        """The lease on a cell, or None while another live process holds it."""
        return _lease.take(self, run_key, ttl_s=self.lease_ttl_s, heartbeat_s=self.heartbeat_s)

    def wait_lease(self, run_key: str):
        """The lease on a cell, waiting (polling every ``lease_poll_s``) while another holds it."""
        return _lease.wait_and_take(self, run_key, poll_s=self.lease_poll_s, ttl_s=self.lease_ttl_s,
                                    heartbeat_s=self.heartbeat_s)

    def lease_holder(self, run_key: str) -> dict | None:
        """The live lease on a cell as a dict (owner, host, pid, expires_at, ...), or None when
        the cell is free or its holder is gone."""
        row = _lease.holder_row(self._con, run_key)
        return None if row is None or _lease.is_stale(row) else row

    def leases(self) -> pd.DataFrame:
        """Cells being computed now (live or stale leases), one row each."""
        return pd.read_sql_query("SELECT * FROM leases ORDER BY acquired_at", self._con)

    def finish_run_spec(self, run_key: str, spec: dict, lease=None, n_items: int | None = None) -> None:
        """Record what a cell keeps besides its rows (its unit's identity, provenance, options,
        what rebuilds its result) and how many items the unit has (``n_items``; default: the rows
        stored, so the run reads "complete"), in one transaction that renews ``lease``."""
        with self._write() as con:
            n = n_items if n_items is not None else \
                con.execute("SELECT COUNT(*) FROM items WHERE run_key=?", (run_key,)).fetchone()[0]
            con.execute("UPDATE runs SET task_spec_json=?, n_items_task=? WHERE run_key=?",
                        (json.dumps(spec, default=_json_default), n, run_key))
            if lease is not None:
                lease.renew(con)

    def chunks(self, run_key: str) -> list[dict]:
        """The committed chunks of a cell, in item order (item_keys, skipped, score_s)."""
        rows = self._con.execute("SELECT first_index, item_keys, skipped, score_s FROM chunks "
                                 "WHERE run_key=? ORDER BY first_index", (run_key,)).fetchall()
        return [{"first_index": r[0], "item_keys": json.loads(r[1]), "skipped": json.loads(r[2]), "score_s": r[3]}
                for r in rows]

    # ---- reading -----------------------------------------------------------------------------
    def done_ids(self, run_key: str) -> set[str]:
        return {r[0] for r in self._con.execute("SELECT item_id FROM items WHERE run_key=?", (run_key,))}

    def done_keys(self, run_key: str) -> set[str]:
        """The item keys a cell needs not score again: those of its committed chunks (items a
        scorer skipped included) and of its stored rows (a cell stored before chunks were kept)."""
        return self.done_ids(run_key) | {k for c in self.chunks(run_key) for k in c["item_keys"]}

    def rows(self, run_key: str) -> list[tuple[str, str | None, dict]]:
        """A run's stored rows in cell order: ``(item_id, group, record)``."""
        return [(i, g, json.loads(r)) for i, g, r in self._con.execute(
            "SELECT item_id, grp, record FROM items WHERE run_key=? ORDER BY item_index", (run_key,))]

    def count_items(self, run_key: str | None = None) -> int:
        if run_key is None:
            return self._con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        return self._con.execute("SELECT COUNT(*) FROM items WHERE run_key=?", (run_key,)).fetchone()[0]

    def runs(self) -> pd.DataFrame:
        """One row per run: identity, status, items stored, attempts, total wall time."""
        return pd.read_sql_query(
            "SELECT r.run_key, r.model_name, r.model_fingerprint, r.task_name, r.task_hash, r.task_kind, r.seed, "
            "r.tag, r.status, r.n_items_task, (SELECT COUNT(*) FROM items i WHERE i.run_key=r.run_key) AS n_items, "
            "(SELECT COUNT(*) FROM attempts a WHERE a.run_key=r.run_key) AS n_attempts, "
            "(SELECT SUM(wall_s) FROM attempts a WHERE a.run_key=r.run_key) AS wall_s, "
            "r.versions_json, r.created_at, r.updated_at FROM runs r ORDER BY r.created_at", self._con)

    def attempts(self, run_key: str | None = None) -> pd.DataFrame:
        """The run log (one row per start of a run)."""
        where, args = ("WHERE run_key=?", (run_key,)) if run_key else ("", ())
        return pd.read_sql_query(f"SELECT * FROM attempts {where} ORDER BY attempt_id", self._con, params=args)

    def run_info(self, run_key: str) -> dict:
        """The run row as a dict; ``run_key`` may be a unique prefix."""
        rows = self._con.execute("SELECT * FROM runs WHERE run_key LIKE ?", (run_key + "%",)).fetchall()
        if len(rows) != 1:
            raise InvalidInputError(f"{'no' if not rows else 'more than one'} run matches {run_key!r} in {self.path}; "
                                    "see store.runs() for the run keys")
        names = [d[0] for d in self._con.execute("SELECT * FROM runs LIMIT 0").description]
        return dict(zip(names, rows[0]))

    def items(self, run_key: str, item_ids=None) -> pd.DataFrame:
        """Stored records of a run as a DataFrame (one row per item, in task order)."""
        rows = self._con.execute("SELECT item_id, record FROM items WHERE run_key=? ORDER BY item_index",
                                 (run_key,)).fetchall()
        if item_ids is not None:
            wanted = set(map(str, item_ids))
            rows = [r for r in rows if r[0] in wanted]
        return pd.DataFrame([json.loads(r[1]) for r in rows])

    def integrity_check(self) -> str:
        return self._con.execute("PRAGMA integrity_check").fetchone()[0]



def _executor_name(executor: str | None, backend: str | None) -> str:
    """The attempt's executor, from ``executor=`` or its former name ``backend=`` (deprecated)."""
    if backend is not None:
        if executor is not None and executor != backend:
            raise InvalidInputError(f"executor={executor!r} and backend={backend!r} disagree: pass executor= only")
        warnings.warn("start_attempt(backend=...) is now executor=...: 'backend' names a model's engine",
                      DeprecationWarning, stacklevel=3)
    return executor or backend or "local"


def _migrate(con) -> None:
    """Bring a schema-1 store to schema 2 in place (inside the opening transaction): the attempts'
    ``backend`` column becomes ``executor``, ``probe_chunks`` becomes ``chunks``. Every row stays;
    a run stored by schema 1 resumes as before."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return  # a new store
    found = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if found is None or int(found[0]) != 1:
        return
    columns = {r[1] for r in con.execute("PRAGMA table_info(attempts)")}
    if "backend" in columns:
        con.execute("ALTER TABLE attempts RENAME COLUMN backend TO executor")
    if "probe_chunks" in tables:
        con.execute("ALTER TABLE probe_chunks RENAME TO chunks")
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error): takes the write lock up front so
    two writers queue on ``busy_timeout`` rather than dead-locking on a lock upgrade."""

    def __init__(self, con):
        self.con = con

    def __enter__(self):
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.con.execute("COMMIT")
                return False
            except sqlite3.Error as err:
                exc = err
        rollback_if_open(self.con)
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
            path = self.con.execute("PRAGMA database_list").fetchone()[2]
            raise _store_error(Path(path), exc, "write to") from exc
        return False


def _check_wal(con, path: Path) -> None:
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]  # a network share may refuse WAL
    if mode.lower() != "wal":
        raise InvalidInputError(f"could not put {path} in WAL mode (got {mode!r}); "
                                "use a local file system, not a network share")


def _write_schema(con) -> None:
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            con.execute(stmt)
    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _create(path: Path, timeout_s: float) -> None:
    """A new store at ``path``, made whole or not at all: its schema is written into a temporary
    file beside it, which is then hard-linked to ``path`` (the link fails if another process
    created the store meanwhile: that one is used). A failure (a full disk) removes the
    temporary files and the folders made for it, so no empty ``results.db`` is left behind."""
    import secrets
    made = [p for p in path.parents if not p.exists()]  # innermost first
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.creating")
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = connect_wal(tmp, timeout_s=timeout_s)
        try:
            _check_wal(con, path)
            con.execute("BEGIN IMMEDIATE")  # errors name the store's path, not this file's (Store.__init__)
            try:
                _write_schema(con)
                con.execute("COMMIT")
            finally:
                rollback_if_open(con)
            busy, _, _ = con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:  # nobody else knows the file: a checkpoint cannot be blocked
                raise sqlite3.OperationalError("could not checkpoint the new store")
        finally:
            con.close()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # created by another process meanwhile: open that one
        except OSError:  # a file system without hard links: rename, unless a store appeared meanwhile
            if not path.exists():
                os.replace(tmp, path)
        created = True
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)
            except OSError:
                pass
        for folder in [] if created else made:
            try:
                folder.rmdir()
            except OSError:  # not empty (another process wrote there) or never made
                pass


def _store_error(path: Path, err: BaseException, action: str) -> StoreError:
    """A :class:`StoreError` that names the store, the cause in plain words and what to do."""
    cause, fix = describe_os_error(err, path.parent)
    if cause == "not a SQLite file":
        fix = "pass the path of a results store (a .db file written by wb.run) or a new file name"
    elif cause.startswith("not a folder"):
        fix = f"{path.parent} must be a folder: choose another store path"
    return StoreError(f"cannot {action} the results store {str(path)!r}: {cause} ({type(err).__name__}: {err}). "
                      f"To fix: {fix}; or pass --store / store= a path in a writable folder.")


def _json_default(x):
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def cached_store(name: str) -> Path:
    """The path of a store kept in the workbench's cache for a notebook or a demo:
    ``cache_dir()/stores/<name>.schema<N>.db``. The schema is in its name because a cache outlives
    a workbench version and may be shared by two (a course machine, CI): a file written in another
    schema is left to the version that wrote it, never refused in the middle of a notebook.

    >>> cached_store("06_comparing_models").name
    '06_comparing_models.schema2.db'
    """
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise InvalidInputError(f"a cached store's name must be a plain file name, got {name!r}")
    folder = cache_dir() / "stores"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.schema{SCHEMA_VERSION}.db"


def open_store(path: str | os.PathLike = "results.db") -> Store:
    """Open (or create) a results store: a SQLite file, WAL mode, safe to share between processes.

    >>> import workbench as wb, tempfile, os
    >>> wb.open_store(os.path.join(tempfile.mkdtemp(), "r.db")).count_items()
    0
    """
    if isinstance(path, Store):
        return path
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"store must be a path to a .db file or a Store, got {type(path).__name__}")
    return Store(path)

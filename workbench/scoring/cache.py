"""A persistent result cache: a re-run or a resumed run computes nothing twice.

One SQLite file (WAL mode, busy timeout) so two processes may read and write at once. Keys are
sha256 of (model state id, request kind, scoring options, request); values are JSON. The model
state id includes active interventions (:attr:`Model.state_id`), so a steered score is never
served for an unsteered request.

The cache is an optimisation, never a reason to lose a score: when it cannot be opened, read or
written (read-only folder, a folder that cannot be created, a file that is not SQLite, a full
disk), scoring goes on without it and a :class:`~workbench.errors.CacheWarning` says why and how
to fix it, once per process and cause. Computed scores are always returned.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import warnings
from pathlib import Path

from workbench.errors import CacheWarning
from workbench.paths import cache_dir, describe_os_error
from workbench.sqlite_wal import connect_wal, rollback_if_open

_local = threading.local()
_warned: set = set()  # (pid, cause): one warning per process and cause


def cache_path() -> Path:
    return cache_dir() / "scores.sqlite"


def _connect(path: Path) -> sqlite3.Connection:
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    key = (str(path), os.getpid())
    if key not in conns:
        conns[key] = connect_wal(path, timeout_s=60, setup=lambda c: c.execute(
            "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value TEXT NOT NULL)"))
    return conns[key]


def close_connections() -> None:
    """Close this thread's cache connections (e.g. before the cache's disk is unmounted)."""
    for conn in getattr(_local, "conns", {}).values():
        conn.close()
    _local.conns = {}


# Bump when a change to the engine changes the numbers it produces (even in the last digits):
# entries computed by an older engine are then never served.
ENGINE_VERSION = 3  # 3: shared-prefix leads run whole; right-padded passes without a mask


def request_key(state_id: str, kind: str, options: dict, request) -> str:
    blob = json.dumps([ENGINE_VERSION, state_id, kind, options, request], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _warn(path: Path, err: BaseException, consequence: str) -> None:
    cause, fix = describe_os_error(err, Path(path).parent)
    key = (os.getpid(), cause)
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(f"score cache {path}: {cause} ({type(err).__name__}: {err}). Scoring goes on without the "
                  f"cache ({consequence}); this is said once per process. To fix: {fix}, or set "
                  "WORKBENCH_CACHE=/a/writable/folder, or pass cache=False to skip the cache.",
                  CacheWarning, stacklevel=4)


class ScoreCache:
    """Bulk get/put of JSON values by key. ``enabled=False`` makes every call a no-op; so does a
    cache that cannot be used (with one :class:`~workbench.errors.CacheWarning`)."""

    def __init__(self, enabled: bool = True, path: Path | None = None):
        self.enabled = enabled
        self.path = path or (cache_path() if enabled else None)

    def get_many(self, keys: list[str]) -> dict:
        if not self.enabled or not keys:
            return {}
        found = {}
        try:
            conn = _connect(self.path)
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                rows = conn.execute(f"SELECT key, value FROM scores WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                found.update((k, json.loads(v)) for k, v in rows)
        except (sqlite3.Error, OSError) as err:
            _warn(self.path, err, "nothing is read from it: every score is computed")
            return {}
        return found

    def put_many(self, items: dict) -> None:
        if not self.enabled or not items:
            return
        try:
            conn = _connect(self.path)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO scores (key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in items.items()])
                conn.execute("COMMIT")
            except BaseException:
                rollback_if_open(conn)
                raise
        except (sqlite3.Error, OSError) as err:
            _warn(self.path, err, "computed scores are returned but not saved")

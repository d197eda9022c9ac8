"""A persistent result cache: a re-run or a resumed run computes nothing twice.

One SQLite file (WAL mode, busy timeout) so two processes may read and write at once. Keys are
sha256 of (model state id, request kind, scoring options, request); values are JSON. The model
state id includes active interventions (:attr:`Model.state_id`), so a steered score is never
served for an unsteered request.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from pathlib import Path

from workbench.paths import cache_dir
from workbench.sqlite_wal import connect_wal

_local = threading.local()


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


# Bump when a change to the engine changes the numbers it produces (even in the last digits):
# entries computed by an older engine are then never served.
ENGINE_VERSION = 3  # 3: shared-prefix leads run whole; right-padded passes without a mask


def request_key(state_id: str, kind: str, options: dict, request) -> str:
    blob = json.dumps([ENGINE_VERSION, state_id, kind, options, request], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ScoreCache:
    """Bulk get/put of JSON values by key. ``enabled=False`` makes every call a no-op."""

    def __init__(self, enabled: bool = True, path: Path | None = None):
        self.enabled = enabled
        self.path = path or (cache_path() if enabled else None)

    def get_many(self, keys: list[str]) -> dict:
        if not self.enabled or not keys:
            return {}
        conn = _connect(self.path)
        found = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            rows = conn.execute(f"SELECT key, value FROM scores WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, items: dict) -> None:
        if not self.enabled or not items:
            return
        conn = _connect(self.path)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO scores (key, value) VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in items.items()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

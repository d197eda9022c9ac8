"""Open a SQLite file in WAL mode safely when several processes open it at the same moment.

Switching a new database to WAL needs an exclusive lock, and SQLite answers a concurrent switch
with "database is locked" at once, without waiting on the busy timeout. So the switch (and the
first schema statements, passed as ``setup``) are retried with a short random back-off until
``timeout_s``. The score cache and the results store both open their files through here.
"""
from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path


def rollback_if_open(conn: sqlite3.Connection) -> None:
    """Roll back only a transaction that is still open: SQLite ends one itself on some errors
    (SQLITE_FULL, a full disk), and a plain ROLLBACK then fails with "no transaction is active",
    hiding the real cause."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _locked(err: sqlite3.OperationalError) -> bool:
    msg = str(err).lower()
    return "locked" in msg or "busy" in msg


def connect_wal(path: str | Path, timeout_s: float = 60.0, setup=None, **connect_kwargs) -> sqlite3.Connection:
    """A connection in WAL mode with ``busy_timeout`` set; ``setup(conn)`` runs once, retried
    on a lock like the mode switch. Raises ``sqlite3.OperationalError`` after ``timeout_s``."""
    con = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, **connect_kwargs)
    con.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            con.execute("PRAGMA journal_mode = WAL")
            if setup is not None:
                setup(con)
            break
        except sqlite3.Error as err:  # DatabaseError too ("file is not a database"): close, then raise
            if not isinstance(err, sqlite3.OperationalError) or not _locked(err) or time.monotonic() > deadline:
                con.close()
                raise
            time.sleep(0.02 + random.random() * 0.08)
    con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: safe against process kills
    return con

"""Leases on cells: two processes running the same grid on one store split the work instead of
both computing every cell.

A process takes the lease on a cell (its run key) before computing it: one row in the store's
``leases`` table with an owner id (host:pid:random), renewed while it works: by a heartbeat
thread every ``heartbeat_s`` seconds and with every committed chunk. The lease expires
``ttl_s`` seconds after its last renewal. Another process finding a live lease takes other
cells first and then waits for it (the grid runner polls; see :mod:`workbench.bench.runner`),
adopting the results once the owner releases it. A lease whose owner is gone (its heartbeat
expired, or it is on this host and its PID no longer exists) is taken over, and the cell
resumes from the items already committed. Taking, renewing and releasing each run in one
``BEGIN IMMEDIATE`` transaction, so two processes can never both believe they own a cell.

Correctness never depends on the lease: items are inserted with ``INSERT OR IGNORE`` on
``(run_key, item_id)``, so even two owners (a frozen process that outlived its lease) cannot
duplicate or lose a row; the lease only stops the work from being done twice.

>>> import workbench as wb, tempfile, os
>>> store = wb.open_store(os.path.join(tempfile.mkdtemp(), "r.db"))
>>> lease = store.take_lease("abc")
>>> store.take_lease("abc") is None, store.lease_holder("abc")["pid"] == os.getpid()
(True, True)
>>> lease.release(); store.lease_holder("abc") is None
True
"""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time

from workbench.sqlite_wal import connect_wal

LEASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    run_key TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT, pid INTEGER, attempt_id INTEGER,
    acquired_at REAL, heartbeat_at REAL, expires_at REAL)
"""
TTL_S = 120.0       # a lease not renewed for this long is dead (the owner crashed on another host)
HEARTBEAT_S = 15.0  # renewal period of the heartbeat thread: well inside the TTL, even on a busy machine
POLL_S = 2.0        # how often a waiting process looks at a lease held by someone else


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale(row: dict, now: float | None = None) -> bool:
    """A lease whose owner is gone: not renewed in time, or on this host with a dead PID."""
    now = time.time() if now is None else now
    if row["expires_at"] is None or row["expires_at"] < now:
        return True
    return row["host"] == socket.gethostname() and not pid_alive(int(row["pid"]))


class LeaseLostError(RuntimeError):
    """This process's lease was taken over (it was thought dead): it stops working on the cell."""


class Lease:
    """The lease this process holds on one cell; :meth:`release` (or ``with``) gives it back."""

    def __init__(self, store, run_key: str, owner: str, ttl_s: float, heartbeat_s: float):
        self.store, self.run_key, self.owner, self.ttl_s = store, run_key, owner, ttl_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True,
                                        name=f"lease-{run_key}")
        self._thread.start()

    def renew(self, con) -> bool:
        """Inside the caller's write transaction: push the expiry forward; False if the lease
        is no longer ours (then ``lost`` is set)."""
        now = time.time()
        cur = con.execute("UPDATE leases SET heartbeat_at=?, expires_at=? WHERE run_key=? AND owner=?",
                          (now, now + self.ttl_s, self.run_key, self.owner))
        if cur.rowcount != 1:
            self.lost = True
        return not self.lost

    def set_attempt(self, attempt_id: int) -> None:
        """Record which attempt works under the lease (a take-over marks it interrupted)."""
        with self.store._write() as con:
            con.execute("UPDATE leases SET attempt_id=? WHERE run_key=? AND owner=?",
                        (attempt_id, self.run_key, self.owner))

    def check(self) -> None:
        if self.lost:
            raise LeaseLostError(f"the lease on cell {self.run_key} was taken over by another process "
                                 "(this one was thought dead); it finishes the cell")

    def _beat(self, period: float) -> None:
        # its own connection: the store's connection may be inside a transaction of the main thread
        con = None
        while not self._stop.wait(period):
            try:
                con = con or connect_wal(self.store.path, timeout_s=min(30.0, self.ttl_s / 2))
                con.execute("BEGIN IMMEDIATE")
                try:
                    self.renew(con)
                finally:
                    con.execute("COMMIT")
            except Exception:  # a locked or busy database: try again at the next beat
                pass
            if self.lost:
                break
        if con is not None:
            con.close()

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        with self.store._write() as con:
            con.execute("DELETE FROM leases WHERE run_key=? AND owner=?", (self.run_key, self.owner))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def take(store, run_key: str, ttl_s: float = TTL_S, heartbeat_s: float = HEARTBEAT_S) -> Lease | None:
    """The lease on ``run_key``, or None if a live owner holds it. A stale lease is taken over
    and the attempt that ran under it, if still 'running', is marked 'interrupted'."""
    host, pid, now = socket.gethostname(), os.getpid(), time.time()
    owner = f"{host}:{pid}:{secrets.token_hex(4)}"
    with store._write() as con:
        row = holder_row(con, run_key)
        if row is not None:
            if not is_stale(row, now):
                return None
            if row["attempt_id"] is not None:
                con.execute("UPDATE attempts SET status='interrupted' WHERE attempt_id=? AND status='running'",
                            (row["attempt_id"],))
        con.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,NULL,?,?,?)",
                    (run_key, owner, host, pid, now, now, now + ttl_s))
    return Lease(store, run_key, owner, ttl_s, heartbeat_s)


def holder_row(con, run_key: str) -> dict | None:
    cur = con.execute("SELECT * FROM leases WHERE run_key=?", (run_key,))
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row))


def wait_and_take(store, run_key: str, poll_s: float = POLL_S, **kw) -> Lease:
    """Take the lease, waiting (polling) while a live owner holds it."""
    while True:
        lease = take(store, run_key, **kw)
        if lease is not None:
            return lease
        time.sleep(poll_s)


def under_lease(store, run_key: str, compute, *, wait: bool, done=None) -> bool:
    """Run ``compute(lease)`` holding the cell's lease, the one loop every unit of work uses.

    ``done()`` says whether the cell is complete (checked before and after waiting: another
    process may finish it meanwhile; default: compute once). With ``wait=True`` a live owner is
    waited for; with ``wait=False`` this returns False at once when another process holds the
    lease (the grid runner then takes other cells first) or took the cell over. True: the cell
    was computed here, or found complete."""
    done = done or (lambda: False)
    computed = False
    while not done() and not computed:
        lease = store.wait_lease(run_key) if wait else store.take_lease(run_key)
        if lease is None:
            return False
        try:
            with lease:
                if not done():
                    compute(lease)
                computed = True
        except LeaseLostError:  # this process was thought dead and the cell taken over: the other finishes it
            if not wait:
                return False
    return True


@contextlib.contextmanager
def recorded_attempt(store, attempt: int, lease):
    """Close the store's record of ``attempt`` as it ends: "finished", "interrupted" (Ctrl-C),
    "lost_lease" (another process took the cell over) or "failed" (with the error)."""
    try:
        yield
    except KeyboardInterrupt:
        store.finish_attempt(attempt, "interrupted")
        raise
    except BaseException as e:
        store.finish_attempt(attempt, "lost_lease" if lease.lost else "failed", error=f"{type(e).__name__}: {e}")
        raise
    store.finish_attempt(attempt, "finished")

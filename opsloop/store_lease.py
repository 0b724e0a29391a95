"""One run per incident at a time, across processes: a lease row per incident thread.

A run (start, a decision, a resume) takes the incident's lease before it touches the graph and
gives it back when it ends. While the holder lives, everyone else is refused at once with who
holds it: two approvers never both run the graph, and "an earlier run died, finish it" only
fires when the earlier run really is gone. A holder on this host is gone when its process is
(a kill -9 frees the lease at once); a holder elsewhere when it stops renewing (the lease
expires `ttl` seconds after its last heartbeat).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    incident_id TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""

DEFAULT_TTL_SECONDS = 60.0


class StoreError(Exception):
    """A request the store cannot satisfy (unknown id, already decided, unreadable file)."""


class LeaseHeld(StoreError):
    """Another live run holds the incident."""


@dataclass(frozen=True)
class Holder:
    token: str
    host: str
    pid: int
    purpose: str
    expires_at: float

    def describe(self) -> str:
        return f"{self.purpose} (pid {self.pid} on {self.host})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class LeaseKeeper:
    """Takes, renews and gives back incident leases in the store's SQLite file."""

    def __init__(self, path: Path, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        self.path = path
        self.ttl = ttl
        self.host = socket.gethostname()
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        # Own connection: a heartbeat must not land inside another thread's transaction.
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, timeout=10)
            self._conn.execute("PRAGMA busy_timeout=10000")
            self._conn.executescript(_SCHEMA)
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _alive(self, holder: Holder, now: float) -> bool:
        if holder.host == self.host and holder.pid != os.getpid():
            return _pid_alive(holder.pid)
        return holder.expires_at > now

    def holder(self, incident_id: str) -> Holder | None:
        """The live holder of the incident's lease, if any."""
        with self._lock:
            row = self._db().execute(
                "SELECT token, host, pid, purpose, expires_at FROM leases WHERE incident_id=?",
                (incident_id,)).fetchone()
        if row is None:
            return None
        holder = Holder(*row)
        return holder if self._alive(holder, time.time()) else None

    def acquire(self, incident_id: str, purpose: str) -> str:
        """The lease's token; LeaseHeld when a live run holds it."""
        token = uuid.uuid4().hex
        now = time.time()
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT token, host, pid, purpose, expires_at FROM leases "
                    "WHERE incident_id=?", (incident_id,)).fetchone()
                if row is not None and self._alive(Holder(*row), now):
                    raise LeaseHeld(
                        f"{incident_id} is being run right now by {Holder(*row).describe()}; "
                        f"try again when it finishes (`opsloop show {incident_id}`)")
                db.execute(
                    "INSERT OR REPLACE INTO leases(incident_id, token, host, pid, purpose, "
                    "acquired_at, expires_at) VALUES(?,?,?,?,?,?,?)",
                    (incident_id, token, self.host, os.getpid(), purpose, now, now + self.ttl))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return token

    def renew(self, incident_id: str, token: str) -> bool:
        with self._lock:
            cur = self._db().execute(
                "UPDATE leases SET expires_at=? WHERE incident_id=? AND token=?",
                (time.time() + self.ttl, incident_id, token))
        return cur.rowcount == 1

    def release(self, incident_id: str, token: str) -> None:
        with self._lock:
            self._db().execute("DELETE FROM leases WHERE incident_id=? AND token=?",
                               (incident_id, token))

    @contextmanager
    def hold(self, incident_id: str, purpose: str) -> Iterator[str]:
        """Hold the incident's lease for the block, renewing it while the block runs."""
        token = self.acquire(incident_id, purpose)
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    self.renew(incident_id, token)
                except sqlite3.Error:
                    continue  # a busy file: the next beat tries again, well inside the ttl

        beat = threading.Thread(target=heartbeat, name=f"lease-{incident_id}", daemon=True)
        beat.start()
        try:
            yield token
        finally:
            stop.set()
            beat.join(timeout=5)
            self.release(incident_id, token)

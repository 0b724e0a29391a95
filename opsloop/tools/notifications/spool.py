"""The durable delivery queue: one row per (notification key, backend), in SQLite.

A delivery is written here before anything is sent, so a restart finds what was not. The
unique (key, backend) pair makes enqueueing idempotent: a replayed graph step notifying again
under the same key adds nothing. A worker claims a row with a lease (one UPDATE, so two
workers or two processes never send the same row at once); a worker that died mid-request
leaves a lease that expires, and the row is sent again: the one case a receiver can see a
delivery twice, which is why every payload carries the delivery id (and PagerDuty the dedup key).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    backend TEXT NOT NULL,
    channel TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL,            -- JSON
    created_at TEXT NOT NULL,
    state TEXT NOT NULL,           -- pending | sending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,         -- unix time the next attempt is due
    lease_until REAL,              -- a worker's claim while it sends
    last_error TEXT,
    sent_at TEXT,
    UNIQUE (key, backend)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (backend, state, next_at);
"""


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Delivery:
    id: int
    key: str
    backend: str
    channel: str
    message: str
    data: dict[str, Any]
    created_at: str
    state: DeliveryState
    attempts: int
    next_at: float
    last_error: str | None
    sent_at: str | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "backend": self.backend,
                "channel": self.channel, "message": self.message, "data": self.data,
                "created_at": self.created_at, "state": self.state.value,
                "attempts": self.attempts, "last_error": self.last_error,
                "sent_at": self.sent_at}


_COLUMNS = ("id, key, backend, channel, message, data, created_at, state, attempts, next_at, "
            "last_error, sent_at")


def _row(r: tuple[Any, ...]) -> Delivery:
    return Delivery(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], DeliveryState(r[7]),
                    r[8], r[9], r[10], r[11])


class Spool:
    """The deliveries table. Every call opens its own connection: workers are threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with db:
                yield db
        finally:
            db.close()

    def enqueue(self, key: str, channel: str, message: str, data: dict[str, Any],
                backends: tuple[str, ...]) -> list[int]:
        """One pending delivery per backend; a (key, backend) already queued is left alone.
        Returns the ids of the rows this call added."""
        now = time.time()
        at = datetime.now(UTC).isoformat()
        body = json.dumps(data, default=str, sort_keys=True)
        added = []
        with self._db() as db:
            for backend in backends:
                cur = db.execute(
                    "INSERT OR IGNORE INTO deliveries (key, backend, channel, message, data, "
                    "created_at, state, next_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                    (key, backend, channel, message, body, at, now))
                if cur.rowcount and cur.lastrowid is not None:
                    added.append(cur.lastrowid)
        return added

    def claim(self, backend: str, lease_seconds: float, limit: int = 10) -> list[Delivery]:
        """Due deliveries of one backend, each now leased to the caller (or to nobody else)."""
        now = time.time()
        claimed = []
        with self._db() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM deliveries WHERE backend = ? AND ((state = 'pending' AND "
                "next_at <= ?) OR (state = 'sending' AND lease_until < ?)) ORDER BY next_at, id "
                "LIMIT ?", (backend, now, now, limit))]
            for did in ids:
                cur = db.execute(
                    "UPDATE deliveries SET state = 'sending', lease_until = ? WHERE id = ? AND "
                    "((state = 'pending' AND next_at <= ?) OR (state = 'sending' AND "
                    "lease_until < ?))", (now + lease_seconds, did, now, now))
                if cur.rowcount:
                    claimed.append(did)
            rows = [db.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?",
                               (did,)).fetchone() for did in claimed]
        return [_row(r) for r in rows]

    def claim_id(self, delivery_id: int, lease_seconds: float) -> Delivery | None:
        """One pending delivery leased to the caller, due or not; None if not pending."""
        now = time.time()
        with self._db() as db:
            cur = db.execute("UPDATE deliveries SET state = 'sending', lease_until = ? "
                             "WHERE id = ? AND state = 'pending'", (now + lease_seconds,
                                                                    delivery_id))
            if not cur.rowcount:
                return None
            row = db.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?",
                             (delivery_id,)).fetchone()
        return _row(row)

    def mark_sent(self, delivery_id: int) -> None:
        with self._db() as db:
            db.execute("UPDATE deliveries SET state = 'sent', attempts = attempts + 1, "
                       "lease_until = NULL, last_error = NULL, sent_at = ? WHERE id = ?",
                       (datetime.now(UTC).isoformat(), delivery_id))

    def mark_attempt_failed(self, delivery_id: int, error: str, retry_at: float | None) -> None:
        """One more failed attempt: pending again at `retry_at`, or failed for good (None)."""
        with self._db() as db:
            if retry_at is None:
                db.execute("UPDATE deliveries SET state = 'failed', attempts = attempts + 1, "
                           "lease_until = NULL, last_error = ? WHERE id = ?",
                           (error[:2000], delivery_id))
            else:
                db.execute("UPDATE deliveries SET state = 'pending', attempts = attempts + 1, "
                           "lease_until = NULL, last_error = ?, next_at = ? WHERE id = ?",
                           (error[:2000], retry_at, delivery_id))

    def retry(self, delivery_id: int) -> Delivery | None:
        """A failed (or waiting) delivery due now with its attempts counted afresh; None when
        there is no such id. A sent one is left as it is (sent at most once)."""
        with self._db() as db:
            db.execute("UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?, "
                       "lease_until = NULL WHERE id = ? AND state IN ('failed', 'pending')",
                       (time.time(), delivery_id))
        return self.get(delivery_id)

    def get(self, delivery_id: int) -> Delivery | None:
        with self._db() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?",
                             (delivery_id,)).fetchone()
        return None if row is None else _row(row)

    def list(self, state: DeliveryState | None = None, limit: int = 200) -> list[Delivery]:
        """Newest first."""
        query = f"SELECT {_COLUMNS} FROM deliveries"
        args: tuple[Any, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state.value,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [_row(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """(backend, state) -> deliveries."""
        with self._db() as db:
            return {(b, s): n for b, s, n in db.execute(
                "SELECT backend, state, COUNT(*) FROM deliveries GROUP BY backend, state")}

    def unsettled(self, backend: str) -> int:
        """Deliveries of the backend due now or being sent (not those waiting to retry)."""
        with self._db() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE backend = ? AND (state = 'sending' OR "
                "(state = 'pending' AND next_at <= ?))", (backend, time.time())).fetchone()
        return int(row[0])

    def next_due(self, backend: str) -> float | None:
        """When the backend's next pending delivery (or expiring lease) is due."""
        with self._db() as db:
            row = db.execute(
                "SELECT MIN(CASE state WHEN 'pending' THEN next_at ELSE lease_until END) "
                "FROM deliveries WHERE backend = ? AND state IN ('pending', 'sending')",
                (backend,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

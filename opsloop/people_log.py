"""The people's log of each incident (opsloop.models.people), in the store's SQLite file.

Its own connection, like the leases: a person's acknowledgement is one short transaction
that reads the incident's events, checks the verb against the state they fold to, and
appends, so two people acknowledging at once get one acknowledgement and one clear refusal.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from opsloop.models.people import PeopleEvent, PeopleState, PeopleVerb, fold

_SCHEMA = """
CREATE TABLE IF NOT EXISTS people_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    verb TEXT NOT NULL,
    actor TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS people_events_incident ON people_events(incident_id, seq);
"""


class PeopleLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
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

    def events(self, incident_id: str) -> list[PeopleEvent]:
        with self._lock:
            return self._events(self._db(), incident_id)

    def state(self, incident_id: str) -> PeopleState:
        return fold(self.events(incident_id))

    def states(self, incident_ids: list[str]) -> dict[str, PeopleState]:
        """Each incident's state in one query (a listing must not ask once per row)."""
        if not incident_ids:
            return {}
        marks = ", ".join("?" for _ in incident_ids)
        with self._lock:
            rows = self._db().execute(
                "SELECT seq, incident_id, verb, actor, at, detail FROM people_events "
                f"WHERE incident_id IN ({marks}) ORDER BY seq", incident_ids).fetchall()
        by: dict[str, list[PeopleEvent]] = {i: [] for i in incident_ids}
        for row in rows:
            by[row[1]].append(_event(row))
        return {i: fold(events) for i, events in by.items()}

    def apply(self, incident_id: str, verb: PeopleVerb, actor: str, detail: str,
              check: Callable[[PeopleState], None],
              at: datetime | None = None) -> PeopleEvent:
        """Append one event if `check(state now)` does not raise; atomic against others."""
        when = (at or datetime.now(UTC)).astimezone(UTC)
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                check(fold(self._events(db, incident_id)))
                cur = db.execute(
                    "INSERT INTO people_events(incident_id, verb, actor, at, detail) "
                    "VALUES(?,?,?,?,?)",
                    (incident_id, verb.value, actor, when.isoformat(), detail))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return PeopleEvent(seq=int(cur.lastrowid or 0), incident_id=incident_id, verb=verb,
                           actor=actor, at=when, detail=detail)

    @staticmethod
    def _events(db: sqlite3.Connection, incident_id: str) -> list[PeopleEvent]:
        rows = db.execute(
            "SELECT seq, incident_id, verb, actor, at, detail FROM people_events "
            "WHERE incident_id=? ORDER BY seq", (incident_id,)).fetchall()
        return [_event(r) for r in rows]


def _event(row: tuple[int, str, str, str, str, str]) -> PeopleEvent:
    return PeopleEvent(seq=row[0], incident_id=row[1], verb=PeopleVerb(row[2]), actor=row[3],
                       at=datetime.fromisoformat(row[4]), detail=row[5])

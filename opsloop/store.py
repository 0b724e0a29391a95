"""The incident store: incidents, pending approvals, the audit log, the ledger of automatic
actions, sent notifications and the lease on each incident's run, in one SQLite file."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opsloop.agents.past_incident import PastIncident
from opsloop.models import (
    ActionStatus,
    Approval,
    ApprovalRequest,
    AuditRecord,
    DecisionOutcome,
    Incident,
)
from opsloop.people_log import PeopleLog
from opsloop.store_lease import LeaseHeld, LeaseKeeper, StoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    severity TEXT,
    opened_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    status TEXT NOT NULL,          -- pending | approve | modify | reject
    request TEXT NOT NULL,
    answer TEXT,
    created_at TEXT NOT NULL,
    decided_at TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_incident ON audit(incident_id);
CREATE TABLE IF NOT EXISTS incident_ids (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    issued_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_opened ON incidents(opened_at);
-- Automatic actions that ran, one row per idempotency key: the rate limits read this, not
-- every stored incident.
CREATE TABLE IF NOT EXISTS auto_actions (
    idempotency_key TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    environment TEXT NOT NULL,
    service TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS auto_actions_service ON auto_actions(environment, service, at);
-- What an incident has in common with others (a service, a root-cause category, a fix):
-- learn reads the incidents related to this one, not the whole history.
CREATE TABLE IF NOT EXISTS incident_keys (
    incident_id TEXT NOT NULL,
    key TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, key)
);
CREATE INDEX IF NOT EXISTS incident_keys_key ON incident_keys(key, opened_at);
-- Each incident as the improvement signals look back on it (agents/past_incident.py):
-- learning reads these small records, not whole incidents. A write of the body that does
-- not also write the record (an older opsloop) drops it, and the body is read instead.
CREATE TABLE IF NOT EXISTS incident_history (
    incident_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS incident_history_stale AFTER UPDATE OF body ON incidents
BEGIN
    DELETE FROM incident_history WHERE incident_id = NEW.id;
END;
-- Notifications by key: a replayed step never sends the same one twice.
CREATE TABLE IF NOT EXISTS notifications (
    key TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    at TEXT NOT NULL
);
"""


# 2: incident_keys and auto_actions filled for every stored incident; 3: incident_history too
_INDEXED_VERSION = 3
_FILL_BATCH = 200  # incidents per commit while filling a new index: other writers never wait long


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _utc(at: datetime) -> str:
    """One text form for every stored time, so SQL compares them in time order."""
    return at.astimezone(UTC).isoformat()


def _create_sqlite(path: Path) -> None:
    """A new database file appears whole: SQLite creates an empty file at connect and writes
    its header later, and a second process or thread opening it in between would take the
    0-byte file for a damaged one. Built aside and linked into place (another opener's wins)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    try:
        conn = sqlite3.connect(tmp)
        conn.execute("PRAGMA journal_mode=WAL")  # writes the header
        conn.close()
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def open_sqlite(path: Path, what: str) -> sqlite3.Connection:
    """A connection to an existing or new SQLite file; an empty or foreign file is an error
    naming the file (SQLite would silently treat a 0-byte file as a new, empty database)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise StoreError(f"{path}: the {what} must be a regular file")
    if path.exists() and path.stat().st_size == 0:
        raise StoreError(
            f"{path} is empty (0 bytes), so it is not the {what}: restore it from a backup, "
            f"or move it aside to start a new one")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_sqlite(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the {what}: {exc}") from exc
    return conn


def relation_keys(incident: Incident) -> set[str]:
    """The incident's services, root-cause category and succeeded fixes, as index keys."""
    keys = {f"service:{s}" for s in incident.services}
    if incident.root_cause is not None:
        keys.add(f"category:{incident.root_cause.category}")
    for case in incident.actions:
        if case.result is not None and case.result.status is ActionStatus.SUCCEEDED:
            keys.add(f"action:{case.action.type}")
    return keys


def _unreadable(incident_id: str, path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "(record)"
    return (f"incident {incident_id} in {path} cannot be read: {field}: {first.get('msg')} "
            f"(value {first.get('input')!r})")


class IncidentStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_sqlite(path, "incident store")
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{path}: not an opsloop incident store: {exc}") from exc
        self.leases = LeaseKeeper(path)
        self.people = PeopleLog(path)  # what people did with each incident (models.people)
        self._index_history()

    def _index_history(self) -> None:
        """Relation keys, the action ledger and past-incident records for incidents stored
        before the store kept them: once per store file (its user_version marks it done)."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version >= _INDEXED_VERSION:
            return
        if version < 2:
            for incident in self.incidents():
                self.save_incident(incident)
        else:
            self._fill_history_records()
        self._db.execute(f"PRAGMA user_version={_INDEXED_VERSION}")

    def _fill_history_records(self) -> None:
        """A past-incident record for every incident without one, read from its body in the
        same commit that writes the record (so a concurrent save is never undone)."""
        after = ""
        while True:
            with self._transaction():
                rows = self._db.execute(
                    "SELECT i.id, i.body FROM incidents i WHERE i.id > ? AND NOT EXISTS "
                    "(SELECT 1 FROM incident_history h WHERE h.incident_id = i.id) "
                    "ORDER BY i.id LIMIT ?", (after, _FILL_BATCH)).fetchall()
                records = []
                for incident_id, body in rows:
                    try:
                        incident = Incident.model_validate_json(body)
                    except ValidationError:
                        continue  # read from its body, and named by the listings, as before
                    records.append((incident_id, PastIncident.of(incident).to_json()))
                self._db.executemany("INSERT OR REPLACE INTO incident_history(incident_id, "
                                     "record) VALUES(?,?)", records)
            if len(rows) < _FILL_BATCH:
                return
            after = rows[-1][0]

    def close(self) -> None:
        self.leases.close()
        self.people.close()
        self._db.close()

    # incidents -----------------------------------------------------------------------------

    def next_incident_id(self) -> str:
        """A fresh id, unique across every process sharing this store (SQLite serialises
        the insert), including ids handed out but not yet saved."""
        cur = self._db.execute("INSERT INTO incident_ids(issued_at) VALUES(?)", (_now(),))
        return f"INC-{int(cur.lastrowid or 0):04d}"

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One commit for several writes: all of them land, or none."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def save_incident(self, incident: Incident) -> None:
        """The record with its indexes (action ledger, relation keys), in one commit."""
        with self._transaction():
            self._save(incident)

    def _save(self, incident: Incident) -> None:
        seq = int(incident.id.rsplit("-", 1)[-1]) if incident.id[-1:].isdigit() else 0
        self._db.execute(
            "INSERT INTO incidents(id, seq, status, severity, opened_at, body) "
            "VALUES(?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET status=excluded.status, "
            "severity=excluded.severity, body=excluded.body",
            (
                incident.id,
                seq,
                incident.status.value,
                incident.severity.value if incident.severity else None,
                _utc(incident.opened_at),
                incident.model_dump_json(),
            ),
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO auto_actions(idempotency_key, incident_id, environment, "
            "service, at) VALUES(?,?,?,?,?)",
            [
                (c.result.idempotency_key, incident.id, incident.environment, c.action.service,
                 _utc(c.result.at))
                for c in incident.actions
                if c.result is not None and c.decision is not None
                and c.decision.outcome is DecisionOutcome.AUTO
                and c.result.status is ActionStatus.SUCCEEDED and not c.result.replayed
            ],
        )
        self._db.execute("INSERT OR REPLACE INTO incident_history(incident_id, record) "
                         "VALUES(?,?)", (incident.id, PastIncident.of(incident).to_json()))
        self._db.execute("DELETE FROM incident_keys WHERE incident_id=?", (incident.id,))
        self._db.executemany(
            "INSERT OR IGNORE INTO incident_keys(incident_id, key, opened_at) VALUES(?,?,?)",
            [(incident.id, key, _utc(incident.opened_at)) for key in relation_keys(incident)])

    def related(self, incident: Incident, since: datetime) -> list[Incident]:
        """Stored incidents opened at or after `since` that share a service, a root-cause
        category or a fix with `incident` (itself excluded). The cost follows the related
        history, not the whole store."""
        found = []
        for _, _, body in self._related_rows(incident, since, "i.body"):
            try:
                found.append(Incident.model_validate_json(str(body)))
            except ValidationError:
                continue  # named by the listings; one bad row never stops learning
        return found

    def related_history(self, incident: Incident, since: datetime) -> list[PastIncident]:
        """`related`, as the small records the improvement signals compare an incident with:
        no whole incident is read unless its record is missing or outdated."""
        found = []
        for incident_id, record, body in self._related_rows(
                incident, since, "CASE WHEN h.record IS NULL THEN i.body END"):
            if record is not None:
                try:
                    found.append(PastIncident.from_json(record))
                    continue
                except ValueError:  # written by other code: read the incident itself
                    body = self._db.execute("SELECT body FROM incidents WHERE id=?",
                                            (incident_id,)).fetchone()[0]
            try:
                found.append(PastIncident.of(Incident.model_validate_json(str(body))))
            except ValidationError:
                continue  # named by the listings; one bad row never stops learning
        return found

    def _related_rows(self, incident: Incident, since: datetime,
                      body: str) -> list[tuple[str, str | None, str | None]]:
        """(id, past-incident record, `body` expression) of the related incidents, in id
        order, found through the relation keys' index."""
        keys = sorted(relation_keys(incident))
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        return self._db.execute(
            f"SELECT i.id, h.record, {body} FROM incidents i LEFT JOIN incident_history h "
            f"ON h.incident_id = i.id WHERE i.id IN (SELECT DISTINCT incident_id FROM "
            f"incident_keys WHERE key IN ({marks}) AND opened_at >= ?) AND i.id <> ? "
            f"ORDER BY i.seq, i.id", [*keys, _utc(since), incident.id]).fetchall()

    def get_incident(self, incident_id: str) -> Incident:
        row = self._db.execute("SELECT body FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            raise StoreError(f"no incident {incident_id!r}; `opsloop incidents` lists them")
        try:
            return Incident.model_validate_json(row[0])
        except ValidationError as exc:
            raise StoreError(_unreadable(incident_id, self.path, exc)) from None

    def incidents(self, problems: list[str] | None = None, *, since: datetime | None = None,
                  status: str | None = None, group_key: str | None = None) -> list[Incident]:
        """Stored incidents in id order (opened at or after `since`, in `status`, of the
        alert group or agent `group_key`: filtered in SQLite, only matches are parsed); a row
        that no longer validates is skipped and described in `problems`, never fatal to the
        rest."""
        query, args = "SELECT id, body FROM incidents", list[str]()
        where = []
        if since is not None:
            where.append("opened_at >= ?")
            args.append(_utc(since))
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if group_key is not None:
            where.append("json_valid(body) AND json_extract(body, '$.group_key') = ?")
            args.append(group_key)
        if where:
            query += " WHERE " + " AND ".join(where)
        found = []
        for incident_id, body in self._db.execute(query + " ORDER BY seq, id", args):
            try:
                found.append(Incident.model_validate_json(body))
            except ValidationError as exc:
                if problems is not None:
                    problems.append(_unreadable(incident_id, self.path, exc))
        return found

    def finished_since(self, since: datetime, severities: list[str]) -> list[tuple[str, datetime]]:
        """(id, opened_at) of incidents opened since `since` at these severities that are
        no longer open or waiting: read from the indexed columns, no record is parsed."""
        if not severities:
            return []
        marks = ", ".join("?" for _ in severities)
        rows = self._db.execute(
            f"SELECT id, opened_at FROM incidents WHERE opened_at >= ? AND severity IN ({marks})"
            " AND status NOT IN ('open', 'awaiting_approval') ORDER BY opened_at, id",
            [_utc(since), *severities])
        return [(str(i), datetime.fromisoformat(at)) for i, at in rows.fetchall()]

    def count_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM incidents GROUP BY status")
        return {str(status): int(n) for status, n in rows.fetchall()}

    def action_outcomes(self) -> dict[str, int]:
        """Every proposed action by where it ended: its result, else its policy decision."""
        rows = self._db.execute(
            "SELECT coalesce(json_extract(a.value, '$.result.status'),"
            " json_extract(a.value, '$.decision.outcome'), 'proposed'), count(*)"
            " FROM incidents, json_each(incidents.body, '$.actions') AS a"
            " WHERE json_valid(incidents.body) GROUP BY 1")  # a NaN parameter is not JSON
        return {str(outcome): int(n) for outcome, n in rows.fetchall()}

    def severities_not_in(self, statuses: Iterable[str]) -> list[tuple[str, str]]:
        """(id, severity) of triaged incidents in any status but these, in id order: read
        from the indexed columns, no record is parsed."""
        marks = list(statuses)
        unless = f" AND status NOT IN ({', '.join('?' for _ in marks)})" if marks else ""
        rows = self._db.execute(
            f"SELECT id, severity FROM incidents WHERE severity IS NOT NULL{unless} "
            "ORDER BY seq, id", marks)
        return [(str(i), str(sev)) for i, sev in rows.fetchall()]

    def unfinished(self) -> list[str]:
        """Ids of incidents a run may still owe work: open, or waiting for a human."""
        rows = self._db.execute(
            "SELECT id FROM incidents WHERE status IN ('open', 'awaiting_approval') "
            "ORDER BY seq, id").fetchall()
        return [r[0] for r in rows]

    def auto_actions_since(self, environment: str, service: str, since: datetime,
                           until: datetime, excluding: str) -> int:
        """Automatic actions that ran on `service` in `environment` in [since, until], in
        incidents other than `excluding` (the rate limits' question)."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM auto_actions WHERE environment=? AND service=? AND at>=? "
            "AND at<=? AND incident_id<>?",
            (environment, service, _utc(since), _utc(until), excluding),
        ).fetchone()
        return int(row[0])

    # notifications -------------------------------------------------------------------------

    def notice_state(self, key: str) -> str | None:
        """None: never sent; 'pending': recorded but its delivery was not confirmed (the
        process died in between); 'delivered'."""
        row = self._db.execute("SELECT delivered FROM notifications WHERE key=?",
                               (key,)).fetchone()
        if row is None:
            return None
        return "delivered" if row[0] else "pending"

    def notice_recorded(self, key: str, channel: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO notifications(key, channel, delivered, at) VALUES(?,?,0,?)",
            (key, channel, _now()))

    def notice_delivered(self, key: str) -> None:
        self._db.execute("UPDATE notifications SET delivered=1 WHERE key=?", (key,))

    # approvals -----------------------------------------------------------------------------

    def add_pending(self, request: ApprovalRequest) -> bool:
        """Record a waiting approval; re-recording the same request is a no-op (False)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO approvals(id, incident_id, status, request, created_at) "
            "VALUES(?,?,?,?,?)",
            (request.id, request.incident_id, "pending", request.model_dump_json(), _now()),
        )
        return cur.rowcount == 1

    def pending(self, problems: list[str] | None = None) -> list[ApprovalRequest]:
        rows = self._db.execute(
            "SELECT id, request FROM approvals WHERE status='pending' ORDER BY created_at, id"
        ).fetchall()
        found = []
        for approval_id, body in rows:
            try:
                found.append(ApprovalRequest.model_validate_json(body))
            except ValidationError as exc:
                if problems is not None:
                    problems.append(f"approval {approval_id} in {self.path} cannot be read: "
                                    f"{exc.errors()[0].get('msg')}")
        return found

    def get_request(self, approval_id: str) -> tuple[ApprovalRequest, str]:
        row = self._db.execute(
            "SELECT request, status FROM approvals WHERE id=?", (approval_id,)
        ).fetchone()
        if row is None:
            # People type the incident's id: name the approvals it is waiting on.
            theirs = [r.id for r in self.pending() if r.incident_id == approval_id]
            hint = (f"{approval_id} is an incident waiting on approval(s) {', '.join(theirs)}"
                    if theirs else "`opsloop approvals` lists those waiting")
            raise StoreError(f"no approval {approval_id!r}; {hint}")
        return ApprovalRequest.model_validate_json(row[0]), str(row[1])

    def claim(self, approval: Approval) -> ApprovalRequest:
        """Mark a pending approval decided, atomically: a second decision is refused."""
        cur = self._db.execute(
            "UPDATE approvals SET status=?, answer=?, decided_at=? WHERE id=? AND status='pending'",
            (approval.verdict.value, approval.model_dump_json(), _now(), approval.request_id),
        )
        request, status = self.get_request(approval.request_id)
        if cur.rowcount != 1:
            raise StoreError(f"approval {approval.request_id} was already decided ({status})")
        return request

    def answer(self, approval_id: str) -> Approval | None:
        """The recorded decision on an approval, if any."""
        row = self._db.execute("SELECT answer FROM approvals WHERE id=?", (approval_id,)).fetchone()
        return Approval.model_validate_json(row[0]) if row and row[0] else None

    def unclaim(self, approval_id: str) -> None:
        """Put a claimed approval back to pending when resuming the graph failed."""
        self._db.execute(
            "UPDATE approvals SET status='pending', answer=NULL, decided_at=NULL WHERE id=?",
            (approval_id,),
        )

    # audit ---------------------------------------------------------------------------------

    def audit(self, incident_id: str, actor: str, kind: str, detail: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO audit(at, incident_id, actor, kind, detail) VALUES(?,?,?,?,?)",
            (_now(), incident_id, actor, kind, json.dumps(detail, default=str, sort_keys=True)),
        )

    def audit_log(self, incident_id: str | None = None) -> list[AuditRecord]:
        query = "SELECT at, incident_id, actor, kind, detail FROM audit"
        args: tuple[str, ...] = ()
        if incident_id:
            query += " WHERE incident_id=?"
            args = (incident_id,)
        rows = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [
            AuditRecord(
                at=datetime.fromisoformat(r[0]),
                incident_id=r[1],
                actor=r[2],
                kind=r[3],
                detail=json.loads(r[4]),
            )
            for r in rows
        ]


__all__ = ["IncidentStore", "LeaseHeld", "StoreError", "open_sqlite"]

"""The incident store: incidents, pending approvals and the audit log in one SQLite file."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsloop.models import Approval, ApprovalRequest, AuditRecord, Incident

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
"""


class StoreError(Exception):
    """A request the store cannot satisfy (unknown id, already decided)."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class IncidentStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # incidents -----------------------------------------------------------------------------

    def next_incident_id(self) -> str:
        """A fresh id, unique across every process sharing this store (SQLite serialises
        the insert), including ids handed out but not yet saved."""
        cur = self._db.execute("INSERT INTO incident_ids(issued_at) VALUES(?)", (_now(),))
        return f"INC-{int(cur.lastrowid or 0):04d}"

    def save_incident(self, incident: Incident) -> None:
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
                incident.opened_at.isoformat(),
                incident.model_dump_json(),
            ),
        )

    def get_incident(self, incident_id: str) -> Incident:
        row = self._db.execute("SELECT body FROM incidents WHERE id=?", (incident_id,)).fetchone()
        if row is None:
            raise StoreError(f"no incident {incident_id!r}; `opsloop incidents` lists them")
        return Incident.model_validate_json(row[0])

    def incidents(self) -> list[Incident]:
        rows = self._db.execute("SELECT body FROM incidents ORDER BY seq").fetchall()
        return [Incident.model_validate_json(r[0]) for r in rows]

    # approvals -----------------------------------------------------------------------------

    def add_pending(self, request: ApprovalRequest) -> None:
        """Record a waiting approval; re-recording the same request is a no-op."""
        self._db.execute(
            "INSERT OR IGNORE INTO approvals(id, incident_id, status, request, created_at) "
            "VALUES(?,?,?,?,?)",
            (request.id, request.incident_id, "pending", request.model_dump_json(), _now()),
        )

    def pending(self) -> list[ApprovalRequest]:
        rows = self._db.execute(
            "SELECT request FROM approvals WHERE status='pending' ORDER BY created_at, id"
        ).fetchall()
        return [ApprovalRequest.model_validate_json(r[0]) for r in rows]

    def get_request(self, approval_id: str) -> tuple[ApprovalRequest, str]:
        row = self._db.execute(
            "SELECT request, status FROM approvals WHERE id=?", (approval_id,)
        ).fetchone()
        if row is None:
            raise StoreError(
                f"no approval {approval_id!r}; `opsloop approvals` lists those waiting"
            )
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

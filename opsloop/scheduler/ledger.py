"""Every scheduled run, recorded: claimed before it starts, finished with what it found.

`state/schedule.db`. A scheduled run is claimed by inserting (agent, due time): the unique
key makes a second claim for the same due time fail, in this process or another, so a run
is never doubled; a restart sees what was claimed and not finished and continues it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from opsloop.store import open_sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    due_at TEXT NOT NULL,
    trigger TEXT NOT NULL,            -- schedule | catch_up | manual | after_incident
    status TEXT NOT NULL,             -- running | succeeded | failed | awaiting_approval
    started_at TEXT NOT NULL,         -- production's clock
    ended_at TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    missed INTEGER NOT NULL DEFAULT 0, -- earlier due times this catch-up run stands for
    seconds REAL,                     -- wall time the run took
    summary TEXT NOT NULL DEFAULT '',
    findings TEXT NOT NULL DEFAULT '[]',
    proposals TEXT NOT NULL DEFAULT '[]',
    reports TEXT NOT NULL DEFAULT '[]',
    record_id TEXT,                   -- the change record, when it proposed
    error TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS agent_runs_due ON agent_runs(agent, due_at)
    WHERE trigger != 'manual';
CREATE INDEX IF NOT EXISTS agent_runs_agent ON agent_runs(agent, due_at);
CREATE TABLE IF NOT EXISTS agent_anchor (
    agent TEXT PRIMARY KEY,
    since TEXT NOT NULL               -- first time this agent was scheduled here
);
"""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


class AgentRun(BaseModel):
    run_id: str
    agent: str
    due_at: datetime
    trigger: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    host: str
    pid: int
    missed: int = 0
    seconds: float | None = None
    summary: str = ""
    findings: list[dict[str, Any]] = Field(default_factory=list)
    proposals: list[dict[str, Any]] = Field(default_factory=list)
    reports: list[str] = Field(default_factory=list)
    record_id: str | None = None
    error: str = ""


class RunLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = open_sqlite(path, "schedule ledger")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()  # one connection, shared by the scheduler's threads

    def close(self) -> None:
        self._db.close()

    def anchor(self, agent: str, now: datetime) -> datetime:
        """When this agent was first scheduled here: due times before it never ran here and
        are not owed."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO agent_anchor VALUES (?, ?)",
                             (agent, _iso(now)))
            row = self._db.execute("SELECT since FROM agent_anchor WHERE agent = ?",
                                   (agent,)).fetchone()
        return datetime.fromisoformat(row[0])

    def claim(self, run_id: str, agent: str, due_at: datetime, trigger: str,
              started_at: datetime, missed: int = 0) -> bool:
        """Record a run as started; False when that (agent, due time) was already claimed."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO agent_runs(run_id, agent, due_at, trigger, status, started_at,"
                    " host, pid, missed) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                    (run_id, agent, _iso(due_at), trigger, _iso(started_at),
                     socket.gethostname(), os.getpid(), missed))
            except sqlite3.IntegrityError:
                return False
        return True

    def finish(self, run_id: str, status: str, ended_at: datetime, seconds: float, *,
               summary: str = "", findings: list[dict[str, Any]] | None = None,
               proposals: list[dict[str, Any]] | None = None,
               reports: list[str] | None = None, record_id: str | None = None,
               error: str = "") -> None:
        with self._lock:
            self._db.execute(
                "UPDATE agent_runs SET status=?, ended_at=?, seconds=?, summary=?, findings=?,"
                " proposals=?, reports=?, record_id=?, error=? WHERE run_id=?",
                (status, _iso(ended_at), seconds, summary, json.dumps(findings or []),
                 json.dumps(proposals or []), json.dumps(reports or []), record_id,
                 error[:2000], run_id))

    def get(self, run_id: str) -> AgentRun | None:
        rows = self._select("WHERE run_id = ?", (run_id,))
        return rows[0] if rows else None

    def last_scheduled(self, agent: str) -> datetime | None:
        """The latest due time claimed for `agent` by its cron schedule (not by hand, not
        after an incident)."""
        with self._lock:
            row = self._db.execute(
                "SELECT max(due_at) FROM agent_runs WHERE agent = ?"
                " AND trigger IN ('schedule', 'catch_up')",
                (agent,)).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def history(self, agent: str | None = None, limit: int = 20) -> list[AgentRun]:
        """Newest first."""
        if agent is None:
            return self._select("ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))
        return self._select("WHERE agent = ? ORDER BY started_at DESC, rowid DESC LIMIT ?",
                            (agent, limit))

    def unfinished(self) -> list[AgentRun]:
        return self._select("WHERE status = 'running' ORDER BY started_at", ())

    def counts(self) -> dict[tuple[str, str], int]:
        """Runs by (agent, status), for /metrics."""
        with self._lock:
            rows = self._db.execute(
                "SELECT agent, status, count(*) FROM agent_runs GROUP BY agent, status"
            ).fetchall()
        return {(a, s): int(n) for a, s, n in rows}

    def seconds(self) -> dict[str, float]:
        """Wall seconds of finished runs, per agent, for /metrics."""
        with self._lock:
            rows = self._db.execute(
                "SELECT agent, coalesce(sum(seconds), 0) FROM agent_runs GROUP BY agent"
            ).fetchall()
        return {a: float(t) for a, t in rows}

    def _select(self, where: str, params: tuple[Any, ...]) -> list[AgentRun]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id, agent, due_at, trigger, status, started_at, ended_at, host, pid,"
                " missed, seconds, summary, findings, proposals, reports, record_id, error"
                f" FROM agent_runs {where}", params).fetchall()
        return [AgentRun(run_id=r[0], agent=r[1], due_at=r[2], trigger=r[3], status=r[4],
                         started_at=r[5], ended_at=r[6], host=r[7], pid=r[8], missed=r[9],
                         seconds=r[10], summary=r[11], findings=json.loads(r[12]),
                         proposals=json.loads(r[13]), reports=json.loads(r[14]),
                         record_id=r[15], error=r[16]) for r in rows]

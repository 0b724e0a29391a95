"""Learning reads the small past-incident records the store keeps beside each incident, and
they say exactly what the incidents say: the same signals, in the same words, from either."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from test_signals import NOW, incident

from opsloop import store as store_module
from opsloop.agents.past_incident import PastIncident
from opsloop.agents.signals import derive_signals
from opsloop.models import DecisionOutcome, Incident, IncidentStatus, Severity
from opsloop.store import IncidentStore

SINCE = NOW - timedelta(days=30)

# The incidents table as the first stores had it, before any index beside it.
_OLD_SCHEMA = """
CREATE TABLE incidents (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, status TEXT NOT NULL,
    severity TEXT, opened_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE incident_ids (seq INTEGER PRIMARY KEY AUTOINCREMENT, issued_at TEXT NOT NULL);
"""


def history() -> list[Incident]:
    """A month of varied incidents: other services, causes, fixes, approvals, no cause."""
    return [
        incident(1, days_ago=2),
        incident(2, days_ago=5, outcome=DecisionOutcome.NEEDS_APPROVAL),
        incident(3, days_ago=9, service="payments"),
        incident(4, days_ago=12, category=None, severity=None, title="x" * 300),
        incident(5, days_ago=20, action=None, status=IncidentStatus.ESCALATED),
        incident(6, days_ago=25, category="bad_deploy", severity=Severity.SEV1),
        incident(7, days_ago=40),  # outside the lookback
        incident(8, days_ago=3, service="search", category="disk_filling", action="scale"),
    ]


def test_stored_records_raise_the_same_signals_as_the_whole_incidents(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "opsloop.db")
    for past in history():
        store.save_incident(past)
    current = incident(9, days_ago=0.1)
    whole = store.related(current, SINCE)
    records = store.related_history(current, SINCE)
    assert [r.id for r in records] == [i.id for i in whole] and len(records) >= 5
    assert records == [PastIncident.of(i) for i in whole]
    signals = derive_signals(current, records, NOW)
    assert {"repeated_incidents", "recurring_fix", "toil"} <= {s.kind for s in signals}
    assert signals == derive_signals(current, whole, NOW)


def test_a_body_written_without_its_record_is_read_from_the_body(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "opsloop.db")
    past = incident(1, days_ago=2)
    store.save_incident(past)
    current = incident(9, days_ago=0.1)
    # An older opsloop sharing the file saves the incident without touching the record.
    changed = past.model_copy(update={"status": IncidentStatus.ESCALATED, "title": "changed"})
    with sqlite3.connect(tmp_path / "opsloop.db") as db:
        db.execute("UPDATE incidents SET body=? WHERE id=?",
                   (changed.model_dump_json(), past.id))
    assert store.related_history(current, SINCE) == [PastIncident.of(changed)]
    # A record another version wrote is not read as this one.
    store.save_incident(past)
    with sqlite3.connect(tmp_path / "opsloop.db") as db:
        db.execute("UPDATE incident_history SET record='{\"v\": 99}' WHERE incident_id=?",
                   (past.id,))
    assert store.related_history(current, SINCE) == [PastIncident.of(past)]


def _old_store(path: Path, incidents: list[Incident], unreadable: int = 0) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(_OLD_SCHEMA)
        for n, past in enumerate(incidents):
            db.execute("INSERT INTO incidents VALUES(?,?,?,?,?,?)",
                       (past.id, n, past.status.value, None, past.opened_at.isoformat(),
                        past.model_dump_json()))
        for n in range(unreadable):
            db.execute("INSERT INTO incidents VALUES(?,?,?,?,?,?)",
                       (f"INC-BAD{n}", 100 + n, "open", None, NOW.isoformat(), "{}"))


def test_an_old_store_is_upgraded_in_place_once(tmp_path: Path) -> None:
    path = tmp_path / "opsloop.db"
    _old_store(path, history(), unreadable=1)
    current = incident(9, days_ago=0.1)
    upgraded = IncidentStore(path)
    # Everything in the lookback that shares checkout, a memory leak or a restart with it.
    want = [PastIncident.of(i) for i in history()
            if i.id in {"INC-1", "INC-2", "INC-3", "INC-4", "INC-5", "INC-6"}]
    assert upgraded.related_history(current, SINCE) == want
    upgraded.close()
    again = IncidentStore(path)  # opening an upgraded store again changes nothing
    assert again.related_history(current, SINCE) == want
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == store_module._INDEXED_VERSION
        assert db.execute("SELECT count(*) FROM incident_history").fetchone()[0] == len(
            history())


def test_a_store_indexed_before_the_records_gets_them_in_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "opsloop.db"
    first = IncidentStore(path)
    for past in history():
        first.save_incident(past)
    first.close()
    with sqlite3.connect(path) as db:  # as the store was before it kept the records
        db.executescript("DROP TRIGGER incident_history_stale; DROP TABLE incident_history;"
                         "PRAGMA user_version=2;")
        db.execute("INSERT INTO incidents VALUES('INC-BAD', 999, 'open', NULL, ?, '{}')",
                   (NOW.isoformat(),))
    monkeypatch.setattr(store_module, "_FILL_BATCH", 3)
    upgraded = IncidentStore(path)
    with sqlite3.connect(path) as db:
        stored = dict(db.execute("SELECT incident_id, record FROM incident_history"))
    assert {k: PastIncident.from_json(v) for k, v in stored.items()} == {
        i.id: PastIncident.of(i) for i in history()}
    current = incident(9, days_ago=0.1)
    assert upgraded.related_history(current, SINCE) == [
        PastIncident.of(i) for i in upgraded.related(current, SINCE)]


def test_open_severities_come_from_the_columns_and_match_the_records(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "opsloop.db")
    for past in history():
        store.save_incident(past)
    closed = {IncidentStatus.MITIGATED, IncidentStatus.REJECTED, IncidentStatus.RESOLVED}
    expected = [(i.id, i.severity.value) for i in store.incidents()
                if i.status not in closed and i.severity is not None]
    assert store.severities_not_in(closed) == expected
    assert len(store.severities_not_in([])) == sum(
        1 for i in store.incidents() if i.severity is not None)


def test_incidents_of_one_group_are_filtered_in_sqlite(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "opsloop.db")
    past = history()
    past[1] = past[1].model_copy(update={"group_key": "agent:resilience"})
    for one in past:
        store.save_incident(one)
    assert [i.id for i in store.incidents(group_key="agent:resilience")] == [past[1].id]
    assert store.incidents(group_key="agent:nobody") == []

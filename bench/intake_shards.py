"""Probe for a design decision: would intake sharded over processes reach Alertmanager's rate?

`opsloop serve` takes a notification in on one core (the interpreter lock), and its CPU per
alert is already close to Alertmanager's (bench/alert_storm.py prints both). This probe
measures the one thing a multi-process intake depends on: whether parsing a notification
(opsloop's own `parse_webhook`: JSON, validation, fingerprints) and writing its alerts
durably (one SQLite transaction per notification, WAL, synchronous=FULL, upserts by group
and fingerprint) scale when N processes share one SQLite file.

It leaves out HTTP and the grouping rules (deduplication, silences, inhibition), which a
sharded design would also run inside each write transaction: the rates are an upper bound
for that design, not a prediction of it.

    .venv/bin/python bench/intake_shards.py [--alerts 100000] [--batch 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alert_storm import storm, webhook_bodies
from rich.console import Console
from rich.table import Table

from opsloop.alertmanager import PayloadLimits, parse_webhook
from opsloop.models import Anomaly

_SERIALIZER = Anomaly.__pydantic_serializer__
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (group_key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (group_key, fingerprint));
CREATE TABLE IF NOT EXISTS groups (key TEXT PRIMARY KEY, alerts INTEGER NOT NULL);
"""
_GROUP = '{env="prod"}'


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def shard(path: Path, bodies: list[bytes], out: Any) -> None:
    """One process: parse each notification, then write its alerts in one transaction."""
    db = connect(path)
    limits = PayloadLimits(max_body_bytes=64 * 1024 * 1024)
    cpu, locked = time.process_time(), 0.0
    for raw in bodies:
        batch = parse_webhook(raw, datetime.now(UTC), limits)
        rows = [(_GROUP, a.fingerprint, a.status.value, _SERIALIZER.to_json(a).decode())
                for a in batch.anomalies]
        started = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?) ON CONFLICT (group_key, "
                       "fingerprint) DO UPDATE SET status=excluded.status, body=excluded.body",
                       rows)
        db.execute("INSERT INTO groups VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                   "alerts=alerts+excluded.alerts", (_GROUP, len(rows)))
        db.execute("COMMIT")
        locked += time.perf_counter() - started
    db.close()
    out.put((time.process_time() - cpu, locked))


def run(processes: int, where: Path, bodies: list[bytes], alerts: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        path = Path(tmp) / "intake.db"
        with connect(path) as db:
            db.executescript(_SCHEMA)
        results: Any = mp.Queue()
        workers = [mp.Process(target=shard, args=(path, bodies[i::processes], results))
                   for i in range(processes)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        done = [results.get() for _ in workers]
        for w in workers:
            w.join()
        seconds = time.perf_counter() - started
        if any(w.exitcode != 0 for w in workers):
            raise SystemExit(f"a shard process failed: exit codes {[w.exitcode for w in workers]}")
        db = connect(path)
        stored = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        db.close()
    if stored != alerts:
        raise SystemExit(f"{stored} alerts stored, expected {alerts}")
    return {"where": str(where), "processes": processes, "alerts_per_second": alerts / seconds,
            "cpu_seconds": sum(c for c, _ in done),
            "write_lock_seconds": sum(w for _, w in done), "stored": stored}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    mp.set_start_method("fork")
    bodies = webhook_bodies(storm(args.alerts, args.services), args.batch)
    places = [p for p in (Path("/dev/shm"), Path(tempfile.gettempdir())) if p.is_dir()]
    rows = [run(n, where, bodies, args.alerts) for where in places for n in (1, 2, 3)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"parse + durable write, {args.alerts:,} alerts in batches of "
                        f"{args.batch}, processes sharing one SQLite file")
    for column in ("state in", "processes", "alerts/s", "CPU s", "in write lock s"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["where"], str(r["processes"]), f"{r['alerts_per_second']:,.0f}",
                      f"{r['cpu_seconds']:.2f}", f"{r['write_lock_seconds']:.2f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Probe for a design decision: would intake sharded over processes reach Alertmanager's rate?

`opsloop serve` takes a notification in on one core (the interpreter lock), and its CPU per
alert is already close to Alertmanager's (bench/alert_storm.py prints both). This probe
measures the one thing a multi-process intake depends on: whether parsing a notification
(opsloop's own `parse_webhook`: JSON, validation, fingerprints) and writing its alerts
durably (one SQLite transaction per notification, WAL, synchronous=FULL, upserts by group
and fingerprint) scale when N processes share one SQLite file.

In-process mode leaves out HTTP. `--http` serves the same work from 1 and 2 pre-forked
uvicorn processes accepting on one socket, posts the storm with bench/alert_storm.py's
senders, and runs Alertmanager's own API in the same run for the ratio. Both modes leave out
the grouping rules (silences, inhibition, group flushes) that a sharded design would also run
in each write transaction, but keep deduplication in the upsert (an unchanged alert is not
rewritten): the rates are an upper bound for that design, not a prediction of it.

    .venv/bin/python bench/intake_shards.py [--alerts 100000] [--batch 1000] [--http] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from alert_storm import (
    bench_alertmanager,
    cpu_seconds,
    post_all,
    storm,
    wait_ready,
    webhook_bodies,
)
from rich.console import Console
from rich.table import Table

from opsloop.alertmanager import PayloadLimits, parse_webhook
from opsloop.api.server import listen
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


_LIMITS = PayloadLimits(max_body_bytes=64 * 1024 * 1024)


def take_in(db: sqlite3.Connection, raw: bytes) -> tuple[int, float]:
    """Parse one notification and write its alerts in one transaction: (alerts, seconds
    holding the write lock). An alert equal to the stored one is not rewritten."""
    batch = parse_webhook(raw, datetime.now(UTC), _LIMITS)
    rows = [(_GROUP, a.fingerprint, a.status.value, _SERIALIZER.to_json(a).decode())
            for a in batch.anomalies]
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?) ON CONFLICT (group_key, "
                   "fingerprint) DO UPDATE SET status=excluded.status, body=excluded.body "
                   "WHERE body != excluded.body", rows)
    db.execute("INSERT INTO groups VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
               "alerts=alerts+excluded.alerts", (_GROUP, len(rows)))
    db.execute("COMMIT")
    return len(rows), time.perf_counter() - started


def shard(path: Path, bodies: list[bytes], out: Any) -> None:
    """One process: each notification in turn."""
    db = connect(path)
    cpu, locked = time.process_time(), 0.0
    for raw in bodies:
        locked += take_in(db, raw)[1]
    db.close()
    out.put((time.process_time() - cpu, locked))


def serve_shard(path: Path, sock: socket.socket) -> None:
    """One pre-forked HTTP process accepting on the shared socket (uvicorn, as `serve`)."""
    db = connect(path)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        answer = b'{"ready": true}'
        if scope["method"] == "POST":
            taken, _ = take_in(db, b"".join(chunks))
            answer = json.dumps({"accepted": taken}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    config = uvicorn.Config(app, log_level="error", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def shared_file(where: Path, alerts: int) -> Iterator[Path]:
    """A fresh SQLite file under `where` for the shards; on leaving, every alert must be in
    it (SystemExit otherwise)."""
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        path = Path(tmp) / "intake.db"
        with connect(path) as db:
            db.executescript(_SCHEMA)
        yield path
        db = connect(path)
        stored = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        db.close()
    if stored != alerts:
        raise SystemExit(f"{stored} alerts stored, expected {alerts}")


def run_http(processes: int, where: Path, bodies: list[bytes], alerts: int,
             senders: int) -> dict[str, Any]:
    with shared_file(where, alerts) as path:
        sock = listen("127.0.0.1", 0)
        port = sock.getsockname()[1]
        workers = [mp.Process(target=serve_shard, args=(path, sock)) for _ in range(processes)]
        for w in workers:
            w.start()
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{base}/", _Alive(workers))  # type: ignore[arg-type]
            before = sum(cpu_seconds(w.pid) for w in workers if w.pid is not None)
            seconds = post_all(f"{base}/alerts", bodies, {}, senders)
            cpu = sum(cpu_seconds(w.pid) for w in workers if w.pid is not None) - before
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.join(timeout=30)
            sock.close()
    return {"where": str(where), "processes": processes, "alerts_per_second": alerts / seconds,
            "cpu_seconds": cpu}


class _Alive:
    """What wait_ready asks of a process: `poll()`, None while every worker runs."""

    def __init__(self, workers: list[mp.Process]) -> None:
        self.workers = workers
        self.returncode: int | None = None

    def poll(self) -> int | None:
        for w in self.workers:
            if w.exitcode is not None:
                self.returncode = w.exitcode
                return w.exitcode
        return None


def run(processes: int, where: Path, bodies: list[bytes], alerts: int) -> dict[str, Any]:
    with shared_file(where, alerts) as path:
        results: Any = mp.Queue()
        workers = [mp.Process(target=shard, args=(path, bodies[i::processes], results))
                   for i in range(processes)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        done = [results.get(timeout=600) for _ in workers]  # a dead shard fails, not hangs
        for w in workers:
            w.join()
        seconds = time.perf_counter() - started
        if any(w.exitcode != 0 for w in workers):
            raise SystemExit(f"a shard process failed: exit codes {[w.exitcode for w in workers]}")
    return {"where": str(where), "processes": processes, "alerts_per_second": alerts / seconds,
            "cpu_seconds": sum(c for c, _ in done),
            "write_lock_seconds": sum(w for _, w in done)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--services", type=int, default=40)
    parser.add_argument("--senders", type=int, default=4, help="parallel connections (--http)")
    parser.add_argument("--http", action="store_true",
                        help="serve over HTTP from pre-forked processes, against Alertmanager")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    mp.set_start_method("fork")
    alerts = storm(args.alerts, args.services)
    bodies = webhook_bodies(alerts, args.batch)
    places = [p for p in (Path("/dev/shm"), Path(tempfile.gettempdir())) if p.is_dir()]
    if args.http:
        rows = [run_http(n, where, bodies, args.alerts, args.senders)
                for where in places for n in (1, 2)]
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary:
            with tempfile.TemporaryDirectory() as tmp:
                am = bench_alertmanager(alerts, args, Path(tmp), binary)
            rows.append({"where": "alertmanager (in memory)", "processes": 1,
                         "alerts_per_second": am["alerts_per_second"],
                         "cpu_seconds": am["cpu_seconds"]})
            for r in rows:
                r["ratio_to_alertmanager"] = r["alerts_per_second"] / am["alerts_per_second"]
    else:
        rows = [run(n, where, bodies, args.alerts) for where in places for n in (1, 2, 3)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    what = "HTTP + parse + durable write" if args.http else "parse + durable write"
    table = Table(title=f"{what}, {args.alerts:,} alerts in batches of "
                        f"{args.batch}, processes sharing one SQLite file")
    extra = "/ alertmanager" if args.http else "in write lock s"
    for column in ("state in", "processes", "alerts/s", "CPU s", extra):
        table.add_column(column)
    for r in rows:
        last = (f"{r['ratio_to_alertmanager']:.2f}" if "ratio_to_alertmanager" in r
                else f"{r['write_lock_seconds']:.2f}" if "write_lock_seconds" in r else "")
        table.add_row(r["where"], str(r["processes"]), f"{r['alerts_per_second']:,.0f}",
                      f"{r['cpu_seconds']:.2f}", last)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""log_classes throughput: lines mined (drain3) and classified per second.

The offline reasoner runs `log_classes` (and `callers_report`, which mines each caller) inside
a diagnosis, so mining must stay fast. The lines are a seeded mix in the shapes real services
write (access lines, upstream timeouts and 503s, x509 and DNS errors, pool exhaustion, GC
warnings) with varying ids, hosts and durations, spread over two hours and a quarter. Each
round mines the same lines cold (the per-call template cache is cleared first).

    .venv/bin/python bench/log_templates.py [--lines 10000] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from opsloop.models import LogLine, ServiceInfo
from opsloop.tools import log_templates
from opsloop.tools.toolbox import Toolbox

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHAPES = (
    ("INFO", "GET /product/{id} 200 {ms}ms"),
    ("INFO", "order {id} submitted in {ms}ms"),
    ("INFO", "route /api/v1/search -> search 200 in {ms}ms"),
    ("ERROR", "upstream payments timeout after {ms}ms (region primary)"),
    ("ERROR", "upstream checkout returned 503 Service Unavailable"),
    ("ERROR", "token introspection failed: Post \"https://authz.internal:8443/v1/x\": "
              "x509: certificate has expired or is not yet valid"),
    ("ERROR", "dial tcp: lookup api-{id}.vendor.example on 10.0.0.{n}:53: no such host"),
    ("ERROR", "connection pool exhausted: timeout waiting for connection (max 20, waiting {n})"),
    ("WARN", "GC overhead high: full GC paused {ms}ms, heap usage {n}% of 1024MB"),
    ("WARN", "retrying request {id} (attempt {n}) after backoff"),
)


class Lines:
    """One service whose log holds `count` lines over the last 135 minutes."""

    def __init__(self, count: int) -> None:
        rng = random.Random(7)
        span = 135 * 60
        self.lines = []
        for i in range(count):
            level, shape = SHAPES[rng.randrange(len(SHAPES))]
            message = shape.format(id=rng.randint(10_000, 99_999), ms=rng.randint(3, 3000),
                                   n=rng.randint(1, 250))
            at = NOW - timedelta(seconds=span * (count - i) / count)
            self.lines.append(LogLine(at=at, service="api", level=level, message=message))

    def now(self) -> datetime:
        return NOW

    def services(self) -> list[ServiceInfo]:
        return [ServiceInfo(name=name, tier=1, replicas=2, version="1")
                for name in ("api", "authz", "payments", "checkout", "search")]

    def logs(self, service: str, minutes: int, pattern: str | None = None,
             limit: int = 200) -> list[LogLine]:
        since = NOW - timedelta(minutes=minutes)
        return [ln for ln in self.lines if ln.at > since][-limit:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    telemetry = Lines(args.lines)
    seconds = []
    data = {}
    for _ in range(args.rounds):
        log_templates.mine.cache_clear()
        log_templates.classify.cache_clear()
        started = time.perf_counter()
        result = Toolbox(telemetry, clock=telemetry).call("log_classes", service="api")
        seconds.append(time.perf_counter() - started)
        data = result.data
    best, median = min(seconds), statistics.median(seconds)
    report = {"lines": args.lines, "rounds": args.rounds, "best_seconds": round(best, 4),
              "median_seconds": round(median, 4),
              "lines_per_second": round(args.lines / median),
              "templates": len(data["templates"]), "top": data["top"]}
    if args.json:
        print(json.dumps(report))
        return
    print(f"log_classes over {args.lines} lines: median {median * 1000:.0f} ms "
          f"(best {best * 1000:.0f} ms) = {report['lines_per_second']:,} lines/s; "
          f"top class {data['top']}, {len(data['templates'])} templates shown")


if __name__ == "__main__":
    main()

"""Log lines an operator would see, written from the physical state of each minute.

Nothing here looks at the scenario name: a symptom line appears because memory is high,
the disk is full, a callee is failing, or the running version throws.
"""

from __future__ import annotations

import random

from opsloop.simulator.reading import Reading
from opsloop.simulator.state import ServiceState, SimState

INFO_RATE = 0.4  # chance of one routine INFO line per service per minute
ERRORS_PER_UNIT_RATIO = 40  # expected ERROR lines per minute at 100% errors, before the cap
MAX_ERROR_LINES = 12

_PORTS = {"redis": 6379, "postgres": 5432}

_ROUTINE: dict[str, tuple[str, ...]] = {
    "web": ("GET /product/{id} 200 {ms}ms", "GET / 200 {ms}ms", "GET /cart 200 {ms}ms"),
    "api-gateway": (
        "route /api/v1/search -> search 200 in {ms}ms",
        "route /api/v1/checkout -> checkout 200 in {ms}ms",
        "route /api/v1/recommendations -> recommendations 200 in {ms}ms",
    ),
    "checkout": ("order {id} submitted in {ms}ms", "cart {id} priced in {ms}ms"),
    "payments": ("charge {id} authorized via payments-provider ({region}) in {ms}ms",),
    "inventory": ("reserved {n} units sku={id} in {ms}ms", "stock sync batch of {n} items done"),
    "search": ("query terms={n} hits={id} in {ms}ms", "index segment merge finished ({n} docs)"),
    "recommendations": ("scored {n} candidates for user {id} in {ms}ms",),
    "postgres": ("checkpoint complete: wrote {n} buffers", "automatic vacuum of table orders"),
    "redis": ("{n} changes in 60 seconds. Saving...", "DB saved on disk"),
}


def _routine(svc: ServiceState, reading: Reading, rng: random.Random) -> str:
    template = rng.choice(_ROUTINE.get(svc.name, ("request handled in {ms}ms",)))
    return template.format(
        id=rng.randint(10_000, 99_999),
        ms=max(1, round(reading.p50)),
        n=rng.randint(2, 900),
        region=svc.region,
    )


def _own_error(state: SimState, svc: ServiceState, cause: str, r: Reading) -> str:
    if cause == "defect":
        exc = svc.behaviour().exception or f"NullPointerException in {svc.entrypoint}"
        return f"{exc} (version {svc.version})"
    if cause.startswith("flag:"):
        return f"{svc.domain_error} evaluating flag {cause[5:]}=on: request failed for cohort"
    if cause == "outage":
        dep = svc.external_dependency or f"{svc.name}-backend"
        return (
            f"upstream {dep} timeout after 3000ms (region {svc.region})"
            if state.tick % 2
            else f"connection refused: {dep}.{svc.region}.example.net:443"
        )
    if cause == "primary_down":
        port = _PORTS.get(svc.name, 8080)
        return f"connection refused: {svc.name}-0:{port} (primary unreachable)"
    if cause == "oom":
        return "java.lang.OutOfMemoryError: Java heap space"
    if cause == "bad_instance":
        return f"[{svc.bad_instance}] request failed: I/O error on node-local volume (EIO)"
    if cause == "overload":
        return (
            f"503 Service Unavailable: request shed, too many in-flight requests "
            f"(saturation {r.saturation:.2f})"
        )
    if cause == "gc":
        return f"request aborted after GC pause of {round(200 + r.memory * 1500)}ms"
    if cause == "disk_full":
        return f"write failed: No space left on device (/var/lib/{svc.name})"
    return f"{svc.domain_error}: request failed: connection reset by client"


def _upstream_error(state: SimState, callee: str, done: dict[str, Reading]) -> str:
    target = state.services[callee]
    reading = done[callee]
    dominant = max(reading.causes, key=lambda c: reading.causes[c]) if reading.causes else ""
    if dominant == "primary_down":
        return (
            f"{callee} connection refused: {callee}-0:{_PORTS.get(callee, 8080)} "
            f"(cache miss, falling back to database)"
        )
    if reading.p99 > 1000:
        return f"upstream {callee} timeout after {min(round(reading.p99), 3000)}ms"
    if dominant == "outage" and target.external_dependency:
        return f"upstream {callee} returned 502: {target.external_dependency} unavailable"
    return f"upstream {callee} returned 503 Service Unavailable"


def _warnings(state: SimState, svc: ServiceState, r: Reading, rng: random.Random) -> None:
    if r.oom_instance:
        state.log(svc.name, "ERROR", "java.lang.OutOfMemoryError: Java heap space")
        state.log(
            svc.name,
            "WARN",
            f"container {r.oom_instance} OOMKilled (exit code 137); restarting "
            f"(restart count {svc.oom_kills})",
        )
    if r.memory > 0.85 and rng.random() < 0.5:
        state.log(
            svc.name,
            "WARN",
            f"GC overhead high: full GC paused {round(150 + r.memory * 900)}ms, "
            f"heap usage {r.memory:.0%} of {svc.memory_limit_mb}MB",
        )
    if r.disk > 0.9 and state.tick % 5 == 0:
        state.log(svc.name, "WARN", f"disk usage above 90% on /var/lib/{svc.name} ({r.disk:.1%})")
    elif r.disk > 0.8 and state.tick % 15 == 0:
        state.log(svc.name, "WARN", f"disk usage above 80% on /var/lib/{svc.name} ({r.disk:.1%})")
    if r.latency_ratio > 2.0 and rng.random() < 0.6:
        if svc.name == "postgres":
            state.log(
                svc.name,
                "WARN",
                f"slow query: duration: {round(r.p99)} ms statement: SELECT * FROM orders",
            )
        else:
            state.log(
                svc.name,
                "WARN",
                f"slow request: {svc.entrypoint} took {round(r.p99)}ms "
                f"(p99 baseline {round(svc.latency_p99_ms)}ms)",
            )
    if r.saturation > 0.85 and rng.random() < 0.5:
        state.log(
            svc.name,
            "WARN",
            f"request queue depth high: saturation {r.saturation:.0%} with {r.replicas} replicas",
        )


def emit(
    state: SimState, svc: ServiceState, r: Reading, done: dict[str, Reading], rng: random.Random
) -> None:
    """Write this minute's log lines for one service."""
    if rng.random() < INFO_RATE:
        state.log(svc.name, "INFO", _routine(svc, r, rng))
    _warnings(state, svc, r, rng)
    count = min(int(r.error * ERRORS_PER_UNIT_RATIO + rng.random()), MAX_ERROR_LINES)
    if count == 0:
        return
    sources = [*r.causes, *(f"up:{c}" for c in r.upstream)]
    weights = [*r.causes.values(), *r.upstream.values()]
    if sum(weights) <= 0:
        return
    for source in rng.choices(sources, weights=weights, k=count):
        if source.startswith("up:"):
            message = _upstream_error(state, source[3:], done)
        else:
            message = _own_error(state, svc, source, r)
        state.log(svc.name, "ERROR", message)

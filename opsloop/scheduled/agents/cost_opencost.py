"""Spend from OpenCost's allocation API: its `/allocation` response, from files or a URL,
as the same charges the cost agent reads from FOCUS rows, plus requested-vs-used CPU.

The shape (opencost core/pkg/opencost allocation_json.go, AllocationJSON): `{"code": 200,
"data": [{"<name>": allocation, ...}, ...]}`, one object per step. An allocation has `name`,
`properties` (cluster, namespace, controller, controllerKind, pod, container, labels, ...),
`window` {start, end}, `start`, `end` (RFC 3339), the costs `cpuCost`, `gpuCost`, `ramCost`,
`pvCost`, `networkCost`, `loadBalancerCost`, `sharedCost`, `externalCost`, `totalCost`, and
`cpuCoreRequestAverage`, `cpuCoreUsageAverage`, `ramByteRequestAverage`,
`ramByteUsageAverage`. OpenCost writes null for a value it could not compute (NaN): read as
absent.

Each allocation becomes one charge per non-zero cost component (usage type `k8s-cpu`,
`k8s-ram`, ...; what totalCost holds beyond them, OpenCost's adjustments, is
`k8s-adjustment`), over its own `start`..`end` (else its `window`). The service is the
property capacity.yaml's `cost.opencost.service_from` names (namespace, controller or
label:<name>), renamed through `cost.opencost.services`; the region is the cluster.

A bad allocation is named by file, its position in the file (1-based), field and value, and
left out; the rest is kept. The URL is queried only when capacity.yaml sets
`cost.opencost.url` (offline by default): `GET <url>/allocation?window=<start>,<end>&step=1h
&aggregate=<service_from>`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from opsloop.policy.schema.capacity import OpenCostSource
from opsloop.scheduled.agents.cost_focus import Charge, Problem, parse_time

COMPONENTS = (("cpuCost", "k8s-cpu"), ("gpuCost", "k8s-gpu"), ("ramCost", "k8s-ram"),
              ("pvCost", "k8s-pv"), ("networkCost", "k8s-network"),
              ("loadBalancerCost", "k8s-load-balancer"), ("sharedCost", "k8s-shared"),
              ("externalCost", "k8s-external"))
USAGE = ("cpuCoreRequestAverage", "cpuCoreUsageAverage", "ramByteRequestAverage",
         "ramByteUsageAverage")
ADJUSTMENT = "k8s-adjustment"
CURRENCY = "USD"  # OpenCost prices in its configured currency; USD unless configured


@dataclass(frozen=True)
class Requested:
    """What one allocation requested and used, averaged over its period."""

    service: str
    start: datetime
    end: datetime
    cpu_request: float | None
    cpu_usage: float | None
    ram_request: float | None
    ram_usage: float | None


@dataclass
class Allocations:
    charges: list[Charge]
    requested: list[Requested]
    problems: list[Problem]


def _number(alloc: dict[str, Any], field: str, required: bool = False) -> float | None:
    value = alloc.get(field)
    if value is None:
        if required:
            raise _Bad(field, value, "required and missing (or null)")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(field, value, "not a finite number")
    return float(value)


class _Bad(Exception):
    def __init__(self, field: str, value: Any, problem: str) -> None:
        super().__init__(problem)
        self.field, self.value, self.problem = field, value, problem


def _service(alloc: dict[str, Any], key: str, source: OpenCostSource) -> str:
    props = alloc.get("properties") or {}
    if not isinstance(props, dict):
        raise _Bad("properties", props, "not an object")
    if source.service_from.startswith("label:"):
        labels = props.get("labels") or {}
        value = labels.get(source.service_from[6:]) if isinstance(labels, dict) else None
    else:
        value = props.get(source.service_from)
    # Aggregated by the same property, OpenCost names the allocation after its value.
    value = value or alloc.get("name") or key
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"properties.{source.service_from}", value, "no service name")
    return source.services.get(value, value)


def _period(alloc: dict[str, Any]) -> tuple[datetime, datetime]:
    given = alloc.get("window")
    window: dict[str, Any] = given if isinstance(given, dict) else {}
    times = []
    for field in ("start", "end"):
        value = alloc.get(field) or window.get(field)
        where = field if alloc.get(field) else f"window.{field}"
        if not isinstance(value, str):
            raise _Bad(where, value, "required: an RFC 3339 UTC date-time")
        try:
            times.append(parse_time(value))
        except ValueError as exc:
            raise _Bad(where, value, f"not an RFC 3339 UTC date-time ({exc})") from None
    if times[1] <= times[0]:
        raise _Bad("end", alloc.get("end") or window.get("end"), "not after start")
    return times[0], times[1]


def _one(key: str, alloc: Any, source: OpenCostSource) -> tuple[list[Charge], Requested]:
    if not isinstance(alloc, dict):
        raise _Bad("", alloc, "an allocation must be an object")
    start, end = _period(alloc)
    service = _service(alloc, key, source)
    props = alloc.get("properties") or {}
    region = str(props.get("cluster") or "-")
    total = _number(alloc, "totalCost", required=True) or 0.0
    resource = "/".join(str(props[k]) for k in ("namespace", "controller") if props.get(k))
    charges, parts = [], 0.0
    for field, usage_type in COMPONENTS:
        cost = _number(alloc, field) or 0.0
        parts += cost
        if cost:
            charges.append(Charge(start, end, service, region, usage_type, resource, cost, cost,
                                  CURRENCY))
    rest = total - parts
    if abs(rest) > 1e-6:
        charges.append(Charge(start, end, service, region, ADJUSTMENT, resource, rest, rest,
                              CURRENCY))
    usage = [_number(alloc, f) for f in USAGE]
    return charges, Requested(service, start, end, *usage)


def parse(body: Any, origin: str, source: OpenCostSource) -> Allocations:
    """Every valid allocation of one `/allocation` response; every bad one named."""
    out = Allocations([], [], [])
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        out.problems.append(Problem(origin, 0, "data", _short(body),
                                    "not an OpenCost /allocation response ({code, data: "
                                    "[{name: allocation}]}): nothing read"))
        return out
    if body.get("code", 200) != 200:
        out.problems.append(Problem(origin, 0, "code", str(body.get("code")),
                                    f"OpenCost answered with an error: "
                                    f"{_short(body.get('message'))}"))
    position = 0
    for i, step in enumerate(body["data"]):
        if not isinstance(step, dict):
            out.problems.append(Problem(origin, 0, f"data[{i}]", _short(step),
                                        "a step must be an object of name -> allocation"))
            continue
        for key, alloc in step.items():
            position += 1
            try:
                charges, requested = _one(key, alloc, source)
            except _Bad as bad:
                out.problems.append(Problem(origin, position, f"data[{i}].{key}.{bad.field}"
                                            .rstrip("."), _short(bad.value), bad.problem))
                continue
            out.charges += charges
            out.requested.append(requested)
    return out


def read_files(paths: Iterable[Path], source: OpenCostSource) -> Allocations:
    """OpenCost /allocation responses saved as JSON files."""
    out = Allocations([], [], [])
    for path in paths:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            out.problems.append(Problem(str(path), 0, "", "", f"unreadable: {exc}"))
            continue
        _extend(out, parse(body, str(path), source))
    return out


def fetch(source: OpenCostSource, start: datetime, end: datetime) -> Allocations:
    """The allocations of [start, end) from the configured OpenCost, hour by hour."""
    if source.url is None:
        return Allocations([], [], [])
    url = source.url.rstrip("/") + "/allocation"
    params = {"window": f"{_rfc3339(start)},{_rfc3339(end)}", "step": "1h",
              "aggregate": source.service_from}
    try:
        response = httpx.get(url, params=params, timeout=source.timeout_seconds)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Allocations([], [], [Problem(url, 0, "", "", f"OpenCost not read: {exc}")])
    return parse(body, url, source)


def _extend(into: Allocations, more: Allocations) -> None:
    into.charges += more.charges
    into.requested += more.requested
    into.problems += more.problems


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def cpu_requested_vs_used(requested: list[Requested], since: datetime, until: datetime
                          ) -> dict[str, dict[str, Any]]:
    """Per service: CPU cores requested and used over [since, until) and the p95 of used /
    requested across its allocations (what rightsizing judges)."""
    out: dict[str, dict[str, Any]] = {}
    for r in requested:
        if (r.start < since or r.end > until or not r.cpu_request or r.cpu_usage is None):
            continue
        cell = out.setdefault(r.service, {"ratios": [], "minutes": 0.0, "request": 0.0,
                                          "usage": 0.0})
        minutes = (r.end - r.start).total_seconds() / 60
        cell["ratios"].append(r.cpu_usage / r.cpu_request)
        cell["minutes"] += minutes
        cell["request"] += r.cpu_request * minutes
        cell["usage"] += r.cpu_usage * minutes
    result = {}
    for service, cell in out.items():
        ratios = sorted(cell["ratios"])
        p95 = ratios[min(len(ratios) - 1, math.ceil(0.95 * len(ratios)) - 1)]
        result[service] = {"minutes": round(cell["minutes"]), "p95": round(p95, 4),
                           "cores_requested": round(cell["request"] / cell["minutes"], 4),
                           "cores_used": round(cell["usage"] / cell["minutes"], 4)}
    return result

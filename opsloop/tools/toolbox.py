"""The agent toolbox: named, typed diagnostic tools over production's metrics and change feed.

Every call returns a `ToolResult` (ok / no_data / error) with a JSON-friendly `data` dict
that runbook `expect` clauses read, and a one-line `summary` for people. A tool never
raises: a bad argument or a backend failure becomes status error. The `Toolbox` adds the
safeguards: a per-specialist allow-list, a call budget, and a cache that answers a repeated
identical call without asking the backend again.
"""

from __future__ import annotations

import inspect
import json
import re
import statistics
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsloop.models import ToolResult, ToolStatus
from opsloop.models.catalog import TOOLS as CATALOG_TOOLS
from opsloop.models.catalog import ToolParam
from opsloop.tools.protocols import Clock, Telemetry

Outcome = tuple[ToolStatus, dict[str, Any], str]
_OK, _NO_DATA, _ERROR = ToolStatus.OK, ToolStatus.NO_DATA, ToolStatus.ERROR
_AGGS = ("avg", "max", "min", "last")
_MAX_PATTERN = 200
# A quantified group that itself contains a quantifier, e.g. (a+)+ or (\w*x)*: the classic
# catastrophic-backtracking shape. Python's re has no timeout, so such patterns are refused.
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


class ToolInputError(ValueError):
    """An argument the tool cannot use; reported as status error."""


@dataclass
class ToolContext:
    telemetry: Telemetry
    clock: Clock | None  # None: the wall clock (ages in production's own time need its clock)

    def now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    def minutes_ago(self, at: datetime) -> float:
        return round((self.now() - at).total_seconds() / 60.0, 1)


ToolFn = Callable[..., Outcome]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    fn: ToolFn
    doc: str
    params: Mapping[str, ToolParam]  # the catalog's declaration, which the signature matches


TOOLS: dict[str, ToolSpec] = {}


def _signature(fn: ToolFn) -> dict[str, ToolParam]:
    """What a tool function's signature declares, in the catalog's terms."""
    hints = typing.get_type_hints(fn)
    params: dict[str, ToolParam] = {}
    for name, p in list(inspect.signature(fn).parameters.items())[1:]:  # skip the context
        kind = hints[name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        required = p.default is inspect.Parameter.empty
        params[name] = ToolParam(base, required=required, default=None if required else p.default)
    return params


def _tool(fn: ToolFn) -> ToolFn:
    """Register a tool; its signature must say exactly what the catalog says about it."""
    declared = CATALOG_TOOLS.get(fn.__name__)
    if declared is None:
        raise TypeError(f"tool {fn.__name__} is not in the catalog (opsloop/models/catalog.py)")
    actual = _signature(fn)
    if list(actual.items()) != list(declared.items()):
        raise TypeError(f"tool {fn.__name__}: its signature {actual} differs from the "
                        f"catalog's {declared}")
    doc = (fn.__doc__ or "").strip().splitlines()[0]
    TOOLS[fn.__name__] = ToolSpec(fn.__name__, fn, doc, declared)
    return fn


def _coerce(spec: ToolSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(args) - set(spec.params))
    if unknown:
        raise ToolInputError(f"unknown argument(s) {', '.join(unknown)} for {spec.name}; "
                             f"it takes {', '.join(spec.params)}")
    out: dict[str, Any] = {}
    for name, param in spec.params.items():
        if name not in args or args[name] is None:
            if param.required:
                raise ToolInputError(f"{spec.name} needs argument {name!r}")
            out[name] = param.default
            continue
        value = args[name]
        kind = param.type
        try:
            if kind is int and not isinstance(value, bool):
                value = int(float(value))
            elif kind is float and not isinstance(value, bool):
                value = float(value)
            elif kind is str:
                value = str(value)
        except (TypeError, ValueError) as exc:
            raise ToolInputError(f"{spec.name}: {name}={value!r} is not a {kind.__name__}") from exc
        if kind is int and value <= 0:
            raise ToolInputError(f"{spec.name}: {name} must be positive, got {value}")
        out[name] = value
    return out


def _num(value: float) -> float | int:
    """Whole numbers as int (a replica count binds as 8, not 8.0); others to 6 places."""
    return int(value) if float(value).is_integer() else round(value, 6)


def _values(ctx: ToolContext, service: str, metric: str, minutes: int) -> list[float]:
    return ctx.telemetry.metric(service, metric, minutes).values()


@_tool
def metric_stat(ctx: ToolContext, service: str, metric: str, minutes: int = 10,
                agg: str = "avg") -> Outcome:
    """One aggregate (avg, max, min, last) of a metric over the last `minutes`."""
    if agg not in _AGGS:
        raise ToolInputError(f"agg must be one of {', '.join(_AGGS)}, got {agg!r}")
    vals = _values(ctx, service, metric, minutes)
    if not vals:
        return _NO_DATA, {}, f"no {metric} data for {service} in the last {minutes}m"
    aggregate: dict[str, Callable[[list[float]], float]] = {
        "avg": statistics.fmean, "max": max, "min": min, "last": lambda v: v[-1]}
    value = aggregate[agg](vals)
    data = {"value": _num(value), "points": len(vals)}
    return _OK, data, f"{service} {metric} {agg} over {minutes}m = {value:.4g}"


def _onset(ctx: ToolContext, points: list[tuple[datetime, float]], mean: float,
           threshold: float, up: bool) -> float | None:
    """Minutes ago the current departure from the baseline began (allowing two quiet minutes)."""
    onset: int | None = None
    quiet = 0
    for i in range(len(points) - 1, -1, -1):
        off = points[i][1] - mean if up else mean - points[i][1]
        if off > threshold:
            onset, quiet = i, 0
        else:
            quiet += 1
            if quiet > 2:
                break
    return None if onset is None else ctx.minutes_ago(points[onset][0])


@_tool
def metric_change(ctx: ToolContext, service: str, metric: str, minutes: int = 10,
                  baseline_minutes: int = 60) -> Outcome:
    """Recent window vs the usual level (median) before it: ratio, delta, minute of onset."""
    series = ctx.telemetry.metric(service, metric, minutes + baseline_minutes)
    points = [(p.at, p.value) for p in series.points]
    if len(points) <= minutes:
        return _NO_DATA, {}, f"not enough {metric} history for {service} to compare"
    base = [v for _, v in points[:-minutes]]
    recent = statistics.fmean(v for _, v in points[-minutes:])
    # Median and MAD, not mean and stdev: when the change began inside the baseline window,
    # the changed minutes must not drag "usual" towards them or hide where they began.
    center = statistics.median(base)
    ratio = recent / center if abs(center) > 1e-9 else (1.0 if abs(recent) <= 1e-9 else 1e6)
    mad = statistics.median(abs(v - center) for v in base)
    threshold = max(3 * 1.4826 * mad, 0.1 * abs(center), 1e-6)
    changed = abs(recent - center) > threshold
    onset = _onset(ctx, points, center, threshold, recent >= center) if changed else None
    data = {"recent": _num(recent), "baseline": _num(center), "ratio": round(ratio, 4),
            "delta": _num(recent - center), "changed": changed, "onset_minutes_ago": onset}
    when = f", began {onset:g}m ago" if onset is not None else ""
    return _OK, data, (f"{service} {metric} {recent:.4g} over {minutes}m vs usual {center:.4g} "
                       f"(x{ratio:.2f}{when})")


@_tool
def metric_trend(ctx: ToolContext, service: str, metric: str, minutes: int = 60) -> Outcome:
    """Least-squares slope of a metric, how steady the climb is (r2), minutes until 100%."""
    vals = _values(ctx, service, metric, minutes)
    if len(vals) < 5:
        return _NO_DATA, {}, f"not enough {metric} history for {service} to fit a trend"
    xs = range(len(vals))
    mx, my = statistics.fmean(xs), statistics.fmean(vals)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, vals, strict=True))
    syy = sum((y - my) ** 2 for y in vals)
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    to_full = round((1.0 - vals[-1]) / slope, 1) if slope > 0 and vals[-1] <= 1.0 else None
    data = {"slope_per_minute": round(slope, 6), "slope_per_hour": round(slope * 60, 6),
            "r2": round(r2, 4), "first": vals[0], "last": vals[-1], "minutes_to_full": to_full}
    return _OK, data, f"{service} {metric} slope {slope * 60:+.4g}/h (r2 {r2:.2f}) over {minutes}m"


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern or len(pattern) > _MAX_PATTERN:
        raise ToolInputError(f"pattern must be 1..{_MAX_PATTERN} characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise ToolInputError(f"pattern {pattern!r} nests quantifiers; simplify it")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error:  # not a valid regex: treat it as the plain text it probably is
        return re.compile(re.escape(pattern), re.IGNORECASE)


@_tool
def log_search(ctx: ToolContext, service: str, pattern: str, minutes: int = 15,
               level: str | None = None) -> Outcome:
    """Count log lines matching a substring or simple regex (case-insensitive), with samples."""
    rx = _compile(pattern)
    lines = [ln for ln in ctx.telemetry.logs(service, minutes, None, 5000)
             if rx.search(ln.message) and (level is None or ln.level.upper() == level.upper())]
    lines.sort(key=lambda ln: ln.at)
    samples = [f"{ln.at:%H:%M} {ln.level} {ln.message}" for ln in lines[-3:]]
    data: dict[str, Any] = {"count": len(lines), "samples": samples,
                            "first_minutes_ago": ctx.minutes_ago(lines[0].at) if lines else None}
    return _OK, data, f"{len(lines)} {service} log lines matching {pattern!r} in {minutes}m"


@_tool
def recent_deploys(ctx: ToolContext, service: str, minutes: int = 60) -> Outcome:
    """Deploys (including config changes and rollbacks) of a service in the last `minutes`."""
    events = sorted(ctx.telemetry.deploys(service, minutes), key=lambda d: d.at)
    rows = [{"version": d.version, "previous_version": d.previous_version, "kind": d.kind,
             "author": d.author, "at": d.at.isoformat(), "age_minutes": ctx.minutes_ago(d.at)}
            for d in events]
    latest = rows[-1] if rows else None
    data = {"count": len(rows), "latest": latest, "earliest": rows[0] if rows else None,
            "deploys": rows[-5:]}
    if latest is None:
        return _OK, data, f"no deploys of {service} in the last {minutes}m"
    return _OK, data, (f"{len(rows)} deploy(s) of {service} in {minutes}m; latest "
                       f"{latest['kind']} {latest['previous_version']} -> {latest['version']} "
                       f"{latest['age_minutes']:g}m ago")


@_tool
def recent_flag_changes(ctx: ToolContext, service: str, minutes: int = 60) -> Outcome:
    """Feature-flag changes for a service in the last `minutes`."""
    changes = sorted(ctx.telemetry.flag_changes(service, minutes), key=lambda c: c.at)
    rows = [{"key": c.key, "enabled": c.enabled, "from_percent": c.from_percent,
             "to_percent": c.to_percent, "author": c.author, "at": c.at.isoformat(),
             "age_minutes": ctx.minutes_ago(c.at)} for c in changes]
    latest = rows[-1] if rows else None
    # A progressive ramp is several changes; `earliest` is when the exposure began.
    data = {"count": len(rows), "latest": latest, "earliest": rows[0] if rows else None,
            "changes": rows[-5:]}
    if latest is None:
        return _OK, data, f"no flag changes for {service} in the last {minutes}m"
    return _OK, data, (f"{len(rows)} flag change(s) for {service}; latest {latest['key']} "
                       f"{latest['from_percent']:g}% -> {latest['to_percent']:g}% "
                       f"{latest['age_minutes']:g}m ago")


@_tool
def flag_states(ctx: ToolContext, service: str) -> Outcome:
    """Current feature flags of a service: enabled, rollout percent, last change."""
    flags = sorted(ctx.telemetry.flags(service), key=lambda f: f.updated_at)
    rows = [{"key": f.key, "enabled": f.enabled, "rollout_percent": f.rollout_percent,
             "owner": f.owner, "updated_minutes_ago": ctx.minutes_ago(f.updated_at)}
            for f in flags]
    data = {"count": len(rows), "enabled": sum(1 for r in rows if r["enabled"]),
            "latest": rows[-1] if rows else None, "flags": rows}
    return _OK, data, f"{len(rows)} flag(s) on {service}, {data['enabled']} enabled"


def _service(ctx: ToolContext, service: str) -> Any:
    for info in ctx.telemetry.services():
        if info.name == service:
            return info
    raise ToolInputError(f"unknown service {service!r}")


@_tool
def dependency_health(ctx: ToolContext, service: str, minutes: int = 5) -> Outcome:
    """Error ratio and p99 latency of each direct dependency; the worst one first."""
    deps = []
    for name in _service(ctx, service).dependencies:
        try:
            err = _values(ctx, name, "error_ratio", minutes)
            lat = _values(ctx, name, "latency_p99_ms", minutes)
        except KeyError:  # an external provider: no telemetry of its own, judge it by its caller
            deps.append({"name": name, "error_ratio": None, "latency_p99_ms": None,
                         "observed": False})
            continue
        deps.append({"name": name, "observed": True,
                     "error_ratio": round(statistics.fmean(err), 6) if err else None,
                     "latency_p99_ms": round(statistics.fmean(lat), 3) if lat else None})
    deps.sort(key=lambda d: (d["error_ratio"] or 0.0, d["latency_p99_ms"] or 0.0), reverse=True)
    worst = deps[0] if deps else None
    data = {"count": len(deps), "worst": worst, "dependencies": deps}
    if worst is None:
        return _OK, data, f"{service} has no direct dependencies"
    return _OK, data, (f"worst dependency of {service}: {worst['name']} error ratio "
                       f"{worst['error_ratio'] or 0:.4g}, p99 {worst['latency_p99_ms'] or 0:.4g}ms")


@_tool
def running_experiments(ctx: ToolContext, service: str) -> Outcome:
    """Chaos experiments running against a service or one of its direct dependencies."""
    targets = {service, *_service(ctx, service).dependencies}
    running = sorted((e for e in ctx.telemetry.experiments(None)
                      if e.status == "running" and e.target_service in targets),
                     key=lambda e: e.started_at)
    rows = [{"id": e.id, "title": e.title, "target_service": e.target_service,
             "steady_state": e.steady_state, "age_minutes": ctx.minutes_ago(e.started_at),
             "on_dependency": e.target_service != service} for e in running]
    latest = rows[-1] if rows else None
    data = {"count": len(rows), "latest": latest, "experiments": rows}
    if latest is None:
        return _OK, data, f"no chaos experiments running against {service} or its dependencies"
    return _OK, data, (f"{len(rows)} experiment(s) running; latest {latest['id']} "
                       f"({latest['title']}) on {latest['target_service']}")


@_tool
def service_info(ctx: ToolContext, service: str) -> Outcome:
    """Replicas, version, tier, region and dependencies of a service."""
    info = _service(ctx, service)
    data = {"name": info.name, "replicas": info.replicas, "version": info.version,
            "tier": info.tier, "region": info.region, "team": info.team,
            "dependencies": list(info.dependencies)}
    return _OK, data, (f"{service}: {info.replicas} replicas of {info.version}, tier {info.tier}, "
                       f"{info.region}")


class Toolbox:
    """The tools one specialist may use for one incident, with a budget and a cache."""

    def __init__(self, telemetry: Telemetry, allowed: set[str] | None = None, *,
                 max_calls: int | None = None, clock: Clock | None = None) -> None:
        self._ctx = ToolContext(telemetry, clock)
        self.allowed = set(TOOLS) if allowed is None else set(allowed)
        self.max_calls = max_calls
        self.calls = 0  # calls that reached the backend
        self.cache_hits = 0
        self.history: list[ToolResult] = []
        self._cache: dict[str, ToolResult] = {}

    def names(self) -> list[str]:
        return sorted(n for n in TOOLS if n in self.allowed)

    def describe(self) -> list[dict[str, Any]]:
        """Name, purpose and parameters of each allowed tool (for a tool-calling model)."""
        return [{"name": n, "description": TOOLS[n].doc,
                 "parameters": {p: {"type": param.type.__name__, "required": param.required,
                                    **({} if param.required else {"default": param.default})}
                                for p, param in TOOLS[n].params.items()}}
                for n in self.names()]

    def call(self, tool: str, args: Mapping[str, Any] | None = None, **kwargs: Any) -> ToolResult:
        """Run one tool; never raises."""
        raw = {**(args or {}), **kwargs}
        result = self._call(tool, raw)
        self.history.append(result)
        return result

    def _call(self, tool: str, raw: dict[str, Any]) -> ToolResult:
        def error(message: str, args: Mapping[str, Any] = raw) -> ToolResult:
            return ToolResult(tool=tool, args=dict(args), status=_ERROR, error=message,
                              summary=message)

        spec = TOOLS.get(tool)
        if spec is None or tool not in self.allowed:
            return error(f"tool {tool} is not available to this specialist")
        try:
            args = _coerce(spec, raw)
        except ToolInputError as exc:
            return error(str(exc))
        key = f"{tool}:{json.dumps(args, sort_keys=True, default=str)}"
        if key in self._cache:
            self.cache_hits += 1
            return self._cache[key]
        if self.max_calls is not None and self.calls >= self.max_calls:
            return error(f"tool call budget of {self.max_calls} is used up", args)
        self.calls += 1
        try:
            status, data, summary = spec.fn(self._ctx, **args)
            result = ToolResult(tool=tool, args=args, status=status, data=data, summary=summary)
        except ToolInputError as exc:
            result = error(str(exc), args)
        except KeyError as exc:  # the protocols' way of saying "no such name"
            result = error(f"{tool}: unknown name {exc}", args)
        except Exception as exc:  # a backend failure must not take the diagnosis down
            result = error(f"{tool} failed: {type(exc).__name__}: {exc}", args)
        self._cache[key] = result
        return result

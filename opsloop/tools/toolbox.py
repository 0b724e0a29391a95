"""The agent toolbox: named, typed diagnostic tools over production's metrics and change feed.

Every call returns a `ToolResult` (ok / no_data / error) with a JSON-friendly `data` dict
that runbook `expect` clauses read, and a one-line `summary` for people. A tool never
raises: a bad argument or a backend failure becomes status error. The `Toolbox` adds the
safeguards: a per-specialist allow-list, a call budget, and a cache that answers a repeated
identical call without asking the backend again.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Mapping
from typing import Any

# The evidence tools register themselves (@_tool) when imported: importing the toolbox
# registers every tool the catalog declares.
import opsloop.tools.evidence
import opsloop.tools.log_templates  # noqa: F401
from opsloop.models import ToolResult
from opsloop.tools.protocols import Clock, Telemetry
from opsloop.tools.tooling import ERROR as _ERROR
from opsloop.tools.tooling import NO_DATA as _NO_DATA
from opsloop.tools.tooling import OK as _OK
from opsloop.tools.tooling import (
    TOOLS,
    Outcome,
    ToolContext,
    ToolInputError,
    ToolSpec,
    _tool,
    compare,
    find_service,
    onset,
)
from opsloop.tools.tooling import num as _num

__all__ = ["TOOLS", "Outcome", "ToolContext", "ToolInputError", "ToolSpec", "Toolbox", "_tool"]

_AGGS = ("avg", "max", "min", "last")
_MAX_PATTERN = 200
# A quantified group that itself contains a quantifier, e.g. (a+)+ or (\w*x)*: the classic
# catastrophic-backtracking shape. Python's re has no timeout, so such patterns are refused.
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


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


@_tool
def metric_change(ctx: ToolContext, service: str, metric: str, minutes: int = 10,
                  baseline_minutes: int = 60) -> Outcome:
    """Recent window vs the usual level (median) before it: ratio, delta, minute of onset."""
    change = compare(ctx, service, metric, minutes, baseline_minutes)
    if change is None:
        return _NO_DATA, {}, f"not enough {metric} history for {service} to compare"
    recent, center, ratio = change.recent, change.baseline, change.ratio
    began = onset(ctx, change)
    data = {"recent": _num(recent), "baseline": _num(center), "ratio": round(ratio, 4),
            "delta": _num(recent - center), "changed": change.changed,
            "onset_minutes_ago": began}
    when = f", began {began:g}m ago" if began is not None else ""
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


def _observed(ctx: ToolContext, name: str, metric: str, minutes: int) -> list[float] | None:
    """A dependency's recent values; None when it has no series at all (an external provider,
    an exporter that is down): no telemetry is not the same as healthy."""
    try:
        values = _values(ctx, name, metric, minutes)
    except KeyError:  # not a service the backend knows: an external provider
        return None
    return values or None


@_tool
def dependency_health(ctx: ToolContext, service: str, minutes: int = 5) -> Outcome:
    """Error ratio and p99 latency of each direct dependency; the worst observed one first."""
    observed: list[dict[str, Any]] = []
    unobserved: list[dict[str, Any]] = []
    for name in find_service(ctx, service).dependencies:
        err = _observed(ctx, name, "error_ratio", minutes)
        lat = _observed(ctx, name, "latency_p99_ms", minutes)
        if err is None and lat is None:
            # Null values, never 0: a dependency nobody measures must not read as healthy.
            unobserved.append({"name": name, "error_ratio": None, "latency_p99_ms": None,
                               "observed": False})
            continue
        observed.append({"name": name, "observed": True,
                         "error_ratio": round(statistics.fmean(err), 6) if err else None,
                         "latency_p99_ms": round(statistics.fmean(lat), 3) if lat else None})
    observed.sort(key=lambda d: (-1.0 if d["error_ratio"] is None else d["error_ratio"],
                                 d["latency_p99_ms"] or 0.0), reverse=True)
    # `worst` is the worst dependency that has telemetry; an unobserved one cannot be ranked,
    # so it is listed in `unobserved` (and after the observed ones) instead: null `worst`
    # with a non-empty `unobserved` means "nothing to judge them by", not "all healthy".
    worst = observed[0] if observed else None
    deps = observed + unobserved
    data: dict[str, Any] = {"count": len(deps), "worst": worst, "dependencies": deps,
            "observed_count": len(observed), "unobserved": [d["name"] for d in unobserved]}
    unseen = f"; no telemetry for {', '.join(data['unobserved'])}" if unobserved else ""
    if worst is None:
        return _OK, data, (f"{service} has no direct dependencies" if not deps else
                           f"none of {service}'s dependencies has telemetry{unseen}")
    err_text = "n/a" if worst["error_ratio"] is None else f"{worst['error_ratio']:.4g}"
    lat_text = "n/a" if worst["latency_p99_ms"] is None else f"{worst['latency_p99_ms']:.4g}ms"
    return _OK, data, (f"worst observed dependency of {service}: {worst['name']} error ratio "
                       f"{err_text}, p99 {lat_text}{unseen}")


@_tool
def running_experiments(ctx: ToolContext, service: str) -> Outcome:
    """Chaos experiments running against a service or one of its direct dependencies."""
    targets = {service, *find_service(ctx, service).dependencies}
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
    info = find_service(ctx, service)
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

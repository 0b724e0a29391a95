"""Evidence about where a fault lives, read off the topology: what callers log about a
service, whether its load comes from outside or is amplified inside, whether failing over
would land somewhere healthy and independent, and what changed on its path before onset.

Each tool reads only the protocols (catalog, metrics, logs, changes); unknown stays null.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from opsloop.models import LogLine, ServiceInfo
from opsloop.models.catalog import LOG_CLASSES
from opsloop.tools.log_templates import (
    mine_service,
    name_pattern,
    named,
    top_class,
)
from opsloop.tools.tooling import (
    NO_DATA,
    OK,
    Outcome,
    ToolContext,
    ToolInputError,
    _tool,
    compare,
    onset,
)

MINE_BASELINE_MINUTES = 120  # history mined with a caller's recent lines, for stable templates
CALLER_BASELINE_MINUTES = 60  # a caller's error ratio is judged against this much history
# traffic_origin: "rising" is a ratio above these (and a change beyond the baseline's noise);
# an error ratio must also rise by at least ERRORS_MIN_DELTA (0.5 points) to count.
REQUESTS_RISING = 1.2
ERRORS_RISING = 1.5
ERRORS_MIN_DELTA = 0.005
RATIO_FLOOR = 0.1  # callers' traffic ratio used at least as this, so amplification is finite
LEAD_MINUTES = 2  # errors "lead" when they began at least this much before requests rose
# failover_target: the region a failover goes to from each region. The actuator's failover
# takes `to_region` from this pair; a region outside it has no known target.
REGION_PAIRS = {"primary": "secondary", "secondary": "primary"}
REGION_MINUTES = 30  # how far back region evidence in logs is read
MAX_DEPTH = 4  # how deep dependency paths are followed


def _catalog(ctx: ToolContext) -> dict[str, ServiceInfo]:
    return {s.name: s for s in sorted(ctx.telemetry.services(), key=lambda s: s.name)}


def _known(catalog: dict[str, ServiceInfo], service: str) -> None:
    """A name the topology knows: a catalog service or a dependency of one (a provider)."""
    if service not in catalog and not any(service in s.dependencies for s in catalog.values()):
        raise ToolInputError(f"unknown service {service!r}")


def _callers(catalog: dict[str, ServiceInfo], service: str) -> list[str]:
    """The other services that list `service` as a dependency (a service calling itself is
    not its own caller: that traffic is made inside, see `self_calling`)."""
    return [name for name, s in catalog.items() if service in s.dependencies and name != service]


def _below(catalog: dict[str, ServiceInfo], service: str) -> dict[str, int]:
    """Every service `service` depends on, directly or not, with its depth (1 = direct)."""
    depth: dict[str, int] = {}
    frontier = [service]
    for level in range(1, MAX_DEPTH + 1):
        nxt = []
        for name in frontier:
            info = catalog.get(name)
            for dep in info.dependencies if info else []:
                if dep != service and dep not in depth:
                    depth[dep] = level
                    nxt.append(dep)
        frontier = nxt
    return depth


def _ratio(ctx: ToolContext, service: str, metric: str, minutes: int,
           baseline_minutes: int) -> float | None:
    try:
        change = compare(ctx, service, metric, minutes, baseline_minutes)
    except KeyError:
        return None
    return None if change is None else round(change.ratio, 4)


@_tool
def callers_report(ctx: ToolContext, service: str, minutes: int = 15) -> Outcome:
    """What the services that call `service` log about it: classes of lines naming it.

    data: count, callers [{name, error_ratio_ratio, classes {class: n}, mentions,
    all_mentions}], worst_class, mentions, all_mentions, classes, alerting_share (null).
    `mentions` counts lines of a class other than `other`; `all_mentions` every line naming it.
    """
    catalog = _catalog(ctx)
    _known(catalog, service)
    rx, by_form = name_pattern([service])
    rows: list[dict[str, Any]] = []
    total: Counter[str] = Counter()
    for caller in _callers(catalog, service):
        counts: Counter[str] = Counter()
        for m in mine_service(ctx, caller, minutes, MINE_BASELINE_MINUTES):
            if m.recent and named(rx, by_form, m.line.message):
                counts[m.cls] += 1
        total.update(counts)
        # `mentions` counts the lines that say something is wrong (a class other than
        # `other`): a routine "route /checkout -> checkout 200" names a service too.
        rows.append({"name": caller,
                     "error_ratio_ratio": _ratio(ctx, caller, "error_ratio", minutes,
                                                 CALLER_BASELINE_MINUTES),
                     "classes": {c: counts[c] for c in LOG_CLASSES if counts[c]},
                     "mentions": sum(counts.values()) - counts["other"],
                     "all_mentions": sum(counts.values())})
    rows.sort(key=lambda r: (-r["mentions"], -r["all_mentions"], r["name"]))
    worst = top_class(total)
    data = {"count": len(rows), "callers": rows, "worst_class": worst,
            "mentions": sum(total.values()) - total["other"],
            "all_mentions": sum(total.values()),
            "classes": {c: total[c] for c in LOG_CLASSES if total[c]},
            "alerting_share": None}  # the tools do not know which services alert
    if not rows:
        return OK, data, f"nothing in the catalog calls {service}"
    return OK, data, (f"{len(rows)} caller(s) of {service}; {data['mentions']} recent line(s) "
                      f"name it" + (f", mostly {worst}" if worst else ""))


def _recent_class_lines(ctx: ToolContext, services: list[str], minutes: int,
                        cls: str) -> int:
    return sum(1 for name in services
               for m in mine_service(ctx, name, minutes, MINE_BASELINE_MINUTES)
               if m.recent and m.cls == cls)


@_tool
def traffic_origin(ctx: ToolContext, service: str, minutes: int = 15,
                   baseline_minutes: int = 60) -> Outcome:
    """Whether a service's load comes from its callers (or the edge) or is amplified inside.

    data: rps_ratio, callers_rps_ratio, amplification, error_ratio_ratio,
    errors_and_requests_rising, edge, self_calling, cache_hit_ratio_change (null: no cache
    metric exists), errors_lead, retry_lines, cache_miss_lines, callers. Ratios are the recent
    mean over the baseline median; the callers' is their summed traffic's.
    """
    catalog = _catalog(ctx)
    if service not in catalog:
        raise ToolInputError(f"unknown service {service!r}")
    callers = _callers(catalog, service)
    self_calling = service in catalog[service].dependencies
    rps = compare(ctx, service, "requests_per_second", minutes, baseline_minutes)
    errors = compare(ctx, service, "error_ratio", minutes, baseline_minutes)
    rps_ratio = None if rps is None else round(rps.ratio, 4)
    callers_ratio: float | None
    if self_calling and not callers:  # it makes its own traffic: outside load is unknowable
        callers_ratio = None
    elif not callers:  # the edge: its traffic is the outside world's
        callers_ratio = rps_ratio
    else:
        recent = base = 0.0
        for caller in callers:
            change = compare(ctx, caller, "requests_per_second", minutes, baseline_minutes)
            if change is not None:
                recent, base = recent + change.recent, base + change.baseline
        callers_ratio = round(recent / base, 4) if base > 1e-9 else None
    amplification = (None if rps_ratio is None or callers_ratio is None
                     else round(rps_ratio / max(callers_ratio, RATIO_FLOOR), 4))
    requests_up = rps is not None and rps.changed and rps.ratio >= REQUESTS_RISING
    errors_up = (errors is not None and errors.changed and errors.ratio >= ERRORS_RISING
                 and errors.recent - errors.baseline >= ERRORS_MIN_DELTA)
    rps_began = onset(ctx, rps) if requests_up and rps is not None else None
    err_began = onset(ctx, errors) if errors_up and errors is not None else None
    lead = (None if rps_began is None or err_began is None
            else err_began >= rps_began + LEAD_MINUTES)
    around = [service, *callers]
    data = {"rps_ratio": rps_ratio, "callers_rps_ratio": callers_ratio,
            "amplification": amplification,
            "error_ratio_ratio": None if errors is None else round(errors.ratio, 4),
            "errors_and_requests_rising": requests_up and errors_up,
            "edge": not callers and not self_calling,
            "self_calling": self_calling,
            # No cache metric is in the catalog (opsloop/models/catalog.py METRICS): the
            # hit ratio is not observable, so it stays null; cache_miss_lines is what logs say.
            "cache_hit_ratio_change": None,
            "errors_lead": lead,
            "retry_lines": _recent_class_lines(ctx, around, minutes, "retry"),
            "cache_miss_lines": _recent_class_lines(ctx, around, minutes, "cache_miss"),
            "callers": callers}
    if rps_ratio is None:
        return NO_DATA, data, f"not enough requests_per_second history for {service}"
    return OK, data, (f"{service} requests x{rps_ratio:g} vs its callers' x"
                      f"{'?' if callers_ratio is None else f'{callers_ratio:g}'}"
                      + (f" (amplification x{amplification:g})" if amplification else ""))


def _region_rx(region: str) -> re.Pattern[str]:
    """A region named as such (`region primary`, `region=secondary`) or as part of a host,
    bucket or endpoint (`provider.primary.example.net`, `media-prod-secondary`), not the plain
    word (a database "primary" is not a region)."""
    r = re.escape(region)
    return re.compile(rf"region[\s=:]+{r}\b|[a-z0-9][-_.]{r}(?![a-z0-9])"
                      rf"|(?<![a-z0-9]){r}[-_.][a-z0-9]", re.IGNORECASE)


def _is_failure(line: LogLine, template_cls: str) -> bool:
    return template_cls != "other" and line.level.upper() in ("WARN", "WARNING", "ERROR",
                                                              "CRITICAL", "FATAL")


@_tool
def failover_target(ctx: ToolContext, service: str) -> Outcome:
    """Where failing a service over would go, whether that is healthy and independent.

    data: target, healthy, independent, shared, known, region, region_scoped,
    target_ok_lines, target_error_lines. `healthy` comes from logs of the service and its
    callers that name the target region (errors: false; only routine lines: true; none: null).
    """
    catalog = _catalog(ctx)
    _known(catalog, service)
    info = catalog.get(service)
    region = info.region if info else None
    target = REGION_PAIRS.get(region) if region else None
    if region and target is None:  # a region outside the pair: another the catalog uses
        target = next((s.region for s in catalog.values() if s.region != region), None)
    # What moves with a failover is the service and what only it uses (its own backends, its
    # provider's regional endpoint); what other services also depend on (a DNS, a backbone, a
    # shared provider) is the same whichever region serves: the target shares it.
    below = _below(catalog, service)
    inside = {service, *below}
    shared = sorted(dep for dep in below
                    if any(dep in s.dependencies for name, s in catalog.items()
                           if name not in inside))
    target_ok = target_bad = current_bad = 0
    if target is not None and region is not None:
        target_rx, region_rx = _region_rx(target), _region_rx(region)
        for name in [n for n in [service, *_callers(catalog, service)] if n in catalog]:
            for m in mine_service(ctx, name, REGION_MINUTES, MINE_BASELINE_MINUTES):
                if not m.recent:
                    continue
                failed = _is_failure(m.line, m.cls)
                if target_rx.search(m.line.message):
                    if failed:
                        target_bad += 1
                    elif m.cls == "other" and m.line.level.upper() in ("INFO", "DEBUG"):
                        target_ok += 1
                if failed and region_rx.search(m.line.message):
                    current_bad += 1
    healthy = False if target_bad else (True if target_ok else None)
    data = {"target": target, "healthy": healthy,
            "independent": not shared if info is not None or below else None,
            "shared": shared, "known": target is not None, "region": region,
            "region_scoped": (current_bad > 0) if target is not None else None,
            "target_ok_lines": target_ok, "target_error_lines": target_bad}
    if target is None:
        return OK, data, f"no known failover target for {service}"
    state = {True: "healthy", False: "failing", None: "of unknown health"}[healthy]
    return OK, data, (f"{service} would fail over {region} -> {target} ({state}); shares "
                      f"{', '.join(shared) if shared else 'no dependency'} with the current path")


def _row(ctx: ToolContext, kind: str, on: str, depth: int, at: Any, ref: str,
         detail: str) -> dict[str, Any]:
    return {"kind": kind, "on": on, "on_path": "self" if depth == 0 else "dependency",
            "depth": depth, "age_minutes": ctx.minutes_ago(at), "at": at.isoformat(),
            "ref": ref, "detail": detail}


@_tool
def changes_before(ctx: ToolContext, service: str, minutes: int = 120) -> Outcome:
    """Deploys, config changes, flag changes and experiments on the service and what it uses.

    data: count, latest, changes (newest first, up to 10) of {kind: deploy|config|rollback|
    flag|experiment, on, on_path: self|dependency, depth, age_minutes, at, ref, detail},
    config_count, deploy_count (deploys and rollbacks), flag_count, experiment_count.
    """
    catalog = _catalog(ctx)
    _known(catalog, service)
    path = {service: 0, **_below(catalog, service)}
    rows = []
    for d in ctx.telemetry.deploys(None, minutes):
        if d.service in path:
            rows.append(_row(ctx, d.kind, d.service, path[d.service], d.at, d.version,
                             f"{d.previous_version} -> {d.version} by {d.author}"))
    for c in ctx.telemetry.flag_changes(None, minutes):
        if c.service in path:
            rows.append(_row(ctx, "flag", c.service, path[c.service], c.at, c.key,
                             f"{c.key} {c.from_percent:g}% -> {c.to_percent:g}% by {c.author}"))
    for e in ctx.telemetry.experiments(None):
        running = e.status == "running"
        if e.target_service in path and (running or ctx.minutes_ago(e.started_at) <= minutes):
            rows.append(_row(ctx, "experiment", e.target_service, path[e.target_service],
                             e.started_at, e.id, f"{e.title} ({e.status})"))
    rows.sort(key=lambda r: (r["age_minutes"], r["kind"], r["on"], r["ref"]))
    kinds = Counter(r["kind"] for r in rows)
    data = {"count": len(rows), "latest": rows[0] if rows else None, "changes": rows[:10],
            "config_count": kinds["config"], "deploy_count": kinds["deploy"] + kinds["rollback"],
            "flag_count": kinds["flag"], "experiment_count": kinds["experiment"]}
    if not rows:
        return OK, data, f"no changes on {service} or its dependencies in the last {minutes}m"
    latest = rows[0]
    return OK, data, (f"{len(rows)} change(s) on {service}'s path in {minutes}m; latest "
                      f"{latest['kind']} on {latest['on']} {latest['age_minutes']:g}m ago")

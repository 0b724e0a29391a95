"""What every diagnostic tool is built from: its context, the registry `@_tool` fills, the
error a bad argument raises, and the baseline comparison several tools share.

The tools themselves live in `toolbox.py` (metrics, logs, changes, topology) and in the
evidence modules (`log_templates.py`, `evidence.py`); `toolbox.py` imports them all, so
importing it registers every tool the catalog declares.
"""

from __future__ import annotations

import inspect
import statistics
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsloop.models import ServiceInfo, ToolStatus
from opsloop.models.catalog import TOOLS as CATALOG_TOOLS
from opsloop.models.catalog import ToolParam
from opsloop.tools.protocols import Clock, Telemetry

Outcome = tuple[ToolStatus, dict[str, Any], str]
OK, NO_DATA, ERROR = ToolStatus.OK, ToolStatus.NO_DATA, ToolStatus.ERROR


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


def num(value: float) -> float | int:
    """Whole numbers as int (a replica count binds as 8, not 8.0); others to 6 places."""
    return int(value) if float(value).is_integer() else round(value, 6)


def find_service(ctx: ToolContext, service: str) -> ServiceInfo:
    """The catalog entry of `service`; ToolInputError when the catalog has none."""
    for info in ctx.telemetry.services():
        if info.name == service:
            return info
    raise ToolInputError(f"unknown service {service!r}")


@dataclass(frozen=True)
class Change:
    """A recent window against the usual level before it (median and MAD, not mean and
    stdev: when the change began inside the baseline window, the changed minutes must not
    drag "usual" towards them or hide where they began)."""

    recent: float
    baseline: float
    ratio: float
    changed: bool
    threshold: float
    points: list[tuple[datetime, float]]


def compare(ctx: ToolContext, service: str, metric: str, minutes: int,
            baseline_minutes: int) -> Change | None:
    """`metric` over the last `minutes` vs its median over the `baseline_minutes` before;
    None when there is not more history than the recent window."""
    series = ctx.telemetry.metric(service, metric, minutes + baseline_minutes)
    points = [(p.at, p.value) for p in series.points]
    if len(points) <= minutes:
        return None
    base = [v for _, v in points[:-minutes]]
    recent = statistics.fmean(v for _, v in points[-minutes:])
    center = statistics.median(base)
    ratio = recent / center if abs(center) > 1e-9 else (1.0 if abs(recent) <= 1e-9 else 1e6)
    mad = statistics.median(abs(v - center) for v in base)
    threshold = max(3 * 1.4826 * mad, 0.1 * abs(center), 1e-6)
    return Change(recent, center, ratio, abs(recent - center) > threshold, threshold, points)


def onset(ctx: ToolContext, change: Change) -> float | None:
    """Minutes ago the current departure from the baseline began (allowing two quiet minutes)."""
    if not change.changed:
        return None
    up = change.recent >= change.baseline
    first: int | None = None
    quiet = 0
    for i in range(len(change.points) - 1, -1, -1):
        value = change.points[i][1]
        off = value - change.baseline if up else change.baseline - value
        if off > change.threshold:
            first, quiet = i, 0
        else:
            quiet += 1
            if quiet > 2:
                break
    return None if first is None else ctx.minutes_ago(change.points[first][0])

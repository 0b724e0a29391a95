"""Recorded production: a real incident captured as data, served through the tool protocols.

Telemetry answers from the recording and only from it: a series, a log, a deploy that was
not recorded is simply absent ("no data"), never invented. The clock starts when the
incident opened and moves only on `wait`. The actuator does not change anything real: it
writes down what it was asked, and when the recording knows what that action did
(`outcomes`), the recorded series after it are what telemetry shows from then on.
The format is written up in evals/README.md.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.models import (
    ActionResult,
    ActionStatus,
    ChaosExperiment,
    DeployEvent,
    FlagChange,
    FlagState,
    LogLine,
    MetricPoint,
    MetricSeries,
    ParamValue,
    RemediationAction,
    ServiceInfo,
)
from opsloop.models.catalog import ACTION_TYPES, METRICS
from opsloop.tools.recorded_series import Point, SeriesSpec, parse_time

SeriesMap = dict[str, dict[str, SeriesSpec]]  # service -> metric -> series


class RecordingError(ValueError):
    """A recording that cannot be read; the message names the file and the field."""


class ActionMatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    service: str
    params: dict[str, ParamValue] = Field(default_factory=dict)  # must all be present

    def matches(self, action: RemediationAction) -> bool:
        return (
            action.type == self.type
            and action.service == self.service
            and all(str(action.params.get(k)) == str(v) for k, v in self.params.items())
        )


class Outcome(BaseModel):
    """What production did after an action; series start the minute after it ran."""

    model_config = ConfigDict(extra="forbid")

    when: ActionMatch
    series: SeriesMap = Field(default_factory=dict)
    note: str = ""


class FlagsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    states: list[FlagState] = Field(default_factory=list)
    changes: list[FlagChange] = Field(default_factory=list)


class Recording(BaseModel):
    """Everything the agents may ask about one incident."""

    now: datetime
    services: list[ServiceInfo]
    metrics: SeriesMap = Field(default_factory=dict)
    priors: dict[str, dict[str, float]] = Field(default_factory=dict)  # long-run means
    logs: list[LogLine] = Field(default_factory=list)
    deploys: list[DeployEvent] = Field(default_factory=list)
    flags: FlagsFile = Field(default_factory=FlagsFile)
    experiments: list[ChaosExperiment] = Field(default_factory=list)
    outcomes: list[Outcome] = Field(default_factory=list)


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise RecordingError(f"{path}: cannot read: {exc}") from None


def _section(folder: Path, name: str) -> Any:
    for suffix in (".yaml", ".yml", ".json"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            return _read(path)
    return None


def _log_files(folder: Path) -> list[dict[str, Any]]:
    """`logs/<service>.log`, one `<ISO time> <LEVEL> <message>` per line, as exported."""
    lines: list[dict[str, Any]] = []
    for path in sorted((folder / "logs").glob("*.log")) if (folder / "logs").is_dir() else []:
        for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            parts = raw.split(None, 2)
            if len(parts) < 3:
                raise RecordingError(f"{path}:{n}: expected '<time> <LEVEL> <message>'")
            try:
                at = parse_time(parts[0])
            except ValueError as exc:
                raise RecordingError(f"{path}:{n}: {exc}") from None
            lines.append({"at": at, "service": path.stem, "level": parts[1].upper(),
                          "message": parts[2]})
    return lines


def load_recording(folder: Path, now: datetime) -> Recording:
    """Read a case folder's recorded tool outputs (every section but services is optional)."""
    data: dict[str, Any] = {"now": now}
    for name in ("services", "metrics", "priors", "deploys", "flags", "experiments", "outcomes"):
        value = _section(folder, name)
        if value is not None:
            data[name] = value
    if "services" not in data:
        raise RecordingError(f"{folder}: a recording needs services.yaml (the topology)")
    logs = _section(folder, "logs") or []
    data["logs"] = [*logs, *_log_files(folder)]
    try:
        recording = Recording.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordingError(f"{folder}: {where}: {first['msg']}") from None
    names = {s.name for s in recording.services}
    for label, series in [("metrics", recording.metrics),
                          *[(f"outcomes[{i}].series", o.series)
                            for i, o in enumerate(recording.outcomes)]]:
        for service, metrics in series.items():
            if service not in names:
                raise RecordingError(f"{folder}: {label}: service {service!r} is not in services")
            bad = sorted(set(metrics) - set(METRICS))
            if bad:
                raise RecordingError(f"{folder}: {label}.{service}: unknown metric(s) "
                                     f"{', '.join(bad)}; metrics: {', '.join(METRICS)}")
    return recording


class _Overlay:
    """One action's recorded effect, from when it ran until it was reverted."""

    def __init__(self, key: str, at: datetime, series: dict[tuple[str, str], list[Point]]):
        self.key, self.at, self.series = key, at, series
        self.until: datetime | None = None


class RecordedProduction:
    """Clock, Telemetry and Actuator over a Recording."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._now = recording.now
        self._services = {s.name: s.model_copy() for s in recording.services}
        self._base: dict[tuple[str, str], list[Point]] = {
            (service, metric): spec.resolve()
            for service, metrics in recording.metrics.items()
            for metric, spec in metrics.items()
        }
        self._deploys = list(recording.deploys)
        self._flags = {(f.service, f.key): f.model_copy() for f in recording.flags.states}
        self._flag_changes = list(recording.flags.changes)
        self._overlays: list[_Overlay] = []
        self.executed: dict[str, ActionResult] = {}
        self.asked: list[tuple[RemediationAction, str]] = []  # every execute call, in order
        self._reverted: set[str] = set()

    # -- Clock ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._now

    def wait(self, minutes: int) -> None:
        if minutes < 0:
            raise ValueError(f"cannot wait a negative number of minutes ({minutes})")
        self._now += timedelta(minutes=minutes)

    # -- Telemetry -----------------------------------------------------------------------

    def _check(self, service: str) -> None:
        if service not in self._services:
            raise KeyError(f"unknown service {service!r}; services: {', '.join(self._services)}")

    def _points(self, service: str, metric: str) -> list[Point]:
        self._check(service)
        if metric not in METRICS:
            raise KeyError(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
        points = self._base.get((service, metric), [])
        for overlay in self._overlays:  # later actions win over earlier ones
            effect = overlay.series.get((service, metric))
            if effect is None:
                continue
            end = overlay.until
            kept = [p for p in points if p[0] <= overlay.at or (end is not None and p[0] > end)]
            added = [p for p in effect if end is None or p[0] <= end]
            points = sorted(kept + added)
        return [p for p in points if p[0] <= self._now]

    def services(self) -> list[ServiceInfo]:
        return [s.model_copy() for s in self._services.values()]

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        since = self._now - timedelta(minutes=max(minutes, 0))
        points = [MetricPoint(at=at, value=v) for at, v in self._points(service, metric)
                  if at > since]
        return MetricSeries(service=service, metric=metric, points=points)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        """Mean over `minutes`; unrecorded minutes count at the recorded prior, if one is given."""
        if minutes < 1:
            raise ValueError(f"minutes must be at least 1, got {minutes}")
        values = self.metric(service, metric, minutes).values()
        prior = self.recording.priors.get(service, {}).get(metric)
        if prior is not None and len(values) < minutes:
            return (sum(values) + prior * (minutes - len(values))) / minutes
        return sum(values) / len(values) if values else None

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]:
        self._check(service)
        since = self._now - timedelta(minutes=minutes)
        rx = None
        if pattern:
            try:
                rx = re.compile(pattern, re.IGNORECASE)
            except re.error:  # not a regex: the literal text, as the simulator does
                rx = re.compile(re.escape(pattern), re.IGNORECASE)
        lines = sorted(
            (ln for ln in self.recording.logs
             if ln.service == service and since < ln.at <= self._now
             and (rx is None or rx.search(ln.message))),
            key=lambda ln: ln.at,
        )
        return lines[-limit:] if limit > 0 else []

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        if service is not None:
            self._check(service)
        since = self._now - timedelta(minutes=minutes)
        return [d.model_copy() for d in self._deploys
                if since < d.at <= self._now and (service is None or d.service == service)]

    def flags(self, service: str | None = None) -> list[FlagState]:
        if service is not None:
            self._check(service)
        return [f.model_copy() for (svc, _), f in self._flags.items()
                if service is None or svc == service]

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        if service is not None:
            self._check(service)
        since = self._now - timedelta(minutes=minutes)
        return [c.model_copy() for c in self._flag_changes
                if since < c.at <= self._now and (service is None or c.service == service)]

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        if service is not None:
            self._check(service)
        return [e.model_copy(deep=True) for e in self.recording.experiments
                if e.started_at <= self._now and (service is None or e.target_service == service)]

    # -- Actuator ------------------------------------------------------------------------

    def _apply(self, action: RemediationAction) -> str:
        """The bookkeeping a real change leaves behind: deploy and flag records."""
        if action.type == "rollback_deploy":
            own = sorted((d for d in self._deploys if d.service == action.service),
                         key=lambda d: d.at)
            current = self._services[action.service].version
            target = str(action.params.get("to_version") or (own[-1].previous_version
                                                            if own else current))
            self._deploys.append(DeployEvent(at=self._now, service=action.service,
                                             version=target, previous_version=current,
                                             author="opsloop", kind="rollback"))
            self._services[action.service].version = target
            return f"rolled back {action.service} {current} -> {target}"
        if action.type in ("disable_flag", "set_flag_rollout"):
            key = str(action.params.get("flag", ""))
            flag = self._flags.get((action.service, key))
            if flag is None:
                raise LookupError(f"no flag {key!r} on {action.service} in the recording")
            percent = float(action.params.get("percent", 0.0))
            self._flag_changes.append(FlagChange(
                at=self._now, key=key, service=action.service, enabled=percent > 0,
                from_percent=flag.rollout_percent, to_percent=percent, author="opsloop"))
            flag.enabled, flag.rollout_percent, flag.updated_at = percent > 0, percent, self._now
            return f"flag {key} on {action.service} set to {percent:g}%"
        return f"{action.describe()} sent"

    def execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        """Record the action; when the recording knows its effect, show that effect from now."""
        if idempotency_key in self.executed:
            return self.executed[idempotency_key].model_copy(update={"replayed": True})
        self.asked.append((action.model_copy(deep=True), idempotency_key))
        status, undo = ActionStatus.SUCCEEDED, dict[str, Any]()
        if action.type not in ACTION_TYPES:
            status, detail = ActionStatus.FAILED, f"unknown action type {action.type!r}"
        elif action.service not in self._services:
            status, detail = ActionStatus.FAILED, f"unknown service {action.service!r}"
        else:
            try:
                detail = self._apply(action)
            except LookupError as exc:
                status, detail = ActionStatus.FAILED, str(exc)
        if status is ActionStatus.SUCCEEDED:
            outcome = next((o for o in self.recording.outcomes if o.when.matches(action)), None)
            if outcome is None:
                detail += "; the recording has no outcome for it: nothing observable changes"
            else:
                self._overlays.append(_Overlay(idempotency_key, self._now, {
                    (svc, metric): spec.after(self._now)
                    for svc, metrics in outcome.series.items() for metric, spec in metrics.items()
                }))
                detail += "; recorded outcome applies" + (f": {outcome.note}" if outcome.note
                                                          else "")
            if ACTION_TYPES[action.type]:
                undo = {"kind": "recorded", "key": idempotency_key}
        result = ActionResult(action_id=action.id, action=action.describe(),
                              idempotency_key=idempotency_key, status=status, detail=detail,
                              at=self._now, undo=undo)
        self.executed[idempotency_key] = result
        return result.model_copy(deep=True)

    def revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        """End a reversible action's recorded effect; production goes back to its own course."""
        if idempotency_key in self.executed:
            return self.executed[idempotency_key].model_copy(update={"replayed": True})
        status, detail = ActionStatus.SKIPPED, f"{result.action} is not reversible"
        if result.status is not ActionStatus.SUCCEEDED:
            detail = f"nothing to revert: {result.action} did not succeed"
        elif result.undo.get("kind") == "recorded":
            live = [o for o in self._overlays if o.key == result.undo["key"] and o.until is None]
            for overlay in live:
                overlay.until = self._now
            reverted = not live and result.undo["key"] in self._reverted
            status = ActionStatus.SKIPPED if reverted else ActionStatus.SUCCEEDED
            detail = f"{result.action} was already reverted" if reverted else (
                f"reverted {result.action}")
            self._reverted.add(result.undo["key"])
        out = ActionResult(action_id=result.action_id, action=f"revert {result.action}",
                           idempotency_key=idempotency_key, status=status, detail=detail,
                           at=self._now)
        self.executed[idempotency_key] = out
        return out.model_copy(deep=True)

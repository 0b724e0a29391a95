"""Recorded production: a real incident captured as data, served through the tool protocols.

Metrics and the change feed answer from the recording and only from it: a series, a log, a
deploy that was not recorded is simply absent ("no data"), never invented. The clock starts
when the incident opened and moves only on `wait`. The actuator does not change anything
real: it writes down what it was asked, and when the recording knows what that action did
(`outcomes`), the recorded series after it are what the metrics show from then on.
The format is `recording.py`'s, written up in evals/README.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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
    RemediationAction,
    ServiceInfo,
)
from opsloop.models.catalog import ACTION_TYPES
from opsloop.tools.backend import (
    IdempotentActuator,
    check_metric,
    check_service,
    log_pattern,
    within,
)
from opsloop.tools.protocols import Production
from opsloop.tools.recorded_series import Point
from opsloop.tools.recording import Recording, RecordingError, load_recording

__all__ = ["RecordedProduction", "RecordingError", "load_recording"]


class RecordedClock:
    """The incident's time: it starts when the incident opened and moves only on `wait`."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def wait(self, minutes: int) -> None:
        if minutes < 0:
            raise ValueError(f"cannot wait a negative number of minutes ({minutes})")
        self.at += timedelta(minutes=minutes)


class RecordedChanges:
    """The recorded catalog, logs, deploys, flags and experiments, up to the clock's now;
    actions add the deploy and flag records a real change leaves behind."""

    def __init__(self, recording: Recording, clock: RecordedClock) -> None:
        self.recording = recording
        self.clock = clock
        self.catalog = {s.name: s.model_copy() for s in recording.services}
        self.deploy_events = list(recording.deploys)
        self.flag_states = {(f.service, f.key): f.model_copy() for f in recording.flags.states}
        self.flag_history = list(recording.flags.changes)

    def check(self, service: str | None) -> None:
        if service is not None:
            check_service(service, self.catalog)

    def services(self) -> list[ServiceInfo]:
        return [s.model_copy() for s in self.catalog.values()]

    def logs(
        self, service: str, minutes: int, pattern: str | None = None, limit: int = 200
    ) -> list[LogLine]:
        self.check(service)
        rx = log_pattern(pattern)
        lines = sorted(
            (ln for ln in within(self.recording.logs, self.clock.now(), minutes, service)
             if rx is None or rx.search(ln.message)),
            key=lambda ln: ln.at,
        )
        return lines[-limit:] if limit > 0 else []

    def deploys(self, service: str | None, minutes: int) -> list[DeployEvent]:
        self.check(service)
        return [d.model_copy() for d in within(self.deploy_events, self.clock.now(), minutes,
                                               service)]

    def flags(self, service: str | None = None) -> list[FlagState]:
        self.check(service)
        return [f.model_copy() for (svc, _), f in self.flag_states.items()
                if service is None or svc == service]

    def flag_changes(self, service: str | None, minutes: int) -> list[FlagChange]:
        self.check(service)
        return [c.model_copy() for c in within(self.flag_history, self.clock.now(), minutes,
                                               service)]

    def variant_counts(self, service: str, flag: str,
                       minutes: int) -> dict[str, dict[str, int]]:
        """Recordings keep no per-variant traffic: a KeyError saying so (a legitimate answer:
        the experiment cannot be judged from this recording)."""
        self.check(service)
        raise KeyError(f"per-variant traffic of flag {flag!r} on {service!r} was not recorded "
                       "(recordings keep flag states and changes only)")

    def experiments(self, service: str | None = None) -> list[ChaosExperiment]:
        self.check(service)
        now = self.clock.now()
        return [e.model_copy(deep=True) for e in self.recording.experiments
                if e.started_at <= now and (service is None or e.target_service == service)]

    def releases(self, service: str) -> list[str]:
        self.check(service)
        raise KeyError(f"releases of {service!r} were not recorded")

    def sbom(self, service: str, version: str | None = None) -> dict[str, Any]:
        self.check(service)
        raise KeyError(f"no SBOM of {service!r} was recorded")


class _Overlay:
    """One action's recorded effect, from when it ran until it was reverted."""

    def __init__(self, key: str, at: datetime, series: dict[tuple[str, str], list[Point]]):
        self.key, self.at, self.series = key, at, series
        self.until: datetime | None = None


class RecordedMetrics:
    """The recorded series up to the clock's now, with the effects of actions laid over them."""

    def __init__(self, recording: Recording, clock: RecordedClock) -> None:
        self.recording = recording
        self.clock = clock
        self.names = [s.name for s in recording.services]
        self.base: dict[tuple[str, str], list[Point]] = {
            (service, metric): spec.resolve()
            for service, metrics in recording.metrics.items()
            for metric, spec in metrics.items()
        }
        self.overlays: list[_Overlay] = []

    def _points(self, service: str, metric: str) -> list[Point]:
        check_service(service, self.names)
        check_metric(metric)
        points = self.base.get((service, metric), [])
        for overlay in self.overlays:  # later actions win over earlier ones
            effect = overlay.series.get((service, metric))
            if effect is None:
                continue
            end = overlay.until
            kept = [p for p in points if p[0] <= overlay.at or (end is not None and p[0] > end)]
            added = [p for p in effect if end is None or p[0] <= end]
            points = sorted(kept + added)
        now = self.clock.now()
        return [p for p in points if p[0] <= now]

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        since = self.clock.now() - timedelta(minutes=max(minutes, 0))
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


class RecordedActuator(IdempotentActuator):
    """Writes down what it was asked; a known outcome shows in the metrics from now on."""

    def __init__(self, recording: Recording, clock: RecordedClock, changes: RecordedChanges,
                 metrics: RecordedMetrics) -> None:
        self.recording = recording
        self.clock = clock
        self.changes = changes
        self.metrics = metrics
        self.executed: dict[str, ActionResult] = {}
        self.asked: list[tuple[RemediationAction, str]] = []  # every execute call, in order
        self.reverted: set[str] = set()

    def _results(self) -> dict[str, ActionResult]:
        return self.executed

    def _apply(self, action: RemediationAction) -> str:
        """The bookkeeping a real change leaves behind: deploy and flag records."""
        now, changes = self.clock.now(), self.changes
        if action.type == "rollback_deploy":
            own = sorted((d for d in changes.deploy_events if d.service == action.service),
                         key=lambda d: d.at)
            current = changes.catalog[action.service].version
            target = str(action.params.get("to_version") or (own[-1].previous_version
                                                            if own else current))
            changes.deploy_events.append(DeployEvent(at=now, service=action.service,
                                                     version=target, previous_version=current,
                                                     author="opsloop", kind="rollback"))
            changes.catalog[action.service].version = target
            return f"rolled back {action.service} {current} -> {target}"
        if action.type in ("disable_flag", "set_flag_rollout"):
            key = str(action.params.get("flag", ""))
            flag = changes.flag_states.get((action.service, key))
            if flag is None:
                raise LookupError(f"no flag {key!r} on {action.service} in the recording")
            percent = float(action.params.get("percent", 0.0))
            changes.flag_history.append(FlagChange(
                at=now, key=key, service=action.service, enabled=percent > 0,
                from_percent=flag.rollout_percent, to_percent=percent, author="opsloop"))
            flag.enabled, flag.rollout_percent, flag.updated_at = percent > 0, percent, now
            return f"flag {key} on {action.service} set to {percent:g}%"
        return f"{action.describe()} sent"

    def _execute(self, action: RemediationAction, idempotency_key: str) -> ActionResult:
        """Record the action; when the recording knows its effect, show that effect from now."""
        self.asked.append((action.model_copy(deep=True), idempotency_key))
        now = self.clock.now()
        status, undo = ActionStatus.SUCCEEDED, dict[str, Any]()
        if action.type not in ACTION_TYPES:
            status, detail = ActionStatus.FAILED, f"unknown action type {action.type!r}"
        elif action.service not in self.changes.catalog:
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
                self.metrics.overlays.append(_Overlay(idempotency_key, now, {
                    (svc, metric): spec.after(now)
                    for svc, metrics in outcome.series.items() for metric, spec in metrics.items()
                }))
                detail += "; recorded outcome applies" + (f": {outcome.note}" if outcome.note
                                                          else "")
            if ACTION_TYPES[action.type]:
                undo = {"kind": "recorded", "key": idempotency_key}
        return ActionResult(action_id=action.id, action=action.describe(),
                            idempotency_key=idempotency_key, status=status, detail=detail,
                            at=now, undo=undo)

    def _revert(self, result: ActionResult, idempotency_key: str) -> ActionResult:
        """End a reversible action's recorded effect; production goes back to its own course."""
        now = self.clock.now()
        status, detail = ActionStatus.SKIPPED, f"{result.action} is not reversible"
        if result.status is not ActionStatus.SUCCEEDED:
            detail = f"nothing to revert: {result.action} did not succeed"
        elif result.undo.get("kind") == "recorded":
            live = [o for o in self.metrics.overlays
                    if o.key == result.undo["key"] and o.until is None]
            for overlay in live:
                overlay.until = now
            reverted = not live and result.undo["key"] in self.reverted
            status = ActionStatus.SKIPPED if reverted else ActionStatus.SUCCEEDED
            detail = f"{result.action} was already reverted" if reverted else (
                f"reverted {result.action}")
            self.reverted.add(result.undo["key"])
        return ActionResult(action_id=result.action_id, action=f"revert {result.action}",
                            idempotency_key=idempotency_key, status=status, detail=detail,
                            at=now)


class RecordedProduction(Production):
    """A recording served as production: its four parts share one clock."""

    def __init__(self, recording: Recording) -> None:
        clock = RecordedClock(recording.now)
        changes = RecordedChanges(recording, clock)
        metrics = RecordedMetrics(recording, clock)
        actuator = RecordedActuator(recording, clock, changes, metrics)
        super().__init__(metrics=metrics, changes=changes, clock=clock, actuator=actuator)
        self.recording = recording
        self.asked = actuator.asked  # what the loop asked for, for the harness and tests

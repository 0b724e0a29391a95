"""Scenario variants: a built-in scenario (or a healthy fleet) reshaped by data.

A variant moves the fault in time, adds scheduled events (a second fault, red herrings,
noise, a flapping outage), overrides service fields (e.g. an already-spent error budget)
and can hide metrics from telemetry (a broken exporter). Eval cases are written as
variants, so a new case needs no code. The physics is untouched: every symptom still
follows from the state, never from the variant's name.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsloop.models import MetricSeries
from opsloop.models.catalog import METRICS
from opsloop.simulator import physics
from opsloop.simulator.events import schedule
from opsloop.simulator.fleet import new_state
from opsloop.simulator.scenarios import SCENARIOS, get_scenario
from opsloop.simulator.state import ServiceState, SimState, tick_time
from opsloop.tools.protocols import Metrics

HEALTHY = "healthy"  # no built-in fault: the variant's events are the whole story
_EVENT_KINDS = {
    "deploy", "flag", "traffic", "leak", "log_growth", "region_outage", "autoscaler",
    "chaos_start", "bad_instance", "log",
}


class VariantEvent(BaseModel):
    """One scheduled change, in the simulator's own event vocabulary (see events.apply)."""

    model_config = ConfigDict(extra="forbid")

    at: int  # minutes after 09:00; negative = during the history
    kind: str
    service: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in _EVENT_KINDS:
            kinds = ", ".join(sorted(_EVENT_KINDS))
            raise ValueError(f"unknown event kind {value!r}; kinds: {kinds}")
        return value


class HiddenMetric(BaseModel):
    """A metric telemetry stops serving from `from_minute` on (a dead exporter)."""

    model_config = ConfigDict(extra="forbid")

    service: str
    metric: str
    from_minute: int = -100_000  # default: never recorded at all

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; metrics: {', '.join(METRICS)}")
        return value


class Variant(BaseModel):
    """What an eval case says about its simulated production."""

    model_config = ConfigDict(extra="forbid")

    base: str = HEALTHY  # a built-in scenario name, or "healthy"
    seed: int = 7
    fault_at_minute: int | None = None  # moves the base scenario's fault
    run_minutes: int | None = None
    history_minutes: int | None = None
    events: list[VariantEvent] = Field(default_factory=list)
    services: dict[str, dict[str, Any]] = Field(default_factory=dict)  # ServiceState overrides
    hidden_metrics: list[HiddenMetric] = Field(default_factory=list)

    @field_validator("base")
    @classmethod
    def _known_base(cls, value: str) -> str:
        if value != HEALTHY and value not in SCENARIOS:
            raise ValueError(
                f"unknown base scenario {value!r}; use {HEALTHY!r} or one of "
                f"{', '.join(sorted(SCENARIOS))}"
            )
        return value

    @property
    def fault_at(self) -> int:
        """The minute the (first) fault starts: the base scenario's, moved, or the first event."""
        if self.fault_at_minute is not None:
            return self.fault_at_minute
        if self.base != HEALTHY:
            return get_scenario(self.base).fault_at_minute
        return min((e.at for e in self.events), default=0)

    @property
    def minutes(self) -> int:
        if self.run_minutes is not None:
            return self.run_minutes
        return get_scenario(self.base).run_minutes if self.base != HEALTHY else 120

    def build(self, name: str) -> SimState:
        """The state at 09:00 with its history simulated, like Scenario.build."""
        history = self.history_minutes
        if history is None:
            history = get_scenario(self.base).history_minutes if self.base != HEALTHY else 120
        state = new_state(self.seed, name, history)
        for service, fields in self.services.items():
            if service not in state.services:
                raise ValueError(
                    f"services: unknown service {service!r}; services: {', '.join(state.services)}"
                )
            unknown = sorted(set(fields) - set(ServiceState.model_fields))
            if unknown:
                raise ValueError(f"services.{service}: unknown field(s) {', '.join(unknown)}")
            current = state.services[service].model_dump()
            state.services[service] = ServiceState.model_validate({**current, **fields})
        if self.base != HEALTHY:
            get_scenario(self.base).setup(state, self.fault_at)
        for ev in self.events:
            if ev.service not in state.services:
                raise ValueError(f"events: unknown service {ev.service!r} at minute {ev.at}")
            schedule(state, ev.at, ev.kind, ev.service, **ev.params)
        while state.tick < 0:
            physics.step(state)
        return state


class MaskedMetrics:
    """Metrics with some series missing: series and averages end where the exporter died."""

    def __init__(self, inner: Metrics, hidden: list[HiddenMetric]) -> None:
        self.inner = inner
        self.hidden = {(h.service, h.metric): tick_time(h.from_minute) for h in hidden}

    def metric(self, service: str, metric: str, minutes: int) -> MetricSeries:
        series = self.inner.metric(service, metric, minutes)
        cutoff = self.hidden.get((service, metric))
        if cutoff is None:
            return series
        points = [p for p in series.points if p.at < cutoff]
        return MetricSeries.model_construct(service=service, metric=metric, points=points)

    def average(self, service: str, metric: str, minutes: int) -> float | None:
        if (service, metric) not in self.hidden:
            return self.inner.average(service, metric, minutes)
        values = self.metric(service, metric, minutes).values()
        return sum(values) / len(values) if values else None

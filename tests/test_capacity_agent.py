"""The capacity agent against the real simulator, with answer keys.

Each case is a healthy fleet simulated for days with one thing changed (a disk filling at a
known rate, a gateway whose daily peak reaches scale_at): the answer key is the time the
physics says the limit is reached, and what capacity.yaml says to do about it. The same
fleet without the change must raise nothing.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.runner import OperateLoop
from opsloop.models import DecisionOutcome
from opsloop.policy import Policies
from opsloop.policy.schema import AgentSchedule, SchedulePolicy
from opsloop.scheduled.agents.capacity import Capacity, decide
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState, physics
from opsloop.simulator.events import schedule
from opsloop.simulator.fleet import new_state
from opsloop.store import IncidentStore

DAY = 24 * 60
SEARCH_ROOM_GB = 100 - 40 - 5  # search's volume: 100 GB, 40 GB data, 5 GB logs


@functools.cache
def _simulated(days: int, events: tuple[tuple[int, str, str, tuple[tuple[str, Any], ...]], ...]
               ) -> SimState:
    state = new_state(7, "bad_deploy", days * DAY)
    for at, kind, service, params in events:
        schedule(state, at, kind, service, **dict(params))
    while state.tick < 0:
        physics.step(state)
    return state


def fleet(days: int, *events: tuple[int, str, str, dict[str, Any]]) -> SimState:
    """A copy of a fleet simulated for `days` up to 09:00 Monday, with `events` scheduled
    (minutes relative to then); each (days, events) is simulated once per test run."""
    frozen = tuple((at, kind, svc, tuple(sorted(p.items()))) for at, kind, svc, p in events)
    return copy.deepcopy(_simulated(days, frozen))


def disk_filling_in(hours: float, started_hours_ago: float) -> tuple[int, str, str, dict[str, Any]]:
    """Search's logs growing since `started_hours_ago` so the volume is full `hours` from now."""
    rate = SEARCH_ROOM_GB / ((hours + started_hours_ago) * 60)
    return (-round(started_hours_ago * 60), "log_growth", "search", {"gb_per_min": rate})


def gateway_traffic(multiplier: float, days: int) -> tuple[int, str, str, dict[str, Any]]:
    return (-days * DAY, "traffic", "api-gateway", {"multiplier": multiplier})


def run_agent(state: SimState, settings: Settings, policies: Policies) -> Analysis:
    env = SimEnvironment(state)
    ctx = AgentContext(run_id="run-capacity-test", agent="capacity", due_at=env.now(),
                       now=env.now(), settings=settings, policies=policies, telemetry=env,
                       store=IncidentStore(settings.state_dir / "incidents.db"))
    agent = Capacity()
    return agent.analyse(ctx, agent.observe(ctx))


def rows(analysis: Analysis) -> dict[tuple[str, str], dict[str, Any]]:
    import json

    report = next(p for p in analysis.reports if p.endswith(".json"))
    return {(r["service"], r["resource"]): r
            for r in json.loads(Path(report).read_text())["rows"]}


def test_a_stable_fleet_raises_nothing(settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(4), settings, shipped_policies)
    assert analysis.findings == [] and analysis.proposals == [] and analysis.signals == []
    assert analysis.summary.startswith("36 series forecast: 0 to escalate, 0 to alert, 0 to")
    md, js, png = analysis.reports
    assert md.endswith("capacity-2026-11-02.md") and js.endswith(".json")
    assert Path(png).read_bytes().startswith(b"\x89PNG")
    assert "Nothing: every series stays under scale_at" in Path(md).read_text()


def test_a_disk_full_in_30_hours_is_alerted_with_its_time_to_exhaustion(
        settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(2, disk_filling_in(30, started_hours_ago=12)), settings,
                         shipped_policies)
    (finding,) = analysis.findings
    assert finding.subject == "search disk_utilization" and finding.level == "warning"
    assert finding.kind == "capacity_alert"
    row = rows(analysis)[("search", "disk_utilization")]
    assert row["decision"]["rule"] == "capacity.yaml:resources.disk_utilization.alert_at"
    exhaustion = row["exhaustion"]
    # Answer key: full 30 hours after 09:00 Monday.
    assert 27 <= exhaustion["expected_hours"] <= 33
    full = "2026-11-03T15:00"
    assert exhaustion["earliest"][:16] <= full <= (exhaustion["latest"] or "9999")[:16]
    assert any("exhaustion (1) expected 2026-11-03" in e for e in finding.evidence)
    # More replicas do not empty a disk: a person is told, nothing is scaled.
    assert analysis.proposals == []
    (signal,) = analysis.signals
    assert "capacity_forecast" in signal


def test_a_disk_full_before_a_person_could_act_is_escalated(
        settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(2, disk_filling_in(5, started_hours_ago=6)), settings,
                         shipped_policies)
    (finding,) = analysis.findings
    assert finding.level == "critical" and finding.kind == "capacity_escalate"
    row = rows(analysis)[("search", "disk_utilization")]
    assert row["decision"]["rule"] == "capacity.yaml:forecast.lead_time"
    assert 4 <= row["exhaustion"]["expected_hours"] <= 6
    # The same fill with a shorter lead time is only an alert: lead_time decides.
    capacity = shipped_policies.capacity
    relaxed = shipped_policies.model_copy(update={"capacity": capacity.model_copy(update={
        "forecast": capacity.forecast.model_copy(update={"lead_time": 120})})})
    again = run_agent(fleet(2, disk_filling_in(5, started_hours_ago=6)), settings, relaxed)
    assert [f.kind for f in again.findings] == ["capacity_alert"]


def test_a_daily_peak_that_will_cross_scale_at_is_scaled_ahead_of_the_crossing(
        settings: Settings, shipped_policies: Policies) -> None:
    # 2.1x traffic: 0.715 saturation on average, ±6% daily, above 0.75 from ~11:40 to ~16:20.
    analysis = run_agent(fleet(4, gateway_traffic(2.1, 4)), settings, shipped_policies)
    row = rows(analysis)[("api-gateway", "saturation")]
    assert row["latest"] < 0.75  # not there yet at 09:00
    assert row["forecast"]["model"].startswith("ETS(A,Z,A) m=24")
    crossing = row["crossings"]["scale_at"]["expected"]
    assert "2026-11-02T11:00" <= crossing[:16] <= "2026-11-02T13:00"  # today's peak
    assert row["decision"]["action"] == "scale"
    (proposal,) = analysis.proposals
    assert proposal.action.describe() == "scale_out(api-gateway, replicas=7)"
    assert proposal.specialist == "capacity"
    assert [f.subject for f in analysis.findings] == ["api-gateway saturation"]
    # The same fleet with a peak that stays under scale_at: nothing.
    calm = run_agent(fleet(4, gateway_traffic(1.9, 4)), settings, shipped_policies)
    assert calm.proposals == [] and calm.findings == []


def busy_mondays(monday: float, other: float, weeks: int = 3
                 ) -> list[tuple[int, str, str, dict[str, Any]]]:
    """Gateway traffic set at each midnight: `monday` on Mondays, `other` on other days."""
    midnight = -9 * 60  # the clock starts Monday 09:00
    return [(midnight + day * DAY, "traffic", "api-gateway",
             {"multiplier": monday if day % 7 == 0 else other})
            for day in range(-7 * weeks, 1)]


@pytest.mark.slow  # three weeks of fleet simulated twice: ~45 s
def test_a_weekly_peak_that_will_saturate_this_monday_is_seen_from_the_weekly_pattern(
        settings: Settings, shipped_policies: Policies) -> None:
    # Mondays at 2.3x (0.78 saturation, 0.83 at 14:00), other days 1.6x: Sunday never came
    # near scale_at, so only the weekly pattern says today will.
    analysis = run_agent(fleet(22, *busy_mondays(2.3, 1.6)), settings, shipped_policies)
    row = rows(analysis)[("api-gateway", "saturation")]
    assert row["forecast"]["model"].startswith("MSTL(m=24,168)")
    crossing = row["crossings"]["scale_at"]["expected"]
    assert crossing is not None and crossing[:10] == "2026-11-02"  # today, Monday
    assert row["decision"]["action"] in ("scale", "alert")
    assert [p.action.service for p in analysis.proposals] == ["api-gateway"]
    # Every day alike at 1.6x: nothing.
    calm = run_agent(fleet(22, *busy_mondays(1.6, 1.6)), settings, shipped_policies)
    assert calm.findings == [] and calm.proposals == []


def test_a_service_at_its_replica_maximum_is_alerted_not_scaled(
        settings: Settings, shipped_policies: Policies) -> None:
    capacity = shipped_policies.capacity
    replicas = capacity.replicas.model_copy(update={"services": {
        **capacity.replicas.services,
        "api-gateway": capacity.replicas.services["api-gateway"].model_copy(
            update={"max": 6})}})
    capped = shipped_policies.model_copy(update={"capacity": capacity.model_copy(
        update={"replicas": replicas})})
    analysis = run_agent(fleet(4, gateway_traffic(2.1, 4)), settings, capped)
    assert analysis.proposals == []
    (finding,) = analysis.findings
    assert any("already at capacity.yaml's maximum of 6" in e for e in finding.evidence)


def test_decide_names_the_rule_strictest_first(shipped_policies: Policies) -> None:
    from opsloop.forecast import Crossing

    t = shipped_policies.capacity.resources["cpu_utilization"]

    def at(**steps: int | None) -> dict[str, Crossing]:
        return {n: Crossing(getattr(t, n), 80, steps.get(n), steps.get(n), None)
                for n in ("scale_at", "alert_at", "escalate_at", "limit")}

    assert decide("cpu_utilization", t, 0.96, at(), 8, 60).rule.endswith("escalate_at")
    lead = decide("cpu_utilization", t, 0.5, at(scale_at=1, alert_at=2, escalate_at=9,
                                                  limit=7), 8, 60)
    assert (lead.action, lead.rule) == ("escalate", "capacity.yaml:forecast.lead_time")
    late = decide("cpu_utilization", t, 0.5, at(scale_at=1, alert_at=2, escalate_at=9,
                                                  limit=10), 8, 60)
    assert (late.action, late.rule) == ("alert", "capacity.yaml:resources.cpu_utilization"
                                                 ".alert_at")
    assert decide("cpu_utilization", t, 0.5, at(scale_at=30), 8, 60).action == "scale"
    assert decide("cpu_utilization", t, 0.5, at(), 8, 60).action == "none"


def test_a_scale_out_proposal_goes_through_the_guardrails_and_is_acted_on(
        settings: Settings, make_loop: Callable[[Settings], OperateLoop],
        shipped_policies: Policies) -> None:
    ref, env = new_simulation("bad_deploy", 7, settings)
    env.state = fleet(4, gateway_traffic(2.1, 4))
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    env.close()
    policies = shipped_policies.model_copy(update={"schedule": SchedulePolicy(
        version=1, agents={"capacity": AgentSchedule(cron="20 */6 * * *")})})
    loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        now = open_environment(ref, settings).now()
        run = scheduler.run_now("capacity", now + timedelta(seconds=1))
        assert run.status == "succeeded", run.error
        record = loop.store.get_incident(run.record_id or "")
        (case,) = record.actions
        assert case.proposal.action.describe() == "scale_out(api-gateway, replicas=7)"
        assert case.decision is not None and case.decision.outcome is DecisionOutcome.AUTO
        assert case.result is not None and case.result.status.value == "succeeded"
        after = open_environment(ref, settings)
        assert next(s for s in after.services() if s.name == "api-gateway").replicas == 7
        after.close()
    finally:
        loop.close()
        ledger.close()


@pytest.mark.parametrize("hours", [10, 30])
def test_time_to_exhaustion_follows_the_fill_rate(hours: int, settings: Settings,
                                                  shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(2, disk_filling_in(hours, started_hours_ago=12)), settings,
                         shipped_policies)
    expected = rows(analysis)[("search", "disk_utilization")]["exhaustion"]["expected_hours"]
    assert abs(expected - hours) <= 0.1 * hours


def test_capacity_yaml_without_the_forecast_values_still_loads_with_defaults() -> None:
    from pydantic import ValidationError

    from opsloop.policy.schema.capacity import CapacityPolicy

    old = {"version": 1,
           "resources": {"disk_utilization": {"scale_at": 0.75, "alert_at": 0.85,
                                              "escalate_at": 0.95}},
           "replicas": {"defaults": {"min": 2, "max": 30}, "max_scale_step": 12}}
    policy = CapacityPolicy.model_validate(old)
    assert policy.resources["disk_utilization"].limit == 1.0
    assert (policy.forecast.horizon, policy.forecast.lead_time) == (48 * 60, 8 * 60)
    with pytest.raises(ValidationError, match=r"lead_time \(480 min\) is beyond the horizon"):
        CapacityPolicy.model_validate({**old, "forecast": {"horizon": "6h",
                                                           "lead_time": "8h"}})

"""The cost agent against the real simulator, with answer keys.

The fleet's spend is replicas x price per replica-hour (simulator/SCENARIOS.md), so each
case's answer is known: the cost_runaway scenario's HPA change takes recommendations from 8
to 40 replicas ($2.80/h to $14.00/h) at 09:20; a planned search migration doubles its
replicas; a fleet left alone spends the same every hour and must raise nothing.
"""

from __future__ import annotations

import copy
import csv
import functools
import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsloop.environments import new_simulation, open_environment
from opsloop.graph.runner import OperateLoop
from opsloop.models import DecisionOutcome
from opsloop.policy import Policies
from opsloop.policy.schema import AgentSchedule, SchedulePolicy
from opsloop.policy.schema.capacity import CapacityPolicy, CostPolicy, ImpactThresholds
from opsloop.scheduled.agents.cost import Cost, focus_dir, mark_planned_activity
from opsloop.scheduled.agents.cost_anomalies import decide
from opsloop.scheduled.agents.cost_focus import (
    COLUMNS,
    check_row,
    fleet_rows,
    read_focus,
    write_focus_csv,
)
from opsloop.scheduled.base import AgentContext, Analysis
from opsloop.scheduler.driver import Scheduler
from opsloop.scheduler.ledger import RunLedger
from opsloop.settings import Settings
from opsloop.simulator import SimEnvironment, SimState, physics
from opsloop.simulator.events import schedule
from opsloop.simulator.fleet import new_state
from opsloop.simulator.scenarios import get_scenario
from opsloop.store import IncidentStore

DAY = 24 * 60
FIXTURES = Path(__file__).parent / "data" / "focus"


@functools.cache
def _simulated(days: int, scenario: str, after: int,
               events: tuple[tuple[int, str, str, tuple[tuple[str, Any], ...]], ...]) -> SimState:
    state = new_state(7, scenario, days * DAY)
    if scenario == "cost_runaway":
        found = get_scenario(scenario)
        found.setup(state, found.fault_at_minute)
    for at, kind, service, params in events:
        schedule(state, at, kind, service, **dict(params))
    while state.tick < after:
        physics.step(state)
    return state


def fleet(days: int, after: int = 0, scenario: str = "bad_deploy",
          *events: tuple[int, str, str, dict[str, Any]]) -> SimState:
    """A copy of a healthy fleet simulated for `days` before 09:00 Monday and `after`
    minutes past it, with `scenario`'s fault (cost_runaway only) and `events` scheduled;
    each is simulated once per test run. bad_deploy's fault is never scheduled here."""
    frozen = tuple((at, kind, svc, tuple(sorted(p.items()))) for at, kind, svc, p in events)
    return copy.deepcopy(_simulated(days, scenario, after, frozen))


def run_agent(state: SimState, settings: Settings, policies: Policies) -> Analysis:
    env = SimEnvironment(state)
    ctx = AgentContext(run_id="run-cost-test", agent="cost", due_at=env.now(), now=env.now(),
                       settings=settings, policies=policies, telemetry=env,
                       store=IncidentStore(settings.state_dir / "incidents.db"))
    agent = Cost()
    return agent.analyse(ctx, agent.observe(ctx))


def report(analysis: Analysis) -> dict[str, Any]:
    path = next(p for p in analysis.reports if p.endswith(".json"))
    loaded: dict[str, Any] = json.loads(Path(path).read_text())
    return loaded


def with_cost(policies: Policies, **update: Any) -> Policies:
    capacity: CapacityPolicy = policies.capacity
    return policies.model_copy(update={"capacity": capacity.model_copy(update={
        "cost": capacity.cost.model_copy(update=update)})})


MIGRATION = (60, "autoscaler", "search",  # 10:00 Monday: search runs twice its replicas
             {"min_replicas": 12, "max_replicas": 12, "target_cpu": 0.6,
              "author": "search-platform"})


def test_a_cost_spike_from_a_scaling_change_is_found_with_its_dimensions(
        settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(5, 8 * 60, "cost_runaway"), settings, shipped_policies)
    (finding,) = analysis.findings
    assert finding.subject == "recommendations primary replica-hours"
    (anomaly,) = [a for a in report(analysis)["anomalies"]]
    assert (anomaly["service"], anomaly["region"], anomaly["usage_type"]) == (
        "recommendations", "primary", "replica-hours")
    # Answer key: the HPA change at 09:20 Monday; the run is at 17:00, the spike goes on.
    assert anomaly["start"].startswith("2026-11-02T09:00") and anomaly["ongoing"]
    assert anomaly["end"].startswith("2026-11-02T17:00") and anomaly["hours"] == 8
    # $2.80/h expected; ~$14/h once at 40 replicas (about 35 minutes in).
    assert anomaly["expected_usd"] == pytest.approx(8 * 2.80, abs=0.05)
    assert 95 <= anomaly["actual_usd"] <= 8 * 14.0
    assert anomaly["impact_usd"] == pytest.approx(anomaly["actual_usd"] - anomaly["expected_usd"],
                                                  abs=0.01)
    assert anomaly["impact_pct"] > 300
    # Past both escalate_at values ($50 and 100%): a person is told.
    assert anomaly["decision"]["action"] == "escalate"
    assert anomaly["decision"]["rule"] == "capacity.yaml:cost.escalate_at"
    assert finding.level == "critical" and finding.kind == "cost_anomaly_escalate"
    assert any("HorizontalPodAutoscaler recommendations updated" in e for e in finding.evidence)
    (signal,) = analysis.signals
    assert "cost_anomaly" in signal
    # Requested (40 replicas) vs used (~8% CPU): a scale_in proposal.
    (proposal,) = analysis.proposals
    assert proposal.action.type == "scale_in" and proposal.action.service == "recommendations"
    # The scenario's own answer key is scale_in to 8: 40 x p95 CPU ~9% / 50% target.
    assert proposal.action.params == {"replicas": 8}
    # With a $ threshold above the impact, the same anomaly is raised, not escalated: both
    # thresholds have to be crossed.
    high = with_cost(shipped_policies, escalate_at=ImpactThresholds(impact_usd=500,
                                                                    impact_pct=100))
    again = run_agent(fleet(5, 8 * 60, "cost_runaway"), settings, high)
    (raised,) = again.findings
    assert raised.level == "warning" and raised.kind == "cost_anomaly_raise"


def test_a_rightsizing_proposal_goes_through_the_guardrails_and_waits_for_approval(
        settings: Settings, make_loop: Callable[[Settings], OperateLoop],
        shipped_policies: Policies) -> None:
    ref, env = new_simulation("cost_runaway", 7, settings)
    env.state = fleet(5, 8 * 60, "cost_runaway")
    assert env.autosave_path is not None
    env.save(env.autosave_path)
    env.close()
    policies = shipped_policies.model_copy(update={"schedule": SchedulePolicy(
        version=1, agents={"cost": AgentSchedule(cron="40 0 * * *")})})
    loop = OperateLoop(settings, policies, make_loop(settings).runbooks)
    ledger = RunLedger(settings.state_dir / "schedule.db")
    try:
        scheduler = Scheduler(loop, ledger, ref, lambda: open_environment(ref, settings))
        now = open_environment(ref, settings).now()
        run = scheduler.run_now("cost", now + timedelta(seconds=1))
        # remediation.yaml: scale_in always needs approval (and 40 -> 8 is past max_scale_step).
        assert run.status == "awaiting_approval", run.error
        record = loop.store.get_incident(run.record_id or "")
        (case,) = record.actions
        assert case.proposal.action.type == "scale_in"
        assert case.proposal.action.service == "recommendations"
        assert case.decision is not None
        assert case.decision.outcome is DecisionOutcome.NEEDS_APPROVAL
        assert case.result is None  # nothing scaled in before a person says so
        after = open_environment(ref, settings)
        assert next(s for s in after.services() if s.name == "recommendations").replicas == 40
        after.close()
    finally:
        loop.close()
        ledger.close()


def test_the_monthly_cost_review_lists_the_cost_agents_anomalies(
        settings: Settings, shipped_policies: Policies) -> None:
    from opsloop.scheduled.agents.cost_review import CostReview

    state = fleet(5, 8 * 60, "cost_runaway")
    run_agent(copy.deepcopy(state), settings, shipped_policies)
    env = SimEnvironment(state)
    ctx = AgentContext(run_id="run-cost-review-test", agent="cost-review",
                       due_at=datetime(2026, 12, 1, 9, tzinfo=UTC), now=env.now(),
                       settings=settings, policies=shipped_policies, telemetry=env,
                       store=IncidentStore(settings.state_dir / "incidents.db"))
    review = CostReview()
    analysis = review.analyse(ctx, review.observe(ctx))
    js = next(p for p in analysis.reports if p.endswith(".json"))
    (listed,) = json.loads(Path(js).read_text())["cost_agent"]["anomalies"]
    assert listed["service"] == "recommendations" and listed["decision"]["action"] == "escalate"
    assert listed["report"] == "cost-daily-2026-11-02.json"
    md = next(p for p in analysis.reports if p.endswith(".md"))
    assert "## The daily cost agent's anomalies" in Path(md).read_text()


def test_escalation_needs_both_the_absolute_and_the_percentage_threshold() -> None:
    policy = CostPolicy()  # raise_at $1 and 10%, escalate_at $50 and 100%
    assert decide(60, 150, policy).action == "escalate"
    assert decide(60, 50, policy).action == "raise"  # dollars crossed, % not
    assert decide(20, 400, policy).action == "raise"  # % crossed, dollars not
    assert decide(0.5, 400, policy).action == "list"
    assert decide(60, None, policy).action == "escalate"  # nothing was expected: any % is
    assert decide(60, 150, policy, {"by": "dana", "why": "migration"}).action == \
        "planned_activity"


def test_a_planned_migration_marked_as_planned_activity_is_not_raised_again(
        tmp_path: Path, shipped_policies: Policies) -> None:
    settings = Settings(work_dir=tmp_path / "work")
    first = run_agent(fleet(5, 8 * 60, "bad_deploy", MIGRATION), settings, shipped_policies)
    (found,) = report(first)["anomalies"]
    assert (found["service"], found["decision"]["action"]) == ("search", "raise")
    assert found["start"].startswith("2026-11-02T10:00")
    assert [f.subject for f in first.findings] == ["search primary replica-hours"]
    mark = mark_planned_activity(settings, found["id"], by="dana",
                                 why="search cluster migration CHG-1234",
                                 at=datetime(2026, 11, 2, 18, tzinfo=UTC))
    assert mark["by"] == "dana"
    # The next day the doubled spend is still inside the 72 h window: listed as planned.
    day_two = fleet(5, 8 * 60 + DAY, "bad_deploy", MIGRATION)
    second = run_agent(copy.deepcopy(day_two), settings, shipped_policies)
    assert second.findings == [] and second.signals == []
    (again,) = report(second)["anomalies"]
    assert again["id"] == found["id"] and again["decision"]["action"] == "planned_activity"
    assert again["feedback"]["why"] == "search cluster migration CHG-1234"
    md = next(p for p in second.reports if p.endswith(".md"))
    assert "marked planned activity by dana" in Path(md).read_text()
    # Without the mark the same day raises it again: the feedback is what kept it quiet.
    unmarked = run_agent(copy.deepcopy(day_two), Settings(work_dir=tmp_path / "unmarked"),
                         shipped_policies)
    assert [f.subject for f in unmarked.findings] == ["search primary replica-hours"]
    # Search's doubled replicas idle at ~17% CPU. With rightsizing's line above that, the
    # migration's replicas are not proposed for scale_in while the mark covers search...
    eager = with_cost(shipped_policies, rightsizing=shipped_policies.capacity.cost.rightsizing
                      .model_copy(update={"cpu_below": 0.2}))
    covered = run_agent(copy.deepcopy(day_two), settings, eager)
    assert covered.proposals == []
    (search,) = [r for r in report(covered)["rightsizing"] if r["service"] == "search"]
    assert "planned activity (dana: search cluster migration CHG-1234)" in search["note"]
    # ...and are without it.
    bare = run_agent(day_two, Settings(work_dir=tmp_path / "bare"), eager)
    assert [(p.action.type, p.action.service) for p in bare.proposals] == [
        ("scale_in", "search")]


def test_a_stable_fleet_raises_nothing(settings: Settings, shipped_policies: Policies) -> None:
    analysis = run_agent(fleet(5), settings, shipped_policies)
    assert analysis.findings == [] and analysis.proposals == [] and analysis.signals == []
    data = report(analysis)
    assert data["anomalies"] == [] and data["problems"] == []
    assert len(data["series"]) == 9
    md, js, png = analysis.reports
    assert md.endswith("cost-daily-2026-11-02.md") and js.endswith("cost-daily-2026-11-02.json")
    assert Path(png).read_bytes().startswith(b"\x89PNG")
    assert "Nothing: no service, region or usage type spent above expected" in \
        Path(md).read_text()


def test_the_simulator_emits_valid_focus_rows_priced_as_its_fleet(
        tmp_path: Path) -> None:
    env = SimEnvironment(fleet(1))
    now = env.now()
    rows = fleet_rows(env, now, now - timedelta(hours=6), now)
    assert len(rows) == 9 * 6
    assert all(check_row(r) is None for r in rows)
    recs = [r for r in rows if r["ServiceName"] == "recommendations"]
    # 8 replicas x $0.35 per replica-hour, every hour.
    assert [float(r["EffectiveCost"]) for r in recs] == pytest.approx([2.80] * 6)
    assert [float(r["ConsumedQuantity"]) for r in recs] == pytest.approx([8.0] * 6)
    assert recs[0]["ChargePeriodStart"] == "2026-11-02T03:00:00Z"
    # Written and read back as a FOCUS file, nothing is lost.
    charges, problems = read_focus([write_focus_csv(tmp_path / "sim.csv", rows)])
    assert problems == [] and len(charges) == len(rows)


def test_bad_focus_rows_are_named_and_the_rest_ingested() -> None:
    mixed, missing = FIXTURES / "mixed.csv", FIXTURES / "no_effective_cost.csv"
    charges, problems = read_focus([mixed, missing])
    named = [(Path(p.file).name, p.line, p.column, p.value) for p in problems]
    assert named == [
        ("mixed.csv", 4, "BilledCost", "abc"),
        ("mixed.csv", 5, "ChargePeriodStart", "yesterday"),
        ("mixed.csv", 6, "ChargeCategory", "Usage Fee"),
        ("mixed.csv", 7, "ChargePeriodEnd", "2026-11-01T05:00:00Z"),
        ("mixed.csv", 8, "ServiceName", ""),
        ("mixed.csv", 9, "BillingCurrency", "usd"),
        ("mixed.csv", 10, "ChargePeriodEnd", "2026-11-01T09:00:00+02:00"),
        ("mixed.csv", 13, "ChargeClass", "Refund"),
        ("no_effective_cost.csv", 1, "EffectiveCost", ""),
    ]
    assert "not after ChargePeriodStart" in problems[3].problem
    assert "file skipped" in problems[-1].problem
    # The good rows are kept: two hours of storage, an hour of compute, a purchase.
    assert [(c.service, c.region, c.usage_type, c.effective_cost) for c in charges] == [
        ("Object Storage", "us-east-1", "USE1-TimedStorage", 1.2),
        ("Object Storage", "us-east-1", "USE1-TimedStorage", 1.2),
        ("Virtual Machines", "us-east-1", "USE1-BoxUsage:m5.large", 0.9),
        ("Savings Plans", "-", "sku-sp", 0.0),
    ]
    with mixed.open() as handle:
        assert set(next(csv.reader(handle))) <= set(COLUMNS)  # FOCUS names only


def test_focus_files_dropped_in_work_focus_are_ingested_and_their_bad_rows_reported(
        settings: Settings, shipped_policies: Policies) -> None:
    focus_dir(settings).mkdir(parents=True)
    shutil.copy(FIXTURES / "mixed.csv", focus_dir(settings))
    analysis = run_agent(fleet(5), settings, shipped_policies)
    data = report(analysis)
    assert [(Path(p["file"]).name, p["line"], p["column"]) for p in data["problems"]][:2] == [
        ("mixed.csv", 4, "BilledCost"), ("mixed.csv", 5, "ChargePeriodStart")]
    assert "8 bad FOCUS row(s)" in analysis.summary
    assert any(v == 4 for k, v in data["sources"].items() if k.startswith("FOCUS files"))
    md = next(p for p in analysis.reports if p.endswith(".md"))
    assert "mixed.csv:4 BilledCost='abc': not a decimal number" in Path(md).read_text()


def test_a_charge_period_longer_than_an_hour_is_spread_over_its_hours() -> None:
    from opsloop.scheduled.agents.cost import hourly_cells
    from opsloop.scheduled.agents.cost_focus import Charge

    day = datetime(2026, 11, 1, tzinfo=UTC)

    def charge(start: datetime, end: datetime, usd: float) -> Charge:
        return Charge(start, end, "Batch", "eu-west-1", "x", "", usd, usd, "USD")

    (series,) = hourly_cells([charge(day, day + timedelta(days=1), 24.0),
                        charge(day + timedelta(hours=2, minutes=30),
                               day + timedelta(hours=3, minutes=30), 1.0)],
                       day + timedelta(hours=1), day + timedelta(hours=5))
    cells = {datetime.fromisoformat(k).hour: v for k, v in series["cells"].items()}
    # $1/h from the daily row inside [01:00, 05:00); the half-past charge split over 2 and 3.
    assert cells == pytest.approx({1: 1.0, 2: 1.5, 3: 1.5, 4: 1.0})


@pytest.mark.parametrize("history_days", [21, 10])
def test_a_weekly_spend_pattern_is_expected_not_raised(
        history_days: int, settings: Settings, shipped_policies: Policies) -> None:
    # Four weeks of a batch platform: $10/h on weekdays, $4/h at weekends (2% noise). The
    # run is Tuesday 09:00, so its 72 h window opens on Saturday: the weekend's $4 and
    # Monday's return to $10/h are both expected from three weeks of weekly pattern; from
    # 10 days the forecaster fits no weekly season (and its wide interval hides the swing).
    import numpy as np

    rng = np.random.default_rng(3)
    end = datetime(2026, 11, 3, 9, tzinfo=UTC)
    rows = []
    for h in range(28 * 24):
        at = end - timedelta(hours=28 * 24 - h)
        base = 4.0 if at.weekday() >= 5 else 10.0
        cost = base * (1 + 0.02 * rng.standard_normal())
        rows.append({c: "" for c in COLUMNS} | {
            "BillingCurrency": "USD", "ChargeCategory": "Usage", "ServiceName": "Batch",
            "RegionId": "eu-west-1", "x_UsageType": "EUW1-BoxUsage",
            "ChargePeriodStart": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ChargePeriodEnd": (at + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "BilledCost": f"{cost:.4f}", "EffectiveCost": f"{cost:.4f}"})
    write_focus_csv(focus_dir(settings) / "batch.csv", rows)
    policies = with_cost(shipped_policies, history=history_days * DAY)
    analysis = run_agent(fleet(5, DAY), settings, policies)
    (batch,) = [s for s in report(analysis)["series"] if s["service"] == "Batch"]
    sunday_noon, monday_noon = 27, 51  # hours into the window, which opens Saturday 09:00
    expected = batch["expected"]
    if history_days >= 21:
        assert batch["model"].startswith("MSTL(m=24,168)")
        assert expected[sunday_noon] == pytest.approx(4.0, rel=0.1)
        assert expected[monday_noon] == pytest.approx(10.0, rel=0.1)
        assert analysis.findings == []
    else:
        # No weekly season: one level for every day, neither the weekend's nor Monday's.
        assert not batch["model"].startswith("MSTL")
        assert expected[monday_noon] / expected[sunday_noon] < 1.5


def test_capacity_yaml_without_a_cost_section_loads_with_the_defaults() -> None:
    from pydantic import ValidationError

    old = {"version": 1,
           "resources": {"cpu_utilization": {"scale_at": 0.75, "alert_at": 0.85,
                                             "escalate_at": 0.95}},
           "replicas": {"defaults": {"min": 2, "max": 30}, "max_scale_step": 12}}
    policy = CapacityPolicy.model_validate(old)
    assert policy.cost == CostPolicy()
    assert (policy.cost.escalate_at.impact_usd, policy.cost.escalate_at.impact_pct) == (50, 100)
    with pytest.raises(ValidationError, match="escalate_at must be at or above"):
        CapacityPolicy.model_validate({**old, "cost": {
            "raise_at": {"impact_usd": 100, "impact_pct": 10},
            "escalate_at": {"impact_usd": 50, "impact_pct": 100}}})
    with pytest.raises(ValidationError, match=r"window \(4320 min\) must be shorter than"):
        CapacityPolicy.model_validate({**old, "cost": {"history": "2d", "window": "3d"}})
